"""bench/ifbench_gate.py on synthetic sources: the IFBench table's answers re-judged by a scripted judge.

Why these tests: the gate's figures are only worth something when each verdict multiplies the value
of the very answer it judged (the table's value, by test id), when a verdict the judge did not give
cannot zero a real answer (unreadable counts as carrying out, the metric's rule), and when a rerun
asks the judge only what the work file does not hold. So the sources here pair answers and values
by hand, a bare "Yes" is the answer the judge refuses, and the second run's judge fails if called.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import ConfigError, DataError
from promptopt.llm.base import LLMServerError, Request
from promptopt.llm.fake import FakeLLM, request_text
from tests.unit.ifbench_data import install_ifbench_data, kept_promptopt_logger

BENCH = Path(__file__).resolve().parents[2] / "bench"
SIZES = {"train": 2, "val": 1, "test": 4, "answer_tokens": 50}
HANDWRITTEN = "Follow every constraint in the request exactly."
LONG = "Rain falls when droplets in clouds grow heavy enough to fall"

#: IFBench-format rows; the scorer's answer without whitespace follows every constraint
ROWS: list[dict[str, Any]] = [
    {"key": str(k), "prompt": f"Write an essay about topic {k}. The output should not contain any whitespace.",
     "instruction_id_list": ["format:no_whitespace"], "kwargs": [{}]} for k in range(1, 7)
]  # fmt: skip


@pytest.fixture(autouse=True)
def _data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A small IFBench folder and BPO base prompts (the task's training prompts), an isolated cache."""
    install_ifbench_data(tmp_path, monkeypatch, ROWS)
    with kept_promptopt_logger():
        yield


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their helpers as ``_common``
    return importlib.import_module("ifbench_gate")


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))


# --------------------------------------------------------------------------- scripted models


def scorer(follow: bool = True) -> FakeLLM:
    """The target: with the hand-written system prompt (``follow``) an answer without whitespace (every
    constraint followed), else one with spaces (none followed)."""

    def reply(request: Request, _: int) -> str:
        topic = request_text(request).split("topic ", 1)[1].split(".", 1)[0]
        system = (
            request.messages[0].content if request.messages and request.messages[0].role == "system" else ""
        )
        return f"Essay_on_topic_{topic}" if follow and system == HANDWRITTEN else f"An essay on topic {topic}"

    return FakeLLM(fn=reply)


def response_of(request: Request) -> str:
    """The answer a responsive-judge request shows."""
    return request_text(request).split("[Response]\n", 1)[1].rsplit("\n\nDoes the response", 1)[0]


def judge(request: Request, _: int) -> str:
    """ "No" to a bare Yes or Sure, no verdict at all to "Maybe", else "Yes"."""
    answer = response_of(request)
    return {"Yes": "No", "Sure": "No", "Maybe": "Hmm, hard to say."}.get(answer, "Yes")


# --------------------------------------------------------------------------- synthetic sources


def fixed_file(results: Path) -> list[str]:
    """``ifbench_fixed-reflect.json`` as bench/ifbench_fixed.py writes it (the product's task, the
    scripted scorer); the test ids in the task's order."""
    from promptopt.llm.base import run_sync
    from promptopt.tasks.ifbench.task import create

    task = create(scorer=scorer(), position="system", max_tokens=SIZES["answer_tokens"], train=SIZES["train"],
                  val=SIZES["val"], test=SIZES["test"], keep_answers=False)  # fmt: skip
    rows = {}
    for name, text, ev in zip(("none", "handwritten"), ("", HANDWRITTEN),
                              run_sync(task.aevaluate("test", ["", HANDWRITTEN])), strict=True):  # fmt: skip
        rows[name] = {"system_prompt": text, "per_example": [rec.score for rec in ev.records],
                      "example_ids": [rec.example_id for rec in ev.records],
                      "words": [len(rec.response.split()) for rec in ev.records]}  # fmt: skip
    write_json(results / "ifbench_fixed-reflect.json", {"sizes": SIZES, "scorer": "fake", "rows": rows})
    return rows["none"]["example_ids"]


