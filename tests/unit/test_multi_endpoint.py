"""Several endpoints of one model: spec parsing, least-outstanding choice, cool-off and failover."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from promptopt.errors import ConfigError
from promptopt.llm.base import LLMConnectionError, Request
from promptopt.llm.multi import EndpointPool
from promptopt.llm.openai_compat import from_spec, resolve_endpoints, split_urls
from promptopt.llm.registry import BACKEND_HELP, create_backend
from tests.servers.fault_server import FaultServer

FAST = {"timeout": 2.0, "backoff": 0.01, "backoff_max": 0.02, "retry_after_max": 0.05}


@pytest.fixture(autouse=True)
def _no_ambient_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PROMPTOPT_MAX_CONCURRENCY"):
        monkeypatch.delenv(var, raising=False)


def closed_port_url() -> str:
    """A loopback URL nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --------------------------------------------------------------------------- spec


def test_urls_split_on_commas_that_start_a_new_url_only() -> None:
    assert split_urls("http://a:1/v1,http://b:2/v1") == ["http://a:1/v1", "http://b:2/v1"]
    assert split_urls("http://a:1/v1 , https://b/v1") == ["http://a:1/v1", "https://b/v1"]
    assert split_urls("http://a/v1?x=1,2") == ["http://a/v1?x=1,2"]  # a comma inside a URL stays


def test_multi_spec_name_lists_public_urls_and_keeps_each_urls_credentials_apart() -> None:
    spec = "openai:qwen@http://alice:pw-one-secret@127.0.0.1:9/v1,http://127.0.0.2:9/v1?key=q-secret"
    llm = create_backend(spec)
    assert llm.name == "openai:qwen@http://127.0.0.1:9/v1,http://127.0.0.2:9/v1"
    assert "secret" not in repr(llm)
    first, second = resolve_endpoints(spec.removeprefix("openai:"))
    assert first.headers and not second.headers  # Basic auth only where the URL had it
    assert first.model == second.model == "qwen"
    assert "<url1>,<url2>" in BACKEND_HELP["openai"]


def test_single_url_spec_is_unchanged() -> None:
    llm = from_spec("m@http://127.0.0.1:9/v1")
    assert llm.name == "openai:m@http://127.0.0.1:9/v1" and llm.pool.size == 1


