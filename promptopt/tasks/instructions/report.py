"""The instruction task's report hooks (see :mod:`promptopt.tasks.base`): the run summary lines
and the markdown section of a run report. They read a finished run's ``result.json`` report only
(called on the class, with no task object or scorer), so they are plain functions of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from promptopt.tasks.base import number, short_number
from promptopt.tasks.instructions.answer_log import ANSWERS_FILE, load_answers
from promptopt.tasks.instructions.gains import gain_line
from promptopt.tasks.instructions.short_answers import SHORT_WORDS

#: how many of the reported instruction's worst test answers the run report shows
MAX_FAILURES_SHOWN = 10
#: how many characters of each demonstration's input and output the run report shows
DEMO_CHARS_SHOWN = 400


def summary(report: dict[str, Any]) -> list[str]:
    """The reported instruction, where it was searched, and its test accuracy next to the
    baselines'."""
    n = short_number
    lines = [
        f"instruction ({report.get('selected_by', 'training score')}): {report.get('instruction')!r}",
        f"dataset: {report.get('dataset')}  position: {report.get('position')}  scorer: {report.get('scorer')}",
    ]
    if report.get("metric") not in (None, "auto"):
        lines.append(f"metric: {report['metric']}")
    if isinstance(report.get("demos"), list) and report["demos"]:
        lines.append(
            f"demos: {len(report['demos'])} few-shot demonstrations before every question "
            "(the test accuracy of 'best' is with them)"
        )
    what = "score" if report.get("metric") not in (None, "auto") else "accuracy"
    unscored: dict[str, list[str]] = {}  # error → the rows it left without a score (one line each)
    for name, row in (report.get("test") or {}).items():
        if isinstance(row, dict) and row.get("accuracy") is None and row.get("error"):
            unscored.setdefault(str(row["error"]), []).append(str(name))
        elif isinstance(row, dict):
            lines.append(
                f"held-out test {what}, {name}: {n(row.get('accuracy'))} "
                f"({row.get('correct')}/{row.get('total')} full marks, failed {row.get('failed')}"
                + (f", coverage {n(row['coverage'])})" if row.get("coverage") is not None else ")")
            )
    for error, names in unscored.items():
        lines.append(f"held-out test {what}, {', '.join(names)}: not evaluated: {error}")
    if report.get("test_skipped"):
        lines.append(f"held-out test: not evaluated: {report['test_skipped']}")
    lines.append(f"best minus best baseline: {n(report.get('best_minus_best_baseline'))}")
    lines += gain_lines(report)
    return lines


def gain_lines(report: dict[str, Any]) -> list[str]:
    """The reported instruction's paired test gain over each other row, with its interval
    (:mod:`.gains`); ``[]`` for a report from before gains were recorded."""
    gains = report.get("gains")
    if not isinstance(gains, dict):
        return []
    return [gain_line(name, g) for name, g in gains.items() if isinstance(g, dict) and "ci95" in g]


def report_section(report: dict[str, Any], search: dict[str, Any]) -> list[str]:
    """A table of test accuracies and the report's short entries; a KeyError for a report of
    another shape, so the caller falls back to the generic section."""
    n = number
    if not isinstance(report.get("test"), dict):
        raise KeyError("test")  # a report of another shape: the generic section
    rows = ["| instruction | held-out test accuracy | correct / total |", "|---|---|---|"]
    for name, row in report["test"].items():
        text = str(row.get("instruction", "")).replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| {name}: `{text}` | {n(row.get('accuracy'))} | {row.get('correct')} / {row.get('total')} |"
        )
    rest = [
        f"- **{k}**: {json.dumps(v, default=str) if isinstance(v, list | dict) else n(v)}"
        for k, v in report.items()
        if k not in ("demos", "warnings", "gains")
        and not (isinstance(v, list | dict) and len(json.dumps(v, default=str)) > 300)
    ]
    return [
        *warnings_section(report),
        f"Dataset {report.get('dataset')}, position {report.get('position')}, scorer `{report.get('scorer')}`; "
        f"reported instruction selected by {report.get('selected_by')}.",
        "",
        *rows,
        "",
        *gains_section(report),
        *demos_section(report.get("demos")),
        *rest,
    ]


def gains_section(report: dict[str, Any]) -> list[str]:
    """Markdown: one bullet per paired test gain (:func:`gain_lines`) and a blank line; ``[]`` without."""
    lines = gain_lines(report)
    return [*(f"- {line}" for line in lines), ""] if lines else []


