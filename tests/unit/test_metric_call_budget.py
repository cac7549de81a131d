"""The metric-call budget (``max_metric_calls``, ``--budget-metric-calls``): GEPA's unit, one candidate
on one example. Both proposers stop before a step that could cross it, count answers from the
request cache like any other, and count the same after a resume."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO, build_llm, make_task
from promptopt.errors import ConfigError
from promptopt.llm.base import Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.base import LoopState, Trial
from promptopt.optimizers.metric_calls import MetricCalls, trial_metric_calls
from promptopt.optimizers.reflective.optimizer import Reflective
from promptopt.runs import read_journal

WORDS = ("Use small steps.", "Think about even numbers.", "Be brief.", "Mind large numbers.", "Go slowly.",
         "Check twice.", "Write the sum.", "Read it aloud.")  # fmt: skip


class Killed(BaseException):
    """Stands for SIGKILL."""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))


def answer(request: Request, _i: int = 0) -> str:
    text = request_text(request)
    a = int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]
    right = ("even" in text and a % 2 == 0) or ("small" in text and a < 10)
    return f"The answer is {2 * a if right else 2 * a + 1}."


def proposer(request: Request, _i: int = 0) -> str:
    """OPRO proposals and reflections from the request alone (its seed, its text)."""
    word = WORDS[zlib.crc32(f"{request.seed}{request_text(request)}".encode()) % len(WORDS)]
    return f"<INS>{word}</INS>" if "<INS>" in request_text(request) else f"```\n{word}\n```"


def task(tmp_path: Path, scorer: Any = None) -> Any:
    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(40))
    )
    return make_task(
        "instructions", dataset=f"jsonl:{data}", scorer=scorer or FakeLLM(fn=answer, name="scorer"),
        train=12, val=6, test=6,
    )  # fmt: skip


def optimizer(kill_at: int | None = None) -> FakeLLM:
    calls = [0]

    def fn(request: Request, i: int) -> str:
        calls[0] += 1
        if calls[0] == kill_at:
            raise Killed
        return proposer(request, i)

    return FakeLLM(fn=fn, name="optimizer")


def test_the_counter_stops_before_a_step_that_could_cross_the_limit() -> None:
    calls = MetricCalls(limit=100, used=70, next_cost=30)
    assert calls.check(LoopState()) is None  # 70 + 30 fits exactly
    calls.add(1)
    assert "71 of 100 metric calls used; the next step could need 30" in str(calls.check(LoopState()))
    assert MetricCalls(limit=None, used=10**9, next_cost=10).check(LoopState()) is None
    assert calls.code == "metric_calls" and calls.summary() == {"used": 71, "max": 100}


def test_a_trial_counts_the_examples_it_was_scored_on() -> None:
    assert trial_metric_calls(Trial(1, 0, "scored", "x", 50.0, info={"total": 12})) == 12
    assert (
        trial_metric_calls(Trial(1, 0, "scored", "x", 50.0, info={"total": 12, "requests": 5})) == 5
    )  # racing
    assert trial_metric_calls(Trial(1, 0, "scored", "[1, 2]", 3.0)) == 1  # a task without examples
    assert trial_metric_calls(Trial(1, 0, "failed", "x", None, info={"total": 12})) == 12  # asked, unscored
    for status in ("unparseable", "invalid", "duplicate"):
        assert trial_metric_calls(Trial(1, 0, status, "x")) == 0  # type: ignore[arg-type]


def test_opro_stops_before_exceeding_and_counts_its_training_scores(tmp_path: Path) -> None:
    res = OPRO(steps=50, per_step=2, seed=0, max_metric_calls=70).optimize(
        task(tmp_path), llm=optimizer(), run=str(tmp_path / "r")
    )
    used = res.report["metric_calls"]["used"]
    assert res.stop_reason == "metric_calls" and res.report["metric_calls"]["max"] == 70
    assert used == sum(t.info.get("total", 0) for t in res.history if t.status in ("scored", "initial"))
    assert used <= 70 < used + 2 * 12  # one more step of 2 candidates × 12 training examples could cross it
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["opro"]["max_metric_calls"] == 70 and cfg["opro"]["proposer"] == "opro"


def test_a_plain_opro_run_is_as_it_was(tmp_path: Path) -> None:
    res = OPRO(steps=1, per_step=2, seed=0).optimize(task(tmp_path), llm=optimizer(), run=str(tmp_path / "r"))
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["opro"]["proposer"] == "opro"
    assert not {"minibatch_size", "max_metric_calls", "demos"} & set(cfg["opro"])
    assert res.report["metric_calls"] == {"used": 12 + 2 * 12, "max": None}  # counted, not limited


def test_reflective_stops_before_exceeding(tmp_path: Path) -> None:
    limit = 6 + 4 * 5  # the seed on 6 validation examples, then room for some iterations
    res = Reflective(steps=50, seed=0, max_metric_calls=limit).optimize(task(tmp_path), llm=optimizer())
    used = res.report["metric_calls"]["used"]
    assert res.stop_reason == "metric_calls" and used <= limit < used + 2 * 3 + 6
    assert res.steps >= 1


def test_a_limit_below_the_first_evaluation_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_metric_calls 11 is less than the 12 metric calls of scoring"):
        OPRO(max_metric_calls=11).optimize(task(tmp_path), llm=optimizer(), run=str(tmp_path / "r"))
    with pytest.raises(
        ConfigError, match="less than the 6 metric calls of scoring the starting instructions"
    ):
        Reflective(max_metric_calls=5).optimize(task(tmp_path), llm=optimizer(), run=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ConfigError, match="max_metric_calls must be a positive integer"):
            OPRO(max_metric_calls=bad).params()  # type: ignore[arg-type]


def test_answers_from_the_request_cache_count_like_any_other(tmp_path: Path) -> None:
    """Two identical runs share a request cache: the second asks the scorer nothing, and counts the same."""
    counts, hits = [], []
    for _ in range(2):
        inner = FakeLLM(fn=answer, name="scorer")
        scorer = build_llm(inner, cache=tmp_path / "shared.sqlite", cache_policy="deterministic")
        res = Reflective(steps=4, seed=0, max_metric_calls=200).optimize(
            task(tmp_path, scorer), llm=optimizer()
        )
        counts.append(res.report["metric_calls"]["used"])
        hits.append(len(inner.calls))
    assert counts[0] == counts[1] > 6 and hits[0] > 0 and hits[1] == 0


@pytest.mark.parametrize("make", [lambda: OPRO(steps=10, per_step=2, seed=0, max_metric_calls=90),
                                  lambda: Reflective(steps=20, seed=0, max_metric_calls=60)])  # fmt: skip
def test_the_count_after_a_resume_equals_the_uninterrupted_runs(tmp_path: Path, make: Any) -> None:
    full = make().optimize(task(tmp_path), llm=optimizer(), run=str(tmp_path / "a"))
    with pytest.raises(Killed):
        make().optimize(task(tmp_path), llm=optimizer(kill_at=3), run=str(tmp_path / "b"))
    resumed = make().optimize(task(tmp_path), llm=optimizer(), run=str(tmp_path / "b"), resume=True)
    assert resumed.report["metric_calls"] == full.report["metric_calls"]
    assert (resumed.stop_reason, resumed.best, resumed.steps) == (full.stop_reason, full.best, full.steps)
    assert full.stop_reason == "metric_calls"
    # a larger limit on resume goes on from the count so far
    more = make().optimize(task(tmp_path), llm=optimizer(), run=str(tmp_path / "b"), resume=True)
    assert (
        more.report["metric_calls"]["used"] == full.report["metric_calls"]["used"]
    )  # same limit: no step fits
    bigger = type(make())(**{**_fields(make()), "max_metric_calls": 400, "steps": full.steps + 2})
    extended = bigger.optimize(task(tmp_path), llm=optimizer(), run=str(tmp_path / "b"), resume=True)
    assert extended.report["metric_calls"]["used"] > full.report["metric_calls"]["used"]
    assert extended.report["metric_calls"]["max"] == 400 and extended.steps == full.steps + 2
    starts = [r for r in read_journal(tmp_path / "b" / "journal.jsonl") if r["event"] == "run_resumed"]
    assert len(starts) == 3


def _fields(opt: Any) -> dict[str, Any]:
    import dataclasses

    return {
        f.name: getattr(opt, f.name) for f in dataclasses.fields(opt) if f.name not in ("stop", "progress")
    }