@pytest.mark.parametrize(
    ("rest", "options", "match"),
    [
        ("m@http://127.0.0.1:9/v1,http://127.0.0.1:9/v1", {}, "twice"),
        ("m@http://127.0.0.1:9/v1,http://127.0.0.1:8/v1", {"base_url": "http://x/v1"}, "not both"),
        ("m@http://127.0.0.1:9/v1,ftp://127.0.0.1:8/v1", {}, "http"),
    ],
)
def test_bad_multi_specs_are_one_line_config_errors(rest: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        from_spec(rest, **options)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- the pool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pool_picks_least_outstanding_and_spreads_ties() -> None:
    pool = EndpointPool(3, clock=Clock())
    leases = [pool.acquire() for _ in range(6)]
    assert pool.in_flight() == [2, 2, 2]
    pool.release(leases[0], "answered")
    pool.release(leases[3], "answered")
    idx = leases[0].index
    assert pool.acquire().index == idx  # the one with fewest in flight
    fresh = EndpointPool(2, clock=Clock())
    assert [fresh.acquire(avoid=0).index, fresh.acquire(avoid=0).index] == [1, 1]  # a retry moves on


def test_dead_endpoint_rests_then_gets_one_probe_and_cooloff_doubles_while_dead() -> None:
    clock = Clock()
    pool = EndpointPool(2, cooloff=1.0, cooloff_max=3.0, clock=clock)
    a = [pool.acquire() for _ in range(4)]
    dead = a[0].index
    for lease in a:  # both endpoints' requests fail ... only the dead one's are unreachable
        pool.release(lease, "unreachable" if lease.index == dead else "answered")
    assert pool.up_count() == 1
    assert {pool.acquire().index for _ in range(5)} == {1 - dead}  # resting
    clock.now += 1.0
    probe = pool.acquire()
    assert probe.index == dead and probe.probe
    assert pool.acquire().index == 1 - dead  # only one probe at a time
    assert pool.acquire(avoid=1 - dead).index == 1 - dead  # a retry never becomes a probe
    pool.release(probe, "unreachable")
    clock.now += 1.5
    assert pool.acquire().index == 1 - dead  # cool-off doubled to 2 s
    clock.now += 0.5
    probe = pool.acquire()
    assert probe.probe
    pool.release(probe, "answered")
    assert pool.up_count() == 2


def test_all_down_still_picks_the_one_back_soonest() -> None:
    clock = Clock()
    pool = EndpointPool(2, cooloff=1.0, clock=clock)
    first = pool.acquire()
    pool.release(first, "unreachable")
    clock.now += 0.5
    second = pool.acquire()
    assert second.index != first.index
    pool.release(second, "unreachable")
    assert pool.up_count() == 0
    assert pool.acquire().index == first.index  # its cool-off ends first


def test_a_timeout_marks_an_endpoint_down_only_when_it_answered_nothing_meanwhile() -> None:
    """Frozen (accepts, never answers) is down; slow (answers others while one times out) is not."""
    clock = Clock()
    pool = EndpointPool(2, cooloff=1.0, clock=clock)
    leases = [pool.acquire() for _ in range(4)]
    x1, x2 = [lease for lease in leases if lease.index == 0]
    y1, y2 = [lease for lease in leases if lease.index == 1]
    pool.release(x2, "answered")  # endpoint 0 answers while x1 waits ...
    pool.release(x1, "timeout")  # ... so x1's timeout is a slow request, not a frozen server
    pool.release(y2, "unknown")  # a cancelled attempt says nothing
    assert pool.up_count() == 2
    pool.release(y1, "timeout")  # endpoint 1 answered nothing during y1's whole attempt: frozen
    assert pool.up_count() == 1 and {pool.acquire().index for _ in range(4)} == {0}
    clock.now += 1.0
    probe = pool.acquire()
    assert probe.index == 1 and probe.probe
    pool.release(probe, "timeout")  # still frozen: the cool-off doubles
    clock.now += 1.5
    assert pool.acquire().index == 0
    before = pool.acquire()  # an answer *before* an attempt began does not vouch for it
    pool.release(before, "answered")
    late = pool.acquire()
    assert late.index == before.index == 0
    pool.release(late, "timeout")
    assert pool.up_count() == 0


# --------------------------------------------------------------------------- through the backend


def test_a_frozen_endpoint_costs_one_timeout_not_one_per_request(fault_server: Any) -> None:
    """An endpoint that accepts connections and never answers is marked down by its first timeout;
    the requests after it go to the live endpoint instead of each waiting out the timeout there."""
    frozen: FaultServer = fault_server(default="hang", hang_seconds=30)
    live: FaultServer = fault_server()
    llm = from_spec(
        f"stub@{frozen.base_url},{live.base_url}",
        max_retries=1,
        endpoint_cooloff=60,
        **{**FAST, "timeout": 0.5},
    )
    answers = [llm.complete(f"q{i}") for i in range(10)]
    assert answers == [f"echo: q{i}" for i in range(10)]
    assert frozen.request_count == 1 and live.request_count == 10


def test_dead_endpoint_costs_at_most_one_retry_per_request_and_nothing_is_lost(fault_server: Any) -> None:
    live: FaultServer = fault_server(latency=0.005)
    llm = from_spec(f"stub@{closed_port_url()},{live.base_url}", max_retries=1, max_concurrency=4, **FAST)
    out = llm.generate([Request.chat(f"q{i}") for i in range(20)])
    assert [c.text for c in out] == [f"echo: q{i}" for i in range(20)]
    assert live.request_count == 20
    assert llm.pool.served[0] <= 4  # only the first wave before it was marked down


def test_every_endpoint_down_is_one_connection_error_naming_them(fault_server: Any) -> None:
    a, b = closed_port_url(), closed_port_url()
    llm = from_spec(f"stub@{a},{b}", max_retries=2, **FAST)
    with pytest.raises(LLMConnectionError) as info:
        llm.complete("hello")
    msg = str(info.value)
    assert "\n" not in msg and "cannot reach" in msg
    assert a.removesuffix("/v1") in msg and b.removesuffix("/v1") in msg
