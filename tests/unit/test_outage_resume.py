"""Issue 23 item 1: an outage mid-step is never committed as a score; resume redoes the step.

A scorer that goes down (timeouts) in the middle of a step used to be scored as wrong answers
(``"failed": 32, "coverage": 0.2``) and kept on resume. Now the step is aborted, and the resumed run
ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO, make_task
from promptopt.llm.base import LLMOutageError, LLMTimeoutError, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.runs import JOURNAL_FILE, read_journal


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))


def _data(tmp_path: Path) -> Path:
    path = tmp_path / "add.jsonl"
    path.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(40))
    )
    return path


def _answer(request: Request) -> str:
    text = request_text(request)
    a = int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]
    right = "carefully" in text or ("even" in text and a % 2 == 0) or ("small" in text and a < 10)
    return f"The answer is {2 * a if right else 2 * a + 1}."


class Scorer:
    """Answers every question; between ``down_from`` and ``down_to`` scoring calls it times out."""

    def __init__(self, down_from: int | None = None, down_to: int | None = None) -> None:
        self.n, self.down_from, self.down_to = 0, down_from, down_to

    def __call__(self, request: Request, _i: int) -> Any:
        self.n += 1
        if (
            self.down_from is not None
            and self.down_from <= self.n
            and (self.down_to is None or self.n < self.down_to)
        ):
            return LLMTimeoutError("timed out after 30 s")
        return _answer(request)


def _optimizer() -> FakeLLM:
    """Proposals that depend on the request only (its derived seed), as a real seeded model's do."""
    words = ["Use small steps.", "Think about even numbers.", "Be brief.", "Add carefully.", "Check twice."]
    pick = lambda request: words[zlib.crc32(str(request.seed).encode()) % len(words)]  # noqa: E731
    return FakeLLM(fn=lambda request, _i: f"<INS>{pick(request)}</INS>")


def _run(tmp_path: Path, name: str, scorer: Scorer, *, resume: bool = False) -> Any:
    task = make_task(
        "instructions",
        dataset=f"jsonl:{_data(tmp_path)}",
        scorer=FakeLLM(fn=scorer, name=f"scorer-{name}"),  # a cache of its own per run, max_tokens=16
    )
    opro = OPRO(steps=3, per_step=2, seed=1)
    return opro.optimize(task, llm=_optimizer(), run=str(tmp_path / name), resume=resume)


def test_an_outage_mid_step_aborts_the_step_and_resume_reaches_the_uninterrupted_result(
    tmp_path: Path,
) -> None:
    clean = _run(tmp_path, "clean", Scorer())
    # 8 training examples, 8 scoring calls per new candidate: the last step scores calls 25-40; the scorer dies
    # partway through it and stays down
    with pytest.raises(LLMOutageError, match="failed from an outage"):
        _run(tmp_path, "cut", Scorer(down_from=30))
    records = read_journal(tmp_path / "cut" / JOURNAL_FILE)
    aborted = [r for r in records if r["event"] == "step_aborted"]
    assert aborted and aborted[-1]["reason"] == "outage"
    # nothing was committed from the step that saw the outage: no scored trial has a failed example
    for r in records:
        if r["event"] == "trial" and r["trial"].get("info"):
            assert r["trial"]["info"].get("failed", 0) == 0, r
    resumed = _run(tmp_path, "cut", Scorer(), resume=True)
    assert resumed.best == clean.best and resumed.best_score == clean.best_score
    assert [(t.step, t.text, t.score) for t in resumed.history] == [
        (t.step, t.text, t.score) for t in clean.history
    ]


def test_an_outage_in_the_final_report_is_redone_on_resume(tmp_path: Path) -> None:
    clean = _run(tmp_path, "clean", Scorer())
    with pytest.raises(LLMOutageError):
        _run(tmp_path, "cut", Scorer(down_from=60))  # after the last step: validation / test scoring
    events = [r["event"] for r in read_journal(tmp_path / "cut" / JOURNAL_FILE)]
    assert "run_finished" not in events
    resumed = _run(tmp_path, "cut", Scorer(), resume=True)
    strip = lambda report: {k: v for k, v in report["task"].items() if k != "scorer"}  # noqa: E731
    assert resumed.best == clean.best and strip(resumed.report) == strip(clean.report)


def test_an_outage_that_ends_within_the_step_leaves_no_trace_in_the_scores(tmp_path: Path) -> None:
    clean = _run(tmp_path, "clean", Scorer())
    blip = _run(tmp_path, "blip", Scorer(down_from=30, down_to=36))  # six calls time out, then it is back
    assert [(t.text, t.score) for t in blip.history] == [(t.text, t.score) for t in clean.history]
