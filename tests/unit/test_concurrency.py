"""Concurrency bounds: ``max_concurrency`` as a number or ``"auto"`` (AIMD), and the per-loop limiter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from promptopt.errors import ConfigError
from promptopt.llm.base import Request
from promptopt.llm.concurrency import (
    AIMDController,
    AIMDSettings,
    FixedController,
    Limiter,
    bound_from,
    make_controller,
    parse_concurrency,
)
from promptopt.llm.openai_compat import from_spec
from tests.servers.fault_server import Fault, FaultServer

FAST = {"timeout": 2.0, "backoff": 0.01, "backoff_max": 0.02, "retry_after_max": 0.05}


@pytest.fixture(autouse=True)
def _no_ambient_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PROMPTOPT_MAX_CONCURRENCY"):
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("raw", "expected"), [("auto", "auto"), (" AUTO ", "auto"), ("8", 8), (3, 3)])
def test_concurrency_is_a_number_or_auto(raw: Any, expected: Any) -> None:
    assert parse_concurrency(raw) == expected


@pytest.mark.parametrize("raw", ["0", "-2", "many", "", 0, True, 2.5])
def test_bad_concurrency_is_a_one_line_config_error(raw: Any) -> None:
    with pytest.raises(ConfigError, match="max_concurrency") as info:
        parse_concurrency(raw)
    assert "\n" not in str(info.value)


def test_a_bound_is_the_setting_its_controller_and_the_most_in_flight() -> None:
    fixed = bound_from("5")
    assert (fixed.setting, fixed.most) == (5, 5)
    assert isinstance(fixed.controller, FixedController) and fixed.controller.limit == 5
    auto = bound_from("auto")
    assert (auto.setting, auto.most) == ("auto", AIMDSettings().cap)
    assert isinstance(auto.controller, AIMDController)
    assert auto.controller is not bound_from("auto").controller  # nothing learnt is shared by accident
    with pytest.raises(ConfigError, match="max_concurrency"):
        bound_from(0)


def test_auto_lets_the_backend_reach_the_controllers_cap() -> None:
    llm = from_spec("m@http://127.0.0.1:9/v1", max_concurrency="auto")
    assert (llm.concurrency, llm.max_concurrency) == ("auto", AIMDSettings().cap)
    assert isinstance(llm.controller, AIMDController)


def test_env_auto_makes_the_backend_adaptive_and_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMPTOPT_MAX_CONCURRENCY", "auto")
    llm = from_spec("m@http://127.0.0.1:9/v1")
    assert llm.concurrency == "auto" and isinstance(llm.controller, AIMDController)
    assert llm.controller.limit == AIMDSettings().initial
    assert isinstance(from_spec("m@http://127.0.0.1:9/v1", max_concurrency=5).controller, FixedController)
    monkeypatch.setenv("PROMPTOPT_MAX_CONCURRENCY", "lots")
    with pytest.raises(ConfigError, match="PROMPTOPT_MAX_CONCURRENCY"):
        from_spec("m@http://127.0.0.1:9/v1")


def test_fixed_is_the_default() -> None:
    llm = from_spec("m@http://127.0.0.1:9/v1")
    assert llm.concurrency == 16 and llm.controller.limit == 16 and llm.max_concurrency == 16


# --------------------------------------------------------------------------- AIMD arithmetic


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def aimd(**settings: Any) -> AIMDController:
    return AIMDController(AIMDSettings(**settings), clock=Clock())


def _run_window(c: AIMDController, latency: float, *, full: bool = True) -> None:
    """One window of successes at ``latency`` with the limit's requests in flight (so it lasts
    about one latency: throughput = limit / latency); ``full``: the limit was reached in it."""
    size, limit = max(c.settings.min_window, c.limit), c.limit
    for _ in range(size):
        token = c.started(c.limit if full else 1)
        c._clock.now += latency / limit  # type: ignore[attr-defined]
        c.finished(token, "ok", latency)


def test_slow_start_doubles_per_window_then_latency_ends_it_with_a_gentle_decrease() -> None:
    c = aimd(initial=4, cap=256)
    _run_window(c, 0.1)
    assert c.limit == 8
    _run_window(c, 0.1)
    assert c.limit == 16
    _run_window(c, 0.25)  # twice the requests in flight, 2.5x the latency: less throughput
    assert c.baseline == pytest.approx(0.1)
    assert c.limit == int(32 * 0.75)  # slow start grew it during the window, then x 0.75
    before = c.limit
    _run_window(c, 0.1)
    assert c.limit == before + 1  # additive from now on


def test_latency_that_rises_slower_than_concurrency_does_not_stop_growth() -> None:
    """A batching server (or a client short of CPU): latency rises with load, throughput too."""
    c = aimd(initial=8, cap=256)
    for _ in range(5):
        _run_window(c, 0.1 + 0.002 * c.limit)  # 8 -> 16 -> ... latency x2.3 at 128, throughput x3
    assert c.limit == 256 and c.decreases == 0


def test_no_growth_when_the_limit_is_not_reached() -> None:
    c = aimd(initial=4)
    for _ in range(5):
        _run_window(c, 0.1, full=False)
    assert c.limit == 4


def test_overload_halves_once_per_window_not_once_per_request() -> None:
    c = aimd(initial=16)
    tokens = [c.started(i + 1) for i in range(16)]
    for t in tokens:  # every request that was in flight reports the same 429 episode
        c.finished(t, "overload", 0.01)
    assert c.limit == 8 and c.decreases == 1
    c.finished(c.started(1), "overload", 0.01)  # a new episode
    assert c.limit == 4 and c.decreases == 2


def test_overload_does_not_cut_below_what_carried_the_last_window() -> None:
    """Against a quota, halving below goodput x latency would only leave the quota unused."""
    c = aimd(initial=16)
    _run_window(c, 0.16)  # 16 in flight, 100 answers/s at 0.16 s: 16 sustained ... slow start: 32
    assert c.limit == 32
    c.finished(c.started(32), "overload", 0.01)
    assert c.limit == 16  # halving and what carried the window agree here; not in the next case
    _run_window(c, 0.1)  # 16 in flight at 0.1 s: 160/s; sustained 16
    c.finished(c.started(17), "overload", 0.01)
    assert c.limit == 16 - 1  # halving would give 8; the floor keeps 16, and a decrease is >= 1


def test_limit_stays_between_floor_and_cap_and_errors_are_neutral() -> None:
    c = aimd(initial=2, floor=2, cap=5)
    for _ in range(4):
        c.finished(c.started(1), "overload", 0.0)
    assert c.limit == 2
    c.finished(c.started(1), "error", 9.0)
    assert c.limit == 2 and c.baseline is None
    for _ in range(10):
        _run_window(c, 0.1)
    assert c.limit == 5


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        AIMDSettings(initial=0)
    with pytest.raises(ConfigError):
        AIMDSettings(overload_factor=1.5)
    assert isinstance(make_controller("auto"), AIMDController)
    assert make_controller(3).limit == 3


# --------------------------------------------------------------------------- the limiter


class _Moving:
    """A controller whose limit the test moves by hand."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def started(self, in_flight: int) -> int:
        return 0

    def finished(self, token: int, outcome: str, latency: float) -> None:
        return None


