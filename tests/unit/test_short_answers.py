"""The short-answers warning: a reference-free metric met mostly by answers of a word or three is
recorded in the final report (result.json ``warnings``, ``answer_lengths``), printed as one line at
the end of ``opro run`` and shown in report.md; a metric with gold answers is never warned about.

Why: on IFBench a demo search found a prompt that makes the model answer a bare "Yes", which many
constraint checkers pass; the score rose with nothing followed, and nothing said so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.evaluators.metrics import resolve_metric
from promptopt.llm.fake import FakeLLM
from promptopt.tasks.instructions.short_answers import (
    answer_length_report,
    lengths,
    reference_free,
    short_answers_warning,
)
from tests.unit.cli_helpers import run_cli
from tests.unit.ifbench_data import VACUOUS_ROWS as ROWS
from tests.unit.ifbench_data import install_ifbench_data, kept_promptopt_logger

LONG = "Rain falls when droplets in clouds grow heavy enough to come down."


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A small IFBench folder and BPO base prompts (for ``--task ifbench``), an isolated cache."""
    install_ifbench_data(tmp_path, monkeypatch, ROWS)
    with kept_promptopt_logger():
        yield


def _opro(capsys: pytest.CaptureFixture[str], rd: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """One step of ``opro run`` with ``args``: (stdout, result.json's task report)."""
    code, out, err = run_cli(capsys, "opro", "run", *args, "--optimizer-model", "fake:<INS>Be brief.</INS>",
                             "--steps", "1", "--per-step", "1", "--run-dir", str(rd))  # fmt: skip
    assert code == 0, err
    return out, json.loads((rd / "result.json").read_text())["report"]["task"]


def _ifbench(capsys: pytest.CaptureFixture[str], rd: Path, scorer: str) -> tuple[str, dict[str, Any]]:
    return _opro(capsys, rd, "--task", "ifbench", "--scorer-model", scorer, "--train", "4", "--val", "1")


def _warning_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("warning:")]


# --------------------------------------------------------------------------- the CLI


def test_a_reference_free_run_answered_yes_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = tmp_path / "run"
    out, report = _ifbench(capsys, rd, "fake:Yes")
    assert report["answer_lengths"]["best"] == {"n": 3, "short": 3, "short_pct": 100.0, "median_words": 1}
    assert report["answer_lengths"]["empty"]["short_pct"] == 100.0
    assert report["test"]["best"]["total"] == 3 and "per_example" in report  # the old keys stay
    [warning] = report["warnings"]
    assert warning.startswith("3 of the best prompt's 3 test answers (100 %) are ≤ 3 words (median 1 word;")
    assert "reference-free metric 'ifbench'" in warning
    assert warning.endswith("gate it with --metric 'all:ifbench&judge:responsive'")
    assert _warning_lines(out) == [f"warning: {warning}"]  # one line, as recorded
    code, _, err = run_cli(capsys, "opro", "report", str(rd))
    assert code == 0, err
    md = (rd / "report.md").read_text()
    assert md.count("Warning:") == 1 and f"**Warning: {warning}**" in md  # once: not the older one too


def test_a_reference_free_run_with_long_answers_does_not_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = _ifbench(capsys, tmp_path / "run", f"fake:{LONG}")
    assert (
        report["answer_lengths"]["best"]["short"] == 0
        and report["answer_lengths"]["best"]["median_words"] == 12
    )
    assert "warnings" not in report and not _warning_lines(out)


def test_a_gold_metric_with_one_word_answers_does_not_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is 2 + 2? ({i})", "target": "4"}) + "\n" for i in range(20))
    )
    out, report = _opro(capsys, tmp_path / "run", "--task", "instructions", "--dataset", f"jsonl:{data}",
                        "--metric", "exact", "--scorer-model", "fake:4")  # fmt: skip
    assert report["answer_lengths"]["best"]["short_pct"] == 100.0  # measured: every answer is one word
    assert report["test"]["best"]["accuracy"] == 100.0
    assert "warnings" not in report and not _warning_lines(out)


# --------------------------------------------------------------------------- the rule


def test_lengths_leave_failed_requests_out() -> None:
    assert lengths([None, None]) is None
    assert lengths(["Yes", "No, not today", "one two three four", None]) == {
        "n": 3, "short": 2, "short_pct": 66.7, "median_words": 3
    }  # fmt: skip
    assert lengths(["a", "a b c d"])["median_words"] == 2.5  # type: ignore[index]


def test_only_reference_free_metrics_count() -> None:
    assert reference_free(resolve_metric("ifbench")) and not reference_free(resolve_metric("exact"))
    assert not reference_free(None)  # auto: the built-in graders compare with gold answers
    judge = FakeLLM(default="Yes")
    assert reference_free(resolve_metric("all:ifbench&judge:responsive", judge_llm=judge))
    assert not reference_free(resolve_metric("all:exact&judge:responsive", judge_llm=judge))


def test_the_warning_needs_more_than_half_short() -> None:
    metric = resolve_metric("ifbench")
    half = lengths(["Yes", "Yes", LONG, LONG])
    assert short_answers_warning(half, None, metric) is None
    most = lengths(["Yes", "Yes", "Yes", LONG])
    warning = short_answers_warning(most, lengths([LONG, LONG]), metric, split="validation")
    assert warning is not None and warning.startswith("3 of the best prompt's 4 validation answers (75 %)")
    assert "(median 1 word; no instruction: 0 %, median 12)" in warning


def test_an_already_gated_metric_is_told_to_read_its_answers() -> None:
    gated = resolve_metric("all:ifbench&judge:responsive", judge_llm=FakeLLM(default="Yes"))
    got = answer_length_report(["Yes", "No"], None, gated)
    assert "empty" not in got["answer_lengths"]
    [warning] = got["warnings"]
    assert "even behind its judge:responsive gate: read the answers" in warning and "--metric" not in warning
    other = resolve_metric("all:ifbench&ifbench:loose")
    assert (
        "--metric 'all:ifbench&ifbench:loose&judge:responsive'"
        in answer_length_report(["Yes"], [], other)["warnings"][0]
    )
    assert answer_length_report([None], ["Yes"], other) == {}  # no answer of the best prompt: nothing to say
