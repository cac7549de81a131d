"""Several endpoints serving one model: least-outstanding-requests choice, cool-off for dead ones.

Why: a scorer is often served by several OpenAI-compatible servers of the same model (vLLM on
several machines, or one vLLM per GPU). Spreading by the number of requests each has in flight
(rather than round robin) sends more work to the faster server by itself, since it finishes
sooner. When a server dies mid-run, the requests it held fail with connection errors; the pool
marks it down for a cool-off and the retry layer sends those requests to another endpoint at
once (a retry like any other, within ``max_retries``), so the run carries on and loses nothing.

After its cool-off a down endpoint gets exactly one *probe* request: if the server answers it is
up again, if not its cool-off doubles (up to ``cooloff_max``). Without the probe, an endpoint
coming back from its cool-off with zero requests in flight would be handed a whole burst of
requests by the least-outstanding rule, and each would spend a retry on a server that is still
dead. When every endpoint is down the pool still picks one (the one back soonest): the request's
own retries and backoff then end in the usual "cannot reach" error if none comes back.

A *frozen* endpoint (it accepts connections and never answers) fails by timeout, not by refusal.
A timeout alone is no proof of death (a long generation on a slow server times out too), so the
rule is: an attempt that timed out while its endpoint answered *nothing at all* (no attempt on it
ended with an answer since this one began) marks it down like a refused connection; one that timed
out while the endpoint kept answering others leaves it up. Without this rule every later request
paid the full timeout on the frozen endpoint before its retry moved on (issue 23).

The pool is plain bookkeeping under a lock, shared by every event loop using the backend; it never
sees a URL (endpoints are indices), so it can hold no secret.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

#: How an attempt on an endpoint ended, as far as the endpoint's health goes: the server answered
#: (any HTTP status, even an error), the endpoint could not be reached or dropped the connection,
#: no answer came within the timeout (down only if the endpoint answered nothing meanwhile, see
#: the module doc), or nothing is known (the caller cancelled the attempt).
Reach = Literal["answered", "unreachable", "timeout", "unknown"]


@dataclass
class _State:
    in_flight: int = 0
    down_until: float = 0.0  # 0: up
    failures: int = 0  # consecutive times marked down (cool-off doubles with each)
    probing: bool = False  # a probe is in flight (while down)
    answers: int = 0  # attempts that ended with an answer, ever (a timeout compares its lease's)


@dataclass(frozen=True)
class Lease:
    """One attempt's hold on an endpoint (``index`` into the pool's endpoints; ``answers``: the
    endpoint's answer count when the attempt began)."""

    index: int
    probe: bool = False
    answers: int = 0


class EndpointPool:
    """Least-outstanding-requests choice among ``size`` endpoints, with cool-off and probes."""

    def __init__(
        self,
        size: int,
        *,
        cooloff: float = 2.0,
        cooloff_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 1:
            raise ValueError("an endpoint pool needs at least one endpoint")
        self.size = size
        self.cooloff = cooloff
        self.cooloff_max = cooloff_max
        self._clock = clock
        self._lock = threading.Lock()
        self._states = [_State() for _ in range(size)]
        self._next = 0  # round-robin start among ties, so equal endpoints share the work
        self.served = [0] * size  # attempts sent to each endpoint (for tests and benchmarks)

    def acquire(self, avoid: int | None = None) -> Lease:
        """Pick the endpoint for one attempt: a down endpoint whose cool-off is over, as a probe
        (first attempts only: a request that already failed once is not sent to test a server);
        else an up one with the fewest requests in flight (not ``avoid``, the one the previous
        attempt failed on, if another is up); else the one back soonest."""
        with self._lock:
            now = self._clock()
            order = [(self._next + k) % self.size for k in range(self.size)]
            self._next = (self._next + 1) % self.size
            states = self._states
            up = [i for i in order if states[i].down_until == 0.0]
            ready = [i for i in order if 0.0 < states[i].down_until <= now and not states[i].probing]
            if ready and (avoid is None or not up):
                lease = Lease(ready[0], probe=True)
                states[lease.index].probing = True
            elif up:
                if len(up) > 1 and avoid in up:
                    up.remove(avoid)
                lease = Lease(min(up, key=lambda i: states[i].in_flight))
            else:
                lease = Lease(min(order, key=lambda i: states[i].down_until))
            lease = replace(lease, answers=states[lease.index].answers)
            states[lease.index].in_flight += 1
            self.served[lease.index] += 1
            return lease

    def release(self, lease: Lease, reach: Reach) -> None:
        """Record how the attempt went: an answer brings an endpoint back up, a connection failure
        or a timeout with no answer from the endpoint meanwhile (frozen) marks it down (once: the
        other requests it held fail too, and must not double its cool-off)."""
        with self._lock:
            state = self._states[lease.index]
            state.in_flight -= 1
            if lease.probe:
                state.probing = False
            silent = reach == "timeout" and state.answers == lease.answers
            if reach == "answered":
                state.down_until, state.failures = 0.0, 0
                state.answers += 1
            elif (reach == "unreachable" or silent) and (state.down_until == 0.0 or lease.probe):
                state.failures += 1
                delay = min(self.cooloff * 2.0 ** (state.failures - 1), self.cooloff_max)
                state.down_until = max(self._clock() + delay, 1e-9)

    def up_count(self) -> int:
        """How many endpoints are up now (a failed attempt may move to one of them at once)."""
        with self._lock:
            return sum(1 for s in self._states if s.down_until == 0.0)

    def in_flight(self) -> list[int]:
        with self._lock:
            return [s.in_flight for s in self._states]