async def test_limiter_bounds_in_flight_and_admits_more_when_the_limit_grows() -> None:
    ctl = _Moving(2)
    limiter = Limiter(ctl)
    peak = 0
    gate = asyncio.Event()

    async def job() -> None:
        nonlocal peak
        async with limiter.slot():
            peak = max(peak, limiter.in_flight)
            await gate.wait()

    tasks = [asyncio.create_task(job()) for _ in range(6)]
    await asyncio.sleep(0.01)
    assert limiter.in_flight == 2
    ctl.limit = 4
    gate.set()  # releases wake the waiters up to the new limit
    await asyncio.gather(*tasks)
    assert peak == 4 and limiter.in_flight == 0


async def test_a_cancelled_waiter_leaks_no_slot() -> None:
    limiter = Limiter(_Moving(1))
    gate = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot():
            await gate.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    gate.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.in_flight == 0
    async with limiter.slot():  # still usable
        assert limiter.in_flight == 1


async def test_slot_reports_outcome_and_latency() -> None:
    seen: list[tuple[str, float]] = []

    class Spy(_Moving):
        def finished(self, token: int, outcome: str, latency: float) -> None:
            seen.append((outcome, latency))

    ticks = iter([1.0, 1.5, 2.0, 2.25, 3.0, 3.0])
    limiter = Limiter(Spy(4), clock=lambda: next(ticks))
    async with limiter.slot():
        pass
    async with limiter.slot() as slot:
        slot.overloaded()
    with pytest.raises(RuntimeError):
        async with limiter.slot():
            raise RuntimeError("boom")
    assert seen == [("ok", 0.5), ("overload", 0.25), ("error", 0.0)]


# --------------------------------------------------------------------------- through the backend


def test_auto_backs_off_on_429_and_every_request_still_succeeds(fault_server: Any) -> None:
    srv: FaultServer = fault_server(script=[Fault.RATE_LIMIT_RETRY_AFTER] * 3, retry_after=0.01, latency=0.01)
    llm = from_spec(f"stub@{srv.base_url}", max_concurrency="auto", **FAST)
    out = llm.generate([Request.chat(f"q{i}") for i in range(24)])
    assert [c.text for c in out] == [f"echo: q{i}" for i in range(24)]
    assert llm.controller.decreases >= 1
    assert srv.max_in_flight <= AIMDSettings().initial


def test_fixed_bound_is_never_exceeded(fault_server: Any) -> None:
    # answers slow enough that 3 requests overlap even on a busy machine (0.02 s saw only 2 at times)
    srv: FaultServer = fault_server(latency=0.1)
    llm = from_spec(f"stub@{srv.base_url}", max_concurrency=3, **FAST)
    llm.generate([Request.chat(f"q{i}") for i in range(12)])
    assert srv.max_in_flight == 3
