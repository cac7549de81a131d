"""OPRO on the real embedded model: 2 short steps of each task.

What is checked is the contract, not what a 0.5B model can optimise: real proposals come back
and are recorded with a status (kept or dropped, and why), the journal commits both steps, the
result and final report are written, and a repeat of the run through the request cache asks the
model nothing (the seeds derived from (seed, step, index) replay the same requests).
One model for the module (loading takes seconds); short answers keep the file fast on 2 cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt import OPRO
from promptopt.llm.base import LLM
from promptopt.llm.cache import CachedLLM, RequestCache
from promptopt.llm.factory import build_llm
from promptopt.runs import read_journal
from promptopt.tasks.linear_regression import LinearRegressionTask
from promptopt.tasks.tsp import TSPTask

pytestmark = pytest.mark.integration

OPRO_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "opro"
STATUSES = {"initial", "scored", "unparseable", "invalid", "duplicate", "failed"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RequestCache:
    return RequestCache(tmp_path_factory.mktemp("opro-cache") / "requests.sqlite")


@pytest.fixture(scope="module")
def local(store: RequestCache, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLM]:
    llm = build_llm(
        "local",
        cache=store,
        cache_policy="all",
        n_ctx=2048,
        n_threads=1,  # steady speed on a shared 2-core box (llama.cpp threads spin when starved)
        cache_dir=tmp_path_factory.mktemp("models"),
    )
    yield llm
    llm.close()  # type: ignore[attr-defined]


def _check_run(run_dir: Path, per_step: int, max_reasks: int = 0) -> list[dict]:
    recs = read_journal(run_dir / "journal.jsonl")
    assert [r["step"] for r in recs if r["event"] == "step_done"] == [0, 1, 2]
    trials = [r["trial"] for r in recs if r["event"] == "trial"]
    proposals = [t for t in trials if t["step"] > 0]
    # a task that re-asks (TSP) asks again, at most max_reasks times, while a step lacks valid proposals
    assert 2 * per_step <= len(proposals) <= 2 * per_step * (1 + max_reasks)
    for t in proposals:
        assert t["status"] in STATUSES
        assert t["raw"] or t["status"] == "failed"  # the model's own text is kept
        if t["status"] != "scored":
            assert t["reason"]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["steps"] == 2 and result["stop_reason"] in {"steps", "optimum"}
    return proposals


def test_linear_regression_two_steps(local: CachedLLM, tmp_path: Path) -> None:
    task = LinearRegressionTask()
    res = OPRO(steps=2, per_step=2, max_tokens=24, stop_at_optimum=False).optimize(
        task, llm=local, run=tmp_path / "lr"
    )
    _check_run(tmp_path / "lr", 2)
    assert res.best_score is not None and res.best_score <= min(t.score for t in res.history if t.step == 0)
    assert res.report["task"]["optimum"]["loss"] == pytest.approx(task.optimum)

    misses = local.misses
    again = OPRO(steps=2, per_step=2, max_tokens=24, stop_at_optimum=False).optimize(task, llm=local)
    assert local.misses == misses  # replayed from the cache: same requests, no model call
    assert again.history == res.history


def test_tsp_two_steps(local: CachedLLM, tmp_path: Path) -> None:
    res = OPRO(steps=2, per_step=2, max_tokens=24, stop_at_optimum=False).optimize(
        TSPTask(n=5), llm=local, run=tmp_path / "tsp"
    )
    _check_run(tmp_path / "tsp", 2, max_reasks=TSPTask.opro_defaults["max_reasks"])
    rep = res.report["task"]
    assert rep["optimum"]["exact"] and rep["best"]["gap_percent"] >= -1e-9
    assert set(rep["baselines"]) == {
        "nearest_neighbour",
        "farthest_insertion",
        "farthest_insertion_opro",
        "two_opt",
    }


@pytest.mark.skipif(not OPRO_DATA.is_dir(), reason="OPRO data files not present")
def test_instructions_two_steps(local: CachedLLM, tmp_path: Path) -> None:
    from promptopt.tasks.instructions.task import create as make_task

    task = make_task(
        dataset="bbh:navigate",
        data_dir=str(OPRO_DATA),
        scorer=local,
        num_train=1,
        num_val=1,
        num_test=1,
        max_tokens=8,
        val_top_k=1,
    )
    # one proposal per step: instruction scoring is the slow part on CPU
    res = OPRO(steps=2, per_step=1, num_exemplars=1, max_tokens=24).optimize(
        task, llm=local, run=tmp_path / "ins"
    )
    _check_run(tmp_path / "ins", 1)
    test = res.report["task"]["test"]
    assert test["best"]["total"] == 1 and 0 <= test["best"]["accuracy"] <= 100
    assert {"empty", "step_by_step"} <= set(test)  # the baselines are scored on the same test set
