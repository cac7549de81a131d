"""The one-thread worker that in-process backends share (llm/worker.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from promptopt.llm.worker import Worker


def test_lazy_one_thread_in_order_and_restartable() -> None:
    worker = Worker("test")
    assert not worker.started
    seen: list[tuple[int, str]] = []

    def job(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * i

    async def main() -> list[int]:
        out = await asyncio.gather(*(worker.run(job, i) for i in range(5)))
        await worker.shutdown()
        return out

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]
    assert [i for i, _ in seen] == list(range(5))  # queued in order
    assert len({name for _, name in seen}) == 1 and seen[0][1].startswith("promptopt-test")
    assert not worker.started
    assert asyncio.run(worker.run(job, 7)) == 49  # a later call starts a fresh thread
    asyncio.run(worker.shutdown())


def test_shutdown_runs_last_on_the_worker_after_queued_calls() -> None:
    worker = Worker("test")
    order: list[str] = []

    async def main() -> None:
        first = asyncio.ensure_future(worker.run(lambda: order.append(threading.current_thread().name)))
        await asyncio.sleep(0)
        await worker.shutdown(lambda: order.append("last:" + threading.current_thread().name))
        await first
        await worker.shutdown()  # twice is fine

    asyncio.run(main())
    assert len(order) == 2 and order[1] == "last:" + order[0]


def test_exceptions_propagate() -> None:
    worker = Worker("test")

    def boom() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        asyncio.run(worker.run(boom))
    asyncio.run(worker.shutdown())