def answer_log(run_dir: Path, ids: list[str], logged: list[tuple[str, list[str | None]]]) -> None:
    """An ``answers.jsonl``: (instruction, the test answers in ``ids`` order; None: failed, not logged)."""
    from promptopt.tasks.instructions.answer_log import instruction_id

    lines: list[dict[str, Any]] = []
    for instruction, texts in logged:
        lines.append({"kind": "instruction", "id": instruction_id(instruction), "text": instruction})
        lines += [{"kind": "answer", "split": "test", "instruction": instruction_id(instruction), "example": i,
                   "value": 0.0, "answer": t} for i, t in zip(ids, texts, strict=True) if t is not None]  # fmt: skip
    write_jsonl(run_dir / "answers.jsonl", lines)


#: seed → (values, answers) of the reflect row ``opro`` (values are the table's, by hand)
OPRO = {
    0: ([1, 1, 0.5, 0], ["Yes", "Yes", "Maybe", "Yes"]),
    1: ([1, 0, 1, 0], [LONG, "Yes", "", None]),  # a blank answer; a failed request (value 0, not logged)
}
#: seed → (values, answers) of the peers row ``gepa``: seed 0 answers exactly as opro's seed 0
GEPA = {0: OPRO[0], 1: ([0.5, 0.5, 0.5, 0.5], [LONG] * 4)}


def sources(tmp_path: Path) -> tuple[Path, list[str]]:
    """The fixed file, a reflect file of two cells (run directories with their answers and the
    no-instruction ones) and a peers file of two seeds, under ``<tmp>/bench/results``."""
    results = tmp_path / "bench" / "results"
    ids = fixed_file(results)
    none = [f"An essay on topic {i.split(':')[1]}" for i in ids]  # the scorer's answers without a prompt
    cells = []
    for seed, (values, texts) in OPRO.items():
        run_dir = f"bench/results/reflect/ifbench/opro-s{seed}"
        answer_log(tmp_path / run_dir, ids, [(f"opro {seed}", texts), ("", none)])
        cells.append({"method": "opro", "seed": seed, "instruction": f"opro {seed}", "demos": 0, "run_dir": run_dir,
                      "per_example": {"best": values, "empty": [0.0] * 4}, "metric_calls": {"used": 8}})  # fmt: skip
    write_jsonl(results / "reflect-ifbench.cells.jsonl", cells)
    write_json(results / "reflect-ifbench.json", {"sizes": {**SIZES, "budget_metric_calls": 8}, "models": {}})
    setup = {"train": 2, "val": 1, "answer_tokens": 50, "budget": 8}
    write_json(results / "ifbench_peers-ifbench.json", {"setup": setup, "test_ids": ids,
               "cells": [{"method": "gepa", "seed": s, "metric_calls": 8} for s in GEPA]})  # fmt: skip
    write_jsonl(results / "ifbench_peers-ifbench.examples.jsonl",
                [{"method": "gepa", "seed": s, "id": i, "value": v} for s, (vs, _) in GEPA.items()
                 for i, v in zip(ids, vs, strict=True)])  # fmt: skip
    for seed, (_, texts) in GEPA.items():
        write_jsonl(results / "ifbench_peers_runs" / "ifbench" / f"gepa-s{seed}" / "test.jsonl",
                    [{"id": i, "response": t} for i, t in zip(ids, texts, strict=True)])  # fmt: skip
    return results, ids


def run(gate: Any, results: Path, *extra: str, judge_llm: FakeLLM, scorer_llm: FakeLLM | None = None) -> Any:
    args = gate.parse(["--judge-model", "fake-judge", "--results-dir", str(results), "--reflect", "ifbench:opro=opro",
                       *extra])  # fmt: skip
    gate.run(args, judge_llm=judge_llm, scorer_llm=scorer_llm or scorer())
    doc = json.loads((results / "ifbench_gate.json").read_text())
    return doc, {t["row"]: t for t in doc["rows"]}


def never_called() -> FakeLLM:
    return FakeLLM(fn=lambda request, _: LLMServerError(f"asked again: {response_of(request)!r}"))


# --------------------------------------------------------------------------- tests


