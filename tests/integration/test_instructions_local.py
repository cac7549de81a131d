"""Instruction scoring with the real embedded model: 2 instructions × 3 BBH navigate questions.

What is checked is the contract, not what a 0.5B model knows: real requests go out, answers come
back and are graded, counts add up, and scoring the same instructions again through the request
cache makes no backend call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from promptopt.llm.cache import CachedLLM, RequestCache
from promptopt.llm.factory import build_llm
from promptopt.tasks.base import Candidate
from promptopt.tasks.instructions.task import InstructionTask
from promptopt.tasks.instructions.task import create as make_task

pytestmark = pytest.mark.integration

OPRO_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "opro"
INSTRUCTIONS = ["Answer with Yes or No only.", "Reply with one word: Yes or No."]


@pytest.mark.skipif(not OPRO_DATA.is_dir(), reason="OPRO data files not present")
def test_score_two_instructions_on_three_navigate_questions(tmp_path: Path) -> None:
    store = RequestCache(tmp_path / "requests.sqlite")
    llm = build_llm("local", cache=store, n_ctx=1024)
    assert isinstance(llm, CachedLLM)

    def navigate() -> InstructionTask:  # the same task twice: the second one must be served by the cache
        return make_task(
            dataset="bbh:navigate",
            data_dir=str(OPRO_DATA),
            scorer=llm,
            num_train=3,
            num_test=3,
            max_tokens=8,
        )

    try:
        task = navigate()
        assert len(task.splits.train) == 3
        scored = asyncio.run(task.ascore([Candidate(i, i) for i in INSTRUCTIONS]))
        assert llm.misses == 6 and llm.hits == 0  # 2 × 3 real requests, one batch
        for s in scored:
            assert s.error is None and s.score is not None and 0.0 <= s.score <= 100.0
            assert s.info["total"] == 3 and s.info["failed"] == 0
            assert len(s.info["per_example"]) == 3
            assert s.score == pytest.approx(100.0 * s.info["correct"] / 3)
        # asked for Yes/No only, the model answers in a readable form at least once
        assert sum(3 - s.info["no_answer"] for s in scored) >= 1

        again = navigate()
        rescored = asyncio.run(again.ascore([Candidate(i, i) for i in INSTRUCTIONS]))
        assert llm.misses == 6 and llm.hits == 6  # re-proposed instructions cost nothing
        assert [s.score for s in rescored] == [s.score for s in scored]
    finally:
        llm.close()
