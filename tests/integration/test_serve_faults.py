"""`promptopt serve` against a real faulty upstream (tests/servers/fault_server.py) and as a real
process: faults become HTTP errors and never a hang, and SIGTERM drains the request in flight and
exits 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

from promptopt.aligned import AlignedLLM  # noqa: E402
from promptopt.llm.openai_compat import from_spec  # noqa: E402
from promptopt.serve.app import ServeState, Upstream, create_app  # noqa: E402
from promptopt.serve.runner import BackgroundServer  # noqa: E402

pytestmark = pytest.mark.integration


def _serve(upstream_url: str, **backend: Any) -> BackgroundServer:
    def make(key: str | None) -> Any:
        llm = from_spec(
            f"stub@{upstream_url}", backoff=0.01, backoff_max=0.05, retry_after_max=0.05, **backend
        )
        return AlignedLLM(llm, instruction="Be exact.")

    return BackgroundServer(create_app(ServeState(Upstream(make)))).start()


async def _fire(base_url: str, n: int, concurrency: int) -> list[Any]:
    ac = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=30)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with sem:
            try:
                out = await ac.chat.completions.create(
                    model="promptopt", messages=[{"role": "user", "content": f"q{i}"}]
                )
                return out.choices[0].message.content
            except openai.APIStatusError as exc:
                return exc.status_code

    try:
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await ac.close()


def test_thirty_percent_upstream_faults_are_retried_or_proper_errors(fault_server: Any) -> None:
    up = fault_server(failure_rate=0.3, seed=1)
    with _serve(up.base_url, max_retries=5) as srv:
        started = time.perf_counter()
        results = asyncio.run(_fire(srv.base_url, 120, 16))
    assert time.perf_counter() - started < 30
    answered = [r for r in results if isinstance(r, str)]
    assert all(r in (429, 502, 504) for r in results if not isinstance(r, str))
    assert len(answered) >= 114  # 0.3**6 per request: a failure is rare but allowed
    assert all(a == f"echo: Be exact.\n\nq{i}" for i, a in enumerate(results) if isinstance(a, str))
    assert sum(up.served.values()) > 120  # faults happened and were retried


def test_an_always_failing_or_hanging_upstream_answers_quickly_with_an_error(fault_server: Any) -> None:
    down = fault_server(failure_rate=1.0, failure_mix=["500", "503", "reset"])
    with _serve(down.base_url, max_retries=1) as srv:
        started = time.perf_counter()
        results = asyncio.run(_fire(srv.base_url, 20, 8))
        assert set(results) == {502} and time.perf_counter() - started < 10
    hang = fault_server(default="hang", hang_seconds=5.0)
    with _serve(hang.base_url, max_retries=0, timeout=0.5) as srv:
        started = time.perf_counter()
        assert asyncio.run(_fire(srv.base_url, 2, 2)) == [504, 504]
        assert time.perf_counter() - started < 4


def test_a_frozen_upstream_endpoint_costs_one_timeout_then_requests_go_to_the_live_one(
    fault_server: Any,
) -> None:
    frozen = fault_server(default="hang", hang_seconds=30)
    live = fault_server()
    with _serve(f"{frozen.base_url},{live.base_url}", max_retries=1, timeout=0.5, endpoint_cooloff=60) as srv:
        answers = [asyncio.run(_fire(srv.base_url, 1, 1))[0] for _ in range(6)]
    assert answers == ["echo: Be exact.\n\nq0"] * 6
    assert frozen.request_count == 1 and live.request_count == 6


def test_the_cli_server_drains_in_flight_requests_and_exits_0_on_sigterm(fault_server: Any) -> None:
    up = fault_server(latency=1.0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptopt", "serve", "--target", f"openai:stub@{up.base_url}", "--port", "0",
         "--instruction", "Be exact.", "--api-key", "k-123"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        port = re.search(r"127\.0\.0\.1:(\d+)/v1", first)
        assert port, first
        c = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port.group(1)}/v1", api_key="k-123", max_retries=0, timeout=20
        )
        box: dict[str, Any] = {}
        t = threading.Thread(
            target=lambda: box.update(
                out=c.chat.completions.create(model="promptopt", messages=[{"role": "user", "content": "hi"}])
            )
        )
        t.start()
        time.sleep(0.5)  # the request is now waiting on the upstream's 1 s latency
        proc.send_signal(signal.SIGTERM)
        t.join(20)
        rc = proc.wait(20)
        err = first + proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert box["out"].choices[0].message.content == "echo: Be exact.\n\nhi"
    assert rc == 0, err
    assert "stopped (SIGTERM): 1 requests, 0 errors" in err
    assert "k-123" not in err and "'hi'" not in err
