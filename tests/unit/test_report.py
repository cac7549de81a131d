"""report.md and plots from run directories (finished and crashed), read from files only."""

from __future__ import annotations

import random
from pathlib import Path

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
