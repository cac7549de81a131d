"""report.md and plots from run directories (finished and crashed), read from files only."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO
from promptopt.errors import RunDirError
from promptopt.llm.base import Request
from promptopt.llm.fake import FakeLLM
from promptopt.optimizers.base import Trial
from promptopt.optimizers.opro.report import best_so_far, write_report
from promptopt.tasks.linear_regression import LinearRegressionTask
from promptopt.tasks.tsp import TSPTask

PNG = b"\x89PNG\r\n\x1a\n"


def pair_llm() -> FakeLLM:
    def fn(req: Request, i: int) -> str:
        r = random.Random(req.seed)
        return f"[{r.randint(13, 17)}, {r.randint(12, 16)}]"

    return FakeLLM(fn=fn)


def test_best_so_far_per_direction() -> None:
    h = [Trial(0, 0, "initial", "a", 5.0), Trial(1, 0, "scored", "b", 7.0), Trial(1, 1, "unparseable", "")]
    h.append(Trial(2, 0, "scored", "c", 3.0))
    assert best_so_far(h, "min") == [(0, 5.0), (1, 5.0), (2, 3.0)]
    assert best_so_far(h, "max") == [(0, 5.0), (1, 7.0), (2, 7.0)]


def test_linreg_report(tmp_path: Path) -> None:
    OPRO(steps=3, per_step=4, stop_at_optimum=False).optimize(
        LinearRegressionTask(), llm=pair_llm(), run=tmp_path
    )
    written = write_report(tmp_path)
    names = {p.name for p in written}
    assert names == {"report.md", "score_per_step.png", "linreg_path.png"}
    for p in written[1:]:
        assert p.read_bytes().startswith(PNG)
    md = (tmp_path / "report.md").read_text()
    assert "# OPRO run: linear-regression" in md
    assert "| grid optimum | 15 | 14 |" in md
    assert "Steps to reach the optimum:" in md and "unique pairs explored" in md
    assert "![Path through (w, b)](linreg_path.png)" in md
    assert md.count("\n| 3 |") == 1  # the step table has the last step


def test_tsp_report_has_baselines_table(tmp_path: Path) -> None:
    llm = FakeLLM(default="<trace>0,1,2,3,4,5,6</trace>")
    OPRO(steps=1, per_step=1).optimize(TSPTask(n=7), llm=llm, run=tmp_path)
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| held-karp (exact) |" in md and "| nearest neighbour |" in md and "| two opt |" in md
    assert (tmp_path / "tsp_tour.png").read_bytes().startswith(PNG)


def test_report_of_a_crashed_run_without_result(tmp_path: Path) -> None:
    llm = FakeLLM(default="<trace>0,2,1,3,4</trace>")
    OPRO(steps=1, per_step=1, stop_at_optimum=False).optimize(TSPTask(n=5), llm=llm, run=tmp_path)
    (tmp_path / "result.json").unlink()
    written = write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "not finished" in md
    assert [p.name for p in written] == ["report.md", "score_per_step.png"]  # no tour without a final report


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(RunDirError):
        write_report(tmp_path)


# --------------------------------------------------------------------------- a plug-in task's own report


class PluginTask:
    """A task from outside the package: its summary, report section and plot come from its hooks."""

    name = "my-plugin"
    direction = "max"

    def __init__(self, target: int = 7) -> None:
        self.target = target

    def describe(self) -> Any:
        from promptopt.tasks.base import TaskDescription

        return TaskDescription("Guess.", "guess", "score", "Reply <g>N</g>.")

    def initial_candidates(self, rng: random.Random) -> list[Any]:
        from promptopt.tasks.base import Candidate

        return [Candidate("1", 1)]

    def parse(self, text: str) -> Any:
        from promptopt.tasks.base import Candidate, Rejected

        digits = "".join(ch for ch in text if ch.isdigit())
        return Candidate(digits, int(digits)) if digits else Rejected("unparseable", "no number")

    async def ascore(self, candidates: Sequence[Any]) -> list[Any]:
        from promptopt.tasks.base import Scored

        return [Scored(-abs(c.value - self.target), {"guess": c.value}) for c in candidates]

    def format_score(self, score: float) -> str:
        return str(score)

    def exemplars(self, rng: random.Random, k: int) -> list[str]:
        return []

    def final_report(self, best: Any, ranked: Sequence[Any] = ()) -> dict[str, Any]:
        return {"guess": best.value, "target": self.target}

    def config(self) -> dict[str, Any]:
        return {"target": self.target}

    @staticmethod
    def summary(report: dict[str, Any]) -> list[str]:
        return [f"plugin says: guessed {report['guess']} for {report['target']}"]

    @staticmethod
    def report_section(report: dict[str, Any], search: dict[str, Any]) -> list[str]:
        return [f"PLUGIN SECTION guess={report['guess']} scored={search['unique_scored']}"]

    @staticmethod
    def plots(history: Sequence[Trial], report: dict[str, Any], out_dir: Path) -> list[tuple[str, Path]]:
        path = out_dir / "plugin.png"
        path.write_bytes(PNG + b"guesses " + ",".join(str(t.info.get("guess")) for t in history).encode())
        return [("Plugin guesses", path)]


@pytest.fixture
def plugin_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.tasks import base

    class EntryPoint:
        name = "my-plugin"

        def load(self) -> type:
            return PluginTask

    monkeypatch.setattr(base, "_plugins", lambda: [EntryPoint()])
    # ``main`` configures the ``promptopt`` logger for a console process; undo it afterwards
    import logging

    logger = logging.getLogger("promptopt")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(logger, "level", logger.level)


def test_plugin_task_gets_its_own_summary_section_and_plots(
    plugin_registered: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from promptopt.cli import main

    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    rd = tmp_path / "run"
    try:
        main(["opro", "run", "--task", "my-plugin", "--task-option", "target=5", "--optimizer-model",
              "fake:my guess is 5", "--steps", "1", "--per-step", "1", "--run-dir", str(rd)])  # fmt: skip
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "plugin says: guessed 5 for 5" in out
    try:
        main(["opro", "report", str(rd)])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    md = (rd / "report.md").read_text()
    assert "PLUGIN SECTION guess=5 scored=2" in md
    assert "![Plugin guesses](plugin.png)" in md
    assert (rd / "plugin.png").read_bytes() == PNG + b"guesses 1,5"


def test_report_of_an_unknown_task_is_generic(tmp_path: Path) -> None:
    OPRO(steps=1, per_step=1).optimize(PluginTask(), llm=FakeLLM(default="3"), run=tmp_path)
    write_report(tmp_path)  # "my-plugin" is not registered here: no hooks, a generic section
    md = (tmp_path / "report.md").read_text()
    assert "- **guess**: 3" in md and "PLUGIN SECTION" not in md
