"""How many HTTP attempts a backend keeps in flight: a fixed number, or one that finds itself (AIMD).

Why adaptive: the right concurrency depends on the server, not on promptopt. A remote API with a
fixed latency wants as many requests in flight as the client's CPU can drive; a batching GPU
server (vLLM) gains throughput until its batch is full, after which extra requests only queue;
a rate-limited API answers 429 past its quota, and every 429 costs a request one of its bounded
retries. One fixed default (16) is too low for the first two and too high for the third.

The adaptive controller is TCP's congestion control applied to requests:

- *slow start*: the limit starts at ``initial`` and grows by one per success (it doubles every
  window) until the first sign of congestion;
- *additive increase*: afterwards, +1 per window of successes, where a window is ``limit``
  completed requests (about one round trip), and only while the limit was actually reached in
  that window (a batch of 5 requests says nothing about whether 50 would be fine);
- *multiplicative decrease*: x ``overload_factor`` (0.5) on HTTP 429/503, the server's own
  "too much", but not below the concurrency that carried the last window's successes
  (Little's law: successes/s x latency; against a quota, halving below that only idles it);
  x ``latency_factor`` (0.75) when more requests in flight stop bringing more answers. Latency
  alone is the wrong signal: on a batching server, or on a client short of CPU, it rises with
  every extra request while throughput still grows. So each full window's throughput (successes
  per second) is compared with the one measured at half the limit or less, and if doubling the
  requests in flight gained less than ``min_gain`` (20 %), the extra requests were only queueing.
  (The plain rule "median latency > 2 x the lowest seen" stopped at 0.66x the best fixed
  concurrency against a 100 ms API on a busy 2-core client; see bench/adaptive_concurrency.py.)
  Throughput is a softer, noisier signal than a 429, so it backs off less. At most one decrease
  per window: the requests that were already in flight when the limit dropped report the old
  overload again, and counting each of them would collapse the limit to the floor;
- the limit stays within ``[floor, cap]``. Retry-After is honoured by the retry layer, outside
  the limit (a request sleeping in backoff holds no slot).

The controller is plain arithmetic under a lock (no asyncio), shared by every event loop that uses
the backend, so what one batch learns the next starts from; :class:`Limiter` is the per-loop
waiting room that admits requests while fewer than ``controller.limit`` are in flight.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from promptopt.errors import ConfigError

AUTO = "auto"

#: What a finished attempt tells the controller: answered, refused for load (429/503), or failed
#: in a way that says nothing about load (a bad request, a dead endpoint, a timeout).
Outcome = Literal["ok", "overload", "error"]

ConcurrencySetting = int | Literal["auto"]


def parse_concurrency(value: object, *, what: str = "max_concurrency") -> ConcurrencySetting:
    """``"auto"`` or an int >= 1 (ints may come as strings from env vars); a ConfigError otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{what} must be a whole number >= 1 or 'auto', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be a whole number >= 1 or 'auto', got {value!r}")
    if value < 1:
        raise ConfigError(f"{what} must be >= 1 or 'auto', got {value}")
    return value


class Controller(Protocol):
    """Decides the limit; told when an attempt starts and how it ended."""

    @property
    def limit(self) -> int: ...

    def started(self, in_flight: int) -> int:
        """An attempt was admitted (``in_flight`` now includes it); returns a token for ``finished``."""
        ...

    def finished(self, token: int, outcome: Outcome, latency: float) -> None: ...