def warnings_section(report: dict[str, Any]) -> list[str]:
    """Markdown: the report's ``warnings`` (e.g. a reference-free metric answered mostly in a word
    or three, :mod:`.short_answers`), each a bold line, first, where a reader sees them before the
    accuracies they qualify; ``[]`` without any."""
    warnings = report.get("warnings")
    if not isinstance(warnings, list):
        return []
    return [line for w in warnings for line in (f"**Warning: {w}**", "")]


def demos_section(demos: Any) -> list[str]:
    """Markdown: the few-shot demonstrations deployed with the instruction, in prompt order
    (each cut at :data:`DEMO_CHARS_SHOWN` characters); ``[]`` without demos."""
    if not isinstance(demos, list) or not demos:
        return []
    lines = [f"{len(demos)} few-shot demonstrations, shown before every question in this order:", ""]
    for i, d in enumerate(demos, 1):
        d = d if isinstance(d, dict) else {}
        lines.append(
            f"{i}. **input**: {_cell(d.get('input'), DEMO_CHARS_SHOWN)} — "
            f"**output**: {_cell(d.get('output'), DEMO_CHARS_SHOWN)}"
        )
    return [*lines, ""]


def _cell(text: Any, limit: int = 300) -> str:
    t = " ".join(str(text or "").split())
    t = t if len(t) <= limit else t[:limit] + " …"
    return t.replace("|", "\\|")


def _short(records: dict[str, dict[str, Any]]) -> int:
    return sum(len(str(r.get("answer") or "").split()) <= SHORT_WORDS for r in records.values())


def short_answers_warning(best: dict[str, dict[str, Any]], base: dict[str, dict[str, Any]]) -> str | None:
    """A warning when most held-out answers of the reported prompt are a bare word or three and
    the answers without an instruction were not: a metric that a short answer passes (many
    verifiable-constraint checkers do, vacuously) has then likely been gamed, not satisfied. Seen
    for real: on IFBench a demo search taught the 0.5B to answer "Yes" to 76 % of the test prompts
    for +26 points of strict accuracy (``docs/results.md``)."""
    n_best, n_base = _short(best), _short(base)
    if not best or n_best * 2 <= len(best) or (base and n_base * 2 > len(base)):
        return None
    without = (
        f"without an instruction {n_base} of {len(base)}" if base else "no answers without an instruction"
    )
    return (
        f"**Warning: {n_best} of {len(best)} held-out answers of the reported prompt have at most "
        f"{SHORT_WORDS} words ({without}).** A metric that a short answer passes may have been gamed "
        "rather than met: read these answers before you deploy the prompt."
    )


def answers_section(run_dir: str | Path, report: dict[str, Any]) -> list[str]:
    """Markdown: the reported instruction's worst held-out answers next to the answers without
    an instruction, with the metric's feedback (from the run's ``answers.jsonl``). ``[]`` when the
    run kept no answers or has no test answers for the reported instruction. After a demo phase the
    reported instruction was tested with its ``demos`` (the report's key): those are its answers."""
    path = Path(run_dir) / ANSWERS_FILE
    instruction = report.get("instruction")
    if not path.exists() or not isinstance(instruction, str):
        return []
    log = load_answers(path)
    best = log.of("test", instruction, report.get("demos") or ())
    if not best:
        return []
    base = log.of("test", "")
    # the final report's own warning (reference-free metrics only) is shown above: not twice
    warning = None if report.get("warnings") else short_answers_warning(best, base)
    failures = sorted((r for r in best.values() if not r.get("correct")), key=lambda r: r.get("value") or 0.0)
    lines = [
        f"{len(failures)} of {len(best)} held-out answers of the reported instruction got less than full "
        f"marks; the worst {min(len(failures), MAX_FAILURES_SHOWN)}, next to the answer without an "
        "instruction (value, feedback, answer):",
        "",
    ]
    if warning:
        lines = [warning, "", *lines]
    if not failures:
        return lines[: 3 if warning else 1]
    lines += ["| example | reported instruction | no instruction |", "|---|---|---|"]
    for rec in failures[:MAX_FAILURES_SHOWN]:
        ex = log.examples.get(str(rec.get("example")), {})
        other = base.get(str(rec.get("example")))
        ex_text = _cell(ex.get("input", rec.get("example")), 200)
        if ex.get("target") is not None:
            ex_text += f" (gold: {_cell(ex['target'], 80)})"

        def side(r: dict[str, Any] | None) -> str:
            if r is None:
                return "—"
            return f"{number(r.get('value'))}: {_cell(r.get('feedback'), 160)} — «{_cell(r.get('answer'))}»"

        lines.append(f"| {ex_text} | {side(rec)} | {side(other)} |")
    return lines