def test_gated_is_value_times_verdict_and_each_pair_is_judged_once(gate: Any, tmp_path: Path) -> None:
    results, ids = sources(tmp_path)
    judge_llm = FakeLLM(fn=judge)
    doc, rows = run(gate, results, judge_llm=judge_llm)
    assert [t["row"] for t in doc["rows"]] == ["none", "handwritten", "opro", "gepa"]
    opro = rows["opro"]
    # seed 0: Yes, Yes (no) · Maybe (unreadable: kept) · Yes (no) → [0, 0, 0.5, 0]
    # seed 1: long (yes) · Yes (no) · blank (no, without a call) · failed (value 0, no answer) → [1, 0, 0, 0]
    assert opro["plain"] == [62.5, 50.0] and opro["gated"] == [12.5, 25.0] and opro["gated_mean"] == 18.75
    assert opro["answers"] == 7 and opro["verdicts"] == {"yes": 1, "no": 4, "unreadable": 1, "blank": 1}
    assert opro["not_carried_out"] == round(100 * 5 / 7, 1)
    assert rows["gepa"]["gated"] == [12.5, 50.0] and rows["gepa"]["plain"] == [62.5, 50.0]
    # none: a reflect cell's no-instruction answers (values 0); handwritten: asked again, every constraint followed
    assert rows["none"]["gated"] == [0.0] and rows["none"]["answers"] == 4
    assert rows["handwritten"]["plain"] == [100.0] and rows["handwritten"]["gated"] == [100.0]
    assert (
        rows["handwritten"]["gated_vs_none"]["diff"] == 100.0
        and rows["handwritten"]["gated_vs_none"]["n"] == 4
    )
    d = rows["opro"]["gated_vs_none"]
    assert (
        d["n"] == 8 and d["seeds"] == [0, 1] and d["diff"] == 18.75 and d["ci95"][0] <= 18.75 <= d["ci95"][1]
    )
    assert rows["opro"]["plain_vs_none"]["diff"] == 56.25
    # distinct (prompt, answer) pairs: none 4, handwritten 4, opro s0 4, opro s1 2 new (the blank one is not
    # asked), gepa s0 none new (opro s0's answers), gepa s1 3 new (opro s1's long answer on the first prompt)
    assert doc["judge_calls"] == {"asked": 16, "reused": 0, "distinct": 17}
    assert len(judge_llm.calls) == 16 and all(c.temperature == 0 for c in judge_llm.calls)
    none_answer = f"An essay on topic {ids[0].split(':')[1]}"  # in both reflect cells' logs: judged once
    assert sum(response_of(c) == none_answer for c in judge_llm.calls) == 1
    assert doc["warnings"] == [] and any("opro seed 0" in n for n in doc["notices"])
    md = (results / "ifbench_gate.md").read_text()
    assert "| opro | 7 | 71.4 % | 56.2 (62.5 / 50.0) | 18.8 (12.5 / 25.0) |" in md
    assert "Unreadable verdicts (counted as carrying out): opro 1, gepa 1." in md and "Command:" in md


def test_a_rerun_judges_only_what_the_work_file_lacks(gate: Any, tmp_path: Path) -> None:
    results, ids = sources(tmp_path)
    first, _ = run(gate, results, judge_llm=FakeLLM(fn=judge))
    work = list((results / "ifbench_gate_runs").glob("verdicts-*.jsonl"))
    assert len(work) == 1 and len(work[0].read_text().splitlines()) == 17
    again, rows = run(gate, results, judge_llm=never_called())  # any judge call would fail the run
    assert again["judge_calls"] == {"asked": 0, "reused": 17, "distinct": 17}
    assert again["rows"] == first["rows"]
    # one peer answer changed: only that pair is asked
    path = results / "ifbench_peers_runs" / "ifbench" / "gepa-s1" / "test.jsonl"
    write_jsonl(path, [{"id": i, "response": "Sure" if k == 3 else LONG} for k, i in enumerate(ids)])
    judge_llm = FakeLLM(fn=judge)
    doc, rows = run(gate, results, judge_llm=judge_llm)
    assert [response_of(c) for c in judge_llm.calls] == ["Sure"] and doc["judge_calls"]["asked"] == 1
    assert rows["gepa"]["gated"] == [12.5, 37.5]