class FixedController:
    """A constant limit: the classic semaphore."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {limit}")
        self._limit = int(limit)

    @property
    def limit(self) -> int:
        return self._limit

    def started(self, in_flight: int) -> int:
        return 0

    def finished(self, token: int, outcome: Outcome, latency: float) -> None:
        return None

    def __repr__(self) -> str:
        return f"FixedController({self._limit})"


@dataclass(frozen=True)
class AIMDSettings:
    """Knobs of :class:`AIMDController` (see the module docstring for what each does)."""

    initial: int = 8
    floor: int = 1
    cap: int = 256
    overload_factor: float = 0.5
    latency_factor: float = 0.75
    min_gain: float = 0.2
    min_window: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.initial <= self.cap:
            raise ConfigError(
                f"need 1 <= floor <= initial <= cap, got {self.floor}, {self.initial}, {self.cap}"
            )
        if not (0 < self.overload_factor < 1 and 0 < self.latency_factor < 1):
            raise ConfigError("overload_factor and latency_factor must be between 0 and 1")
        if not 0 <= self.min_gain < 1 or self.min_window < 1:
            raise ConfigError("min_gain must be in [0, 1) and min_window >= 1")


class AIMDController:
    """Additive increase, multiplicative decrease (with slow start), fed by attempt outcomes.

    Thread-safe: one controller may serve several event loops (the sync door opens a fresh loop per
    batch). ``history`` keeps the last limits decided, for benchmarks and debugging.
    """

    def __init__(
        self, settings: AIMDSettings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings or AIMDSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._limit = float(self.settings.initial)
        self._slow_start = True
        self._epoch = 0  # bumped by every decrease: older attempts no longer vote
        self._throughput_at: dict[int, float] = {}  # limit -> successes/s of its last full window
        self._last: tuple[float, float] | None = None  # (successes/s, median latency) of the last window
        self._baseline: float | None = None
        self.decreases = 0
        self.history: deque[int] = deque(maxlen=1000)
        self._new_window()

    @property
    def limit(self) -> int:
        return max(self.settings.floor, int(self._limit))

    @property
    def baseline(self) -> float | None:
        """The lowest window-median latency seen (seconds), None before the first window."""
        return self._baseline

    def started(self, in_flight: int) -> int:
        with self._lock:
            if in_flight >= self.limit:
                self._window_full = True
            return self._epoch

    def finished(self, token: int, outcome: Outcome, latency: float) -> None:
        s = self.settings
        with self._lock:
            if outcome == "ok":
                self._ok += 1  # every success counts toward throughput, whatever its epoch
            if outcome == "overload":
                if token == self._epoch:
                    self._decrease(s.overload_factor, keep=self._sustained())
                return
            if outcome != "ok" or token != self._epoch:
                return
            self._window.append(latency)
            if self._slow_start and self._window_full:
                self._set(self._limit + 1)  # doubles per window
            if len(self._window) < self._window_size:
                return
            median = statistics.median(self._window)
            throughput = self._ok / max(self._clock() - self._window_start, 1e-9)
            self._last = (throughput, median)
            if self._baseline is None or median < self._baseline:
                self._baseline = median
            if self._window_full:
                limit = self._window_limit
                self._throughput_at[limit] = throughput
                half = [c for c in self._throughput_at if c <= limit // 2]
                if half and throughput < (1.0 + s.min_gain) * self._throughput_at[max(half)]:
                    self._decrease(s.latency_factor)  # twice the requests, no more answers: queueing
                    return
                if not self._slow_start:
                    self._set(self._limit + 1)
            self._new_window()

    def _sustained(self) -> float:
        """The concurrency that carried the last window's successes (Little's law: rate x latency)."""
        return 0.0 if self._last is None else self._last[0] * self._last[1]

    def _decrease(self, factor: float, keep: float = 0.0) -> None:
        """x ``factor``, but not below ``keep`` (and always by at least one)."""
        self._slow_start = False
        self._set(min(self._limit - 1, max(self._limit * factor, keep)))
        self._epoch += 1
        self.decreases += 1
        self._new_window()

    def _set(self, value: float) -> None:
        self._limit = min(float(self.settings.cap), max(float(self.settings.floor), value))
        self.history.append(self.limit)

    def _new_window(self) -> None:
        """A window is as many completions as the limit allows in flight now: about one round trip."""
        self._window: list[float] = []
        self._window_size = max(self.settings.min_window, self.limit)
        self._window_limit = self.limit
        self._window_full = False  # the limit was reached during this window
        self._window_start = self._clock()
        self._ok = 0

    def __repr__(self) -> str:
        return f"AIMDController(limit={self.limit}, baseline={self._baseline})"


def make_controller(setting: ConcurrencySetting, settings: AIMDSettings | None = None) -> Controller:
    """A FixedController for a number, an AIMDController for ``"auto"``."""
    if setting == AUTO:
        return AIMDController(settings)
    return FixedController(int(setting))


class Bound(NamedTuple):
    """A backend's concurrency, from its ``max_concurrency`` option (see :func:`bound_from`)."""

    #: what was asked for (a number or ``"auto"``); ``controller.limit`` is the bound right now
    setting: ConcurrencySetting
    controller: Controller
    #: the most attempts ever in flight: the fixed number, or the adaptive controller's cap
    most: int


def bound_from(value: object) -> Bound:
    """The setting, its controller and the most attempts it allows, for a backend's constructor.

    Why one function: every HTTP backend (``openai:``, ``litellm:``) takes ``max_concurrency`` the
    same way, and ``most`` (the backend's ``max_concurrency`` attribute, the number
    :class:`~promptopt.llm.base.BaseLLM` reads) must follow the controller's own cap for ``"auto"``.
    A bad value is a one-line ConfigError.
    """
    setting = parse_concurrency(value)
    return Bound(
        setting, make_controller(setting), setting if isinstance(setting, int) else AIMDSettings().cap
    )


class Slot:
    """One admitted attempt. The caller marks an overload (429/503); an exception is an error."""

    __slots__ = ("outcome", "token", "started_at")

    def __init__(self, token: int, started_at: float) -> None:
        self.token = token
        self.started_at = started_at
        self.outcome: Outcome = "ok"

    def overloaded(self) -> None:
        self.outcome = "overload"


class Limiter:
    """Per-event-loop admission: FIFO waiters, admitted while in-flight < ``controller.limit``.

    Why not ``asyncio.Semaphore``: its size is fixed at creation, and the adaptive limit moves.
    Waiters are woken on every release (the only moment the limit can grow or a slot free up).
    """

    def __init__(self, controller: Controller, clock: Callable[[], float] = time.monotonic) -> None:
        self.controller = controller
        self._clock = clock
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def _acquire(self) -> None:
        if not self._waiters and self.in_flight < self.controller.limit:
            self.in_flight += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future  # in_flight was counted for us by _wake
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # admitted and cancelled at once: give the slot back
            else:
                self._waiters.remove(future)
            raise

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.controller.limit:
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Hold one slot for an attempt; its outcome and latency go to the controller on exit."""
        await self._acquire()
        slot = Slot(self.controller.started(self.in_flight), self._clock())
        try:
            yield slot
        except BaseException:
            if slot.outcome == "ok":
                slot.outcome = "error"
            raise
        finally:
            self.controller.finished(slot.token, slot.outcome, self._clock() - slot.started_at)
            self._release()
