"""Resume equality for the reflective proposer: a run killed at any call — scoring the seeds, the
parent's minibatch, the reflection, the child's minibatch, its validation, the final report — and
resumed reaches the uninterrupted run's history, result and metric-call count, without asking
the optimizer for a reflection twice.

The fakes answer from the request alone (a seeded model's behaviour), and there is no request
cache here (the fakes are passed as LLMs), so what a resume does not ask again comes from the
journal, not from a cache.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest

from promptopt import make_task
from promptopt.llm.base import Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.reflective.optimizer import Reflective
from promptopt.runs import read_journal

KEYWORDS = ("even", "small", "large", "odd", "brief")


class Killed(BaseException):
    """Stands for SIGKILL: nothing in promptopt catches it, nothing more is written."""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))


def answer(request: Request) -> str:
    """Right when the instruction names a property of the question's number ("carefully": all)."""
    text = request_text(request)
    a = int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]
    rules = {"even": a % 2 == 0, "odd": a % 2 == 1, "small": a < 10, "large": a >= 25, "carefully": True}
    right = any(ok for word, ok in rules.items() if re.search(rf"\b{word}\b", text.split("What is")[0]))
    return f"The answer is {2 * a if right else 2 * a + 1}."


def reflect(request: Request) -> str:
    """The parent instruction plus a hint picked by the request's hash; now and then a block cut off
    before its first word (unparseable: a block cut off later is read up to the cut)."""
    text = request_text(request)
    parent = text.split("```\n", 1)[1].split("\n```", 1)[0]
    h = zlib.crc32(text.encode())
    if h % 7 == 0:
        return "Improved:\n```\n"
    return f"Improved:\n```\n{parent} Mind {KEYWORDS[h % len(KEYWORDS)]} numbers.\n```"


class Calls:
    """Counts every model call of a run (scorer and optimizer) and kills the run at call ``at``."""

    def __init__(self, at: int | None = None) -> None:
        self.n, self.at = 0, at

    def __call__(self, fn: Any) -> Any:
        def wrapped(request: Request, _i: int) -> str:
            self.n += 1
            if self.at is not None and self.n == self.at:
                raise Killed(f"killed at call {self.n}")
            return fn(request)

        return wrapped


def run(tmp_path: Path, name: str, calls: Calls, *, resume: bool = False) -> Any:
    data = tmp_path / "add.jsonl"
    if not data.exists():
        data.write_text(
            "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(40))
        )
    task = make_task(
        "instructions", dataset=f"jsonl:{data}", scorer=FakeLLM(fn=calls(answer), name="scorer"),
        train=12, val=6, test=6, split_seed=3,
    )  # fmt: skip
    opt = Reflective(steps=12, seed=5, minibatch_size=3, max_metric_calls=400)
    return opt.optimize(
        task, llm=FakeLLM(fn=calls(reflect), name="reflector"), run=str(tmp_path / name), resume=resume
    )


def outcome(res: Any) -> dict[str, Any]:
    return {
        "history": [t.to_json() for t in res.history],
        "best": (res.best, res.best_score),
        "stop": (res.stop_reason, res.steps),
        "metric_calls": res.report["metric_calls"],
        "test": res.report["task"]["test"],
    }


def test_the_uninterrupted_run_exercises_every_kind_of_iteration(tmp_path: Path) -> None:
    res = run(tmp_path, "a", Calls())
    statuses = {t.status for t in res.history}
    assert {"initial", "scored", "rejected", "unparseable"} <= statuses, statuses
    done = [r for r in read_journal(tmp_path / "a" / "journal.jsonl") if r["event"] == "step_done"]
    assert any(r["outcome"].startswith("skipped") for r in done)
    assert len([t for t in res.history if t.status in ("initial", "scored")]) >= 3  # a pool to choose from


def test_a_run_killed_anywhere_and_resumed_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    full = Calls()
    expected = outcome(run(tmp_path, "a", full))
    reflections = [r for r in read_journal(tmp_path / "a" / "journal.jsonl") if r["event"] == "reflection"]
    stride = max(1, full.n // 14)  # every phase: seeds, parent, reflection, child, validation, final report
    for at in range(1, full.n + 1, stride):
        name = f"b{at}"
        with pytest.raises(Killed):
            run(tmp_path, name, Calls(at))
        assert outcome(run(tmp_path, name, Calls(), resume=True)) == expected, f"killed at call {at}"
        records = read_journal(tmp_path / name / "journal.jsonl")
        steps = [r["step"] for r in records if r["event"] == "reflection"]
        assert len(steps) == len(set(steps)) == len(reflections), f"killed at call {at}"


def test_a_run_killed_twice_resumes_twice(tmp_path: Path) -> None:
    full = Calls()
    expected = outcome(run(tmp_path, "a", full))
    first, second = full.n // 3, full.n // 3  # the resumed process's own call count
    with pytest.raises(Killed):
        run(tmp_path, "b", Calls(first))
    with pytest.raises(Killed):
        run(tmp_path, "b", Calls(second), resume=True)
    assert outcome(run(tmp_path, "b", Calls(), resume=True)) == expected


def test_an_outage_aborts_the_iteration_and_resume_redoes_it(tmp_path: Path) -> None:
    """A scorer that goes down mid-run: the iteration is aborted (never scored on partial evidence),
    the run raises LLMOutageError, and a resume with the scorer back equals the uninterrupted run."""
    from promptopt.llm.base import LLMOutageError, LLMTimeoutError

    full = Calls()
    expected = outcome(run(tmp_path, "a", full))

    class Down(Calls):
        def __call__(self, fn: Any) -> Any:
            def wrapped(request: Request, _i: int) -> Any:
                self.n += 1
                return LLMTimeoutError("timed out") if self.n >= full.n // 2 else fn(request)

            return wrapped

    with pytest.raises(LLMOutageError):
        run(tmp_path, "b", Down())
    aborted = [r for r in read_journal(tmp_path / "b" / "journal.jsonl") if r["event"] == "step_aborted"]
    assert [r["reason"] for r in aborted] == ["outage"]
    assert outcome(run(tmp_path, "b", Calls(), resume=True)) == expected


def test_the_call_budget_stops_a_reflective_run_and_a_larger_one_continues_it(tmp_path: Path) -> None:
    from promptopt.llm.budget import Budget

    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(40))
    )

    def go(name: str, budget: Budget, resume: bool = False) -> Any:
        task = make_task("instructions", dataset=f"jsonl:{data}", scorer=FakeLLM(fn=Calls()(answer)),
                         train=12, val=6, test=6, split_seed=3)  # fmt: skip
        return Reflective(steps=6, seed=5).optimize(
            task, llm=FakeLLM(fn=Calls()(reflect)), budget=budget, run=str(tmp_path / name), resume=resume
        )

    stopped = go(
        "b", Budget(max_calls=2)
    )  # the optimizer's calls are charged: the third reflection is refused
    assert stopped.stop_reason == "budget" and stopped.report["metric_calls"]["used"] > 0
    assert [
        r["reason"] for r in read_journal(tmp_path / "b" / "journal.jsonl") if r["event"] == "step_aborted"
    ] == ["budget"]
    assert outcome(go("b", Budget(max_calls=50), resume=True)) == outcome(go("a", Budget(max_calls=50)))
