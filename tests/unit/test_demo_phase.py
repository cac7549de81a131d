"""``--demos K`` end to end: the demo phase runs between the search and the final report, spends what
the search left of the metric-call budget, and its choice reaches result.json, the report and the
deployed model; a run interrupted in the demo phase resumes to the same choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO, AlignedLLM
from promptopt.llm.base import LLMOutageError, LLMTimeoutError, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.opro.demo_phase import demo_shortlist
from tests.unit.demo_fakes import CAREFUL, answer, make_task, write_data


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))


def _optimizer() -> FakeLLM:
    return FakeLLM(default=f"<INS>{CAREFUL}</INS>")


class Scorer:
    """:func:`answer`, with an outage from the ``down_from``-th demo-bearing request on."""

    def __init__(self, down_from: int | None = None) -> None:
        self.with_demos, self.down_from = 0, down_from

    def __call__(self, request: Request, i: int) -> Any:
        if any(m.role == "assistant" for m in request.messages or ()):
            self.with_demos += 1
            if self.down_from is not None and self.with_demos >= self.down_from:
                return LLMTimeoutError("timed out")
        return answer(request, i)


def _run(tmp_path: Path, name: str, scorer: Scorer, *, resume: bool = False, limit: int | None = 2000) -> Any:
    task = make_task(write_data(tmp_path / "add.jsonl"), scorer=FakeLLM(fn=scorer, name=f"scorer-{name}"))
    opro = OPRO(steps=2, per_step=1, seed=0, demos=2, max_metric_calls=limit)
    return opro.optimize(task, llm=_optimizer(), run=str(tmp_path / name), resume=resume)


def test_the_demo_phase_chooses_demos_that_the_result_report_and_deployment_carry(tmp_path: Path) -> None:
    result = _run(tmp_path, "a", Scorer())
    saved = json.loads((tmp_path / "a" / "result.json").read_text())
    report = saved["report"]["task"]
    assert report["instruction"] == CAREFUL and report["selected_by"] == "validation accuracy with demos"
    assert len(saved["demos"]) == 2 and saved["demos"] == report["demos"]
    assert saved["demos"][0]["output"].strip().isdigit()  # the labelled set is the one the scorer rewards
    assert report["test"]["best"]["accuracy"] == 100.0
    assert report["test"]["best_without_demos"]["accuracy"] == pytest.approx(50.0, abs=5)
    assert report["demo_search"]["metric_calls"] > 0
    # the whole run stayed within its metric-call limit
    assert saved["report"]["metric_calls"]["max"] == 2000
    assert 0 < saved["report"]["metric_calls"]["used"] <= 2000
    assert result.report["task"]["demos"] == saved["demos"]
    # deployed: the demo turns come before the question
    seen = FakeLLM(default="ok")
    deployed = AlignedLLM.from_run(seen, tmp_path / "a")
    deployed.generate([Request.chat("What is 3 + 3?")])
    roles = [m.role for m in seen.calls[0].messages or ()]
    assert roles[-5:] == ["user", "assistant", "user", "assistant", "user"]
    assert CAREFUL in request_text(seen.calls[0])


def test_a_run_interrupted_in_the_demo_phase_resumes_to_the_same_choice(tmp_path: Path) -> None:
    clean = json.loads(
        (_run(tmp_path, "clean", Scorer()) and (tmp_path / "clean" / "result.json")).read_text()
    )
    with pytest.raises(LLMOutageError):
        _run(tmp_path, "cut", Scorer(down_from=20))
    events = [
        json.loads(line)["event"] for line in (tmp_path / "cut" / "journal.jsonl").read_text().splitlines()
    ]
    assert "demos_bootstrap" in events and "run_finished" not in events
    _run(tmp_path, "cut", Scorer(), resume=True)
    resumed = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert resumed["demos"] == clean["demos"]
    strip = lambda r: {k: v for k, v in r["report"]["task"].items() if k != "scorer"}  # noqa: E731
    assert strip(resumed) == strip(clean)
    assert resumed["report"]["metric_calls"] == clean["report"]["metric_calls"]


def test_the_shortlist_is_best_first_and_distinct() -> None:
    from promptopt.optimizers.base import Trial

    trials = [Trial(0, 0, "initial", "a", score=10.0), Trial(1, 0, "scored", "b", score=30.0),
              Trial(1, 1, "scored", "c", score=20.0), Trial(2, 0, "duplicate", "b"),
              Trial(2, 1, "scored", "d", score=5.0)]  # fmt: skip
    assert demo_shortlist(trials, trials[1], "max") == ["b", "c", "a"]


def test_demos_without_optuna_are_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The missing extra is named before the search spends anything (it used to be found only at
    the demo phase, after the whole instruction search)."""
    from promptopt import extras
    from promptopt.errors import MissingExtraError

    real = extras.is_installed
    monkeypatch.setattr(extras, "is_installed", lambda module: module != "optuna" and real(module))
    scorer = FakeLLM(fn=answer)
    task = make_task(write_data(tmp_path / "add.jsonl"), scorer=scorer)
    with pytest.raises(MissingExtraError, match=r"promptopt\[demos\]"):
        OPRO(steps=1, per_step=1, seed=0, demos=2).optimize(task, llm=_optimizer(), run=str(tmp_path / "r"))
    assert not scorer.calls and not (tmp_path / "r").exists()
