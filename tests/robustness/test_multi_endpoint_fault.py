"""Issue 11: one of two servers of a multi-endpoint spec dies mid-run; the run completes, nothing is lost.

Two fault-free local servers serve ``openai:stub@URL_A,URL_B``. A batch of requests (what a scorer
sends: every request distinct) starts; once server A has answered a good share of them it is
stopped, dropping the requests it holds and refusing new connections. Every request must still
end with its own correct answer, none may fail for good, and no request may be tried more often
than ``max_retries + 1`` times across both servers.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from promptopt.evaluators.accuracy import aevaluate_many
from promptopt.llm.base import Completion, Request
from promptopt.llm.openai_compat import from_spec
from promptopt.tasks.instructions.datasets import Example
from tests.servers.fault_server import FaultServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

MAX_RETRIES = 3
N = 240


def _key(body: dict[str, Any]) -> str:
    return json.dumps(body.get("messages"), sort_keys=True)


async def _kill_when(server: FaultServer, served: int) -> None:
    while server.request_count < served:
        await asyncio.sleep(0.005)
    await asyncio.to_thread(server.stop)


@pytest.mark.parametrize("concurrency", [16, "auto"])
async def test_killing_one_of_two_servers_mid_run_loses_nothing(fault_server: Any, concurrency: Any) -> None:
    a: FaultServer = fault_server(latency=0.02)
    b: FaultServer = fault_server(latency=0.02)
    llm = from_spec(
        f"stub@{a.base_url},{b.base_url}",
        api_key="EMPTY",
        max_retries=MAX_RETRIES,
        max_concurrency=concurrency,
        timeout=5.0,
        backoff=0.01,
        backoff_max=0.05,
        endpoint_cooloff=0.2,
    )
    requests = [Request.chat(f"item {i}") for i in range(N)]
    try:
        killer = asyncio.create_task(_kill_when(a, 40))
        results = await llm.agenerate(requests, return_exceptions=True)
        await killer
    finally:
        await llm.aclose()

    failed = [r for r in results if not isinstance(r, Completion)]
    assert not failed, f"{len(failed)} requests failed for good, e.g. {failed[0]}"
    assert [r.text for r in results] == [f"echo: item {i}" for i in range(N)]
    assert a.request_count >= 40 and b.request_count > 0
    # a request cut off by the kill may reach the dying server without its body: not an attempt
    attempts = Counter(_key(body) for body in a.bodies + b.bodies if body.get("messages"))
    assert len(attempts) == N, "a request never reached any server"
    assert max(attempts.values()) <= MAX_RETRIES + 1
    # the client made more attempts than there are requests: some hit the dying or dead server A
    # and were moved to B (else the kill came too late and the test proves nothing)
    assert sum(llm.pool.served) > N


async def test_scorer_over_two_servers_accounts_for_every_item_when_one_dies(fault_server: Any) -> None:
    """The instruction scorer's path (aevaluate_many) over the multi-endpoint spec: every example of
    every instruction gets an answer (no example is counted as failed)."""
    a: FaultServer = fault_server(latency=0.02)
    b: FaultServer = fault_server(latency=0.02)
    llm = from_spec(
        f"stub@{a.base_url},{b.base_url}",
        api_key="EMPTY",
        max_retries=MAX_RETRIES,
        backoff=0.01,
        backoff_max=0.05,
        endpoint_cooloff=0.2,
    )
    examples = [Example(f"q{i}", f"What is {i} + 1?", str(i + 1), "number") for i in range(40)]
    try:
        killer = asyncio.create_task(_kill_when(a, 20))
        evals = await aevaluate_many(llm, ["Think.", "Answer."], examples)
        await killer
    finally:
        await llm.aclose()
    assert [e.failed for e in evals] == [0, 0]
    assert sum(llm.pool.served) > 2 * len(examples)  # some moved off the dead server
    assert all(len(e.records) == len(examples) for e in evals)