def test_a_failed_judge_request_keeps_the_others_and_writes_nothing(gate: Any, tmp_path: Path) -> None:
    results, _ = sources(tmp_path)
    flaky = FakeLLM(
        fn=lambda request, i: LLMServerError("503") if response_of(request) == LONG else judge(request, i)
    )
    # the long answer on each of the 4 prompts fails; the 13 other verdicts are journalled
    with pytest.raises(DataError, match="4 of 17 judge requests failed"):
        run(gate, results, judge_llm=flaky)
    assert not (results / "ifbench_gate.json").exists()
    judge_llm = FakeLLM(fn=judge)
    doc, _ = run(gate, results, judge_llm=judge_llm)
    assert [response_of(c) for c in judge_llm.calls] == [LONG] * 4 and doc["judge_calls"]["reused"] == 13


def test_fixed_rows_without_texts_are_asked_again_or_left_out(gate: Any, tmp_path: Path) -> None:
    results, _ = sources(tmp_path)
    # a scorer that now answers the hand-written prompt differently: checked against the stored values
    doc, rows = run(gate, results, judge_llm=FakeLLM(fn=judge), scorer_llm=scorer(follow=False))
    assert len(doc["warnings"]) == 1 and "handwritten: 4 of 4 re-created answers differ" in doc["warnings"][0]
    assert any("handwritten: answers asked again" in n for n in doc["notices"])
    doc, rows = run(
        gate, results, "--skip-fixed-rerun", judge_llm=FakeLLM(fn=judge), scorer_llm=never_called()
    )
    assert rows["handwritten"]["seeds"] == [] and rows["handwritten"]["missing_seeds"] == [None]
    assert doc["left_out"] == ["handwritten"] and any("--skip-fixed-rerun" in n for n in doc["notices"])
    assert "Rows left out (no answers here): handwritten." in (results / "ifbench_gate.md").read_text()


def test_limit_rows_keeps_none_and_refuses_unknown_rows(gate: Any, tmp_path: Path) -> None:
    results, _ = sources(tmp_path)
    judge_llm = FakeLLM(fn=judge)
    doc, rows = run(gate, results, "--limit-rows", "gepa", judge_llm=judge_llm)
    assert list(rows) == ["none", "gepa"] and rows["gepa"]["gated_vs_none"]["n"] == 8
    assert len(judge_llm.calls) == 4 + 4 + 4  # none's, gepa seed 0's and seed 1's answers: all distinct
    with pytest.raises(ConfigError, match="no row mipro"):
        run(gate, results, "--limit-rows", "gepa,mipro", judge_llm=judge_llm)


def test_estimate_only_asks_no_model_and_writes_nothing(
    gate: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, _ = sources(tmp_path)
    args = gate.parse(["--judge-model", "fake-judge", "--results-dir", str(results), "--reflect", "ifbench:opro=opro",
                       "--estimate-only"])  # fmt: skip
    gate.run(args, judge_llm=never_called(), scorer_llm=never_called())
    err = capsys.readouterr().err
    assert (
        "estimate: 12 judge calls (13 distinct (prompt, answer) pairs, 0 already judged); up to 4 more" in err
    )
    assert "4 scorer requests to re-create handwritten" in err
    assert not (results / "ifbench_gate.json").exists() and not (results / "ifbench_gate_runs").exists()


def test_verdicts_follow_the_metric_rules(gate: Any) -> None:
    from promptopt.evaluators.metrics.base import Score
    from promptopt.evaluators.metrics.responsive import EMPTY_ANSWER, NO_VERDICT, NOT_RESPONSIVE

    assert gate.verdict_of(Score(1.0, prediction="yes")) == gate.Verdict(1.0, "yes")
    assert gate.verdict_of(Score(0.0, NOT_RESPONSIVE, "no")) == gate.Verdict(0.0, "no")
    assert gate.verdict_of(Score(1.0, f"{NO_VERDICT}; it said 'Hmm'")) == gate.Verdict(1.0, "unreadable")
    assert gate.verdict_of(Score(0.0, EMPTY_ANSWER, "no")) == gate.Verdict(0.0, "blank")
