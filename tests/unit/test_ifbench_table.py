"""bench/ifbench_table.py on synthetic result files: one table from the fixed, reflect and peers files.

Why these tests: the table's claim is that every row is paired on the same test prompts; a row
aligned in the wrong order, or a source of other sizes let through, would print a confident but
meaningless interval. So the tests build sources whose rows only agree when they are aligned by id,
and sources that must be refused (nothing written).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import ConfigError, DataError

BENCH = Path(__file__).resolve().parents[2] / "bench"
IDS = ["ifbench:1", "ifbench:2", "ifbench:3", "ifbench:4"]
SIZES = {"train": 10, "val": 10, "test": 4, "answer_tokens": 300}


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their helpers as ``_common``
    return importlib.import_module("ifbench_table")


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))


def fixed(d: Path, none: list[float] | None = None) -> None:
    rows = {
        "none": {"system_prompt": "", "per_example": none or [0, 0, 0, 0], "example_ids": IDS},
        "handwritten": {"system_prompt": "Follow.", "per_example": [1, 0, 0.5, 0], "example_ids": IDS},
    }
    write_json(d / "ifbench_fixed-reflect.json", {"sizes": SIZES, "busy": True, "scorer": "s", "rows": rows})


def reflect(d: Path, tag: str, cells: dict[tuple[str, int], list[float]], answer_tokens: int = 300) -> None:
    write_jsonl(
        d / f"reflect-{tag}.cells.jsonl",
        [{"method": m, "seed": s, "instruction": f"{m} {s}", "demos": 0, "per_example": {"best": v, "empty": [0] * 4},
          "metric_calls": {"used": 70, "max": 80}} for (m, s), v in cells.items()],
    )  # fmt: skip
    sizes = {"budget_metric_calls": 80, "train": 10, "val": 10, "test": 4, "answer_tokens": answer_tokens}
    write_json(d / f"reflect-{tag}.json", {"sizes": sizes, "busy": True, "models": {"scorer": "s"}})


def peers(d: Path, *, tag: str = "ifbench", test_ids: list[str] | None = None, smoke: bool = False) -> None:
    ids = test_ids or list(reversed(IDS))  # another order than the fixed file's: rows must be aligned by id
    setup = {"train": 10, "val": 10, "test": len(ids), "answer_tokens": 300, "budget": 80}
    cells = [
        {"method": "gepa", "seed": s, "metric_calls": 81, "found": {"system_prompt": f"g{s}"}} for s in (0, 1)
    ]
    write_json(d / f"ifbench_peers-{tag}.json", {"smoke": smoke, "setup": setup, "versions": {"gepa": "0.1.4"},
                                                  "test_ids": ids, "cells": cells})  # fmt: skip
    # gepa follows exactly what handwritten follows: 1.0 on ifbench:1, 0.5 on ifbench:3
    value = {"ifbench:1": 1.0, "ifbench:3": 0.5}
    write_jsonl(
        d / f"ifbench_peers-{tag}.examples.jsonl",
        [{"method": "gepa", "seed": s, "id": i, "value": value.get(i, 0.0)} for s in (0, 1) for i in ids],
    )


def sources(d: Path) -> None:
    fixed(d)
    reflect(d, "ifbench", {("opro", 0): [0, 0, 0, 0], ("opro", 1): [1, 0, 0, 0],
                           ("reflective", 0): [1, 1, 0, 0], ("reflective", 1): [1, 1, 0, 0]})  # fmt: skip
    reflect(d, "ifbench-general", {("reflective", 0): [1, 1, 1, 0], ("reflective", 1): [1, 1, 1, 1]})
    peers(d)


def run(table: Any, d: Path, *extra: str) -> dict[str, Any]:
    table.main(["--results-dir", str(d), *extra])
    return json.loads((d / "ifbench.json").read_text())


def test_one_table_with_rows_aligned_by_id(table: Any, tmp_path: Path) -> None:
    sources(tmp_path)
    doc = run(table, tmp_path)
    rows = {t["row"]: t for t in doc["table"]}
    assert [t["row"] for t in doc["table"]] == [
        "none",
        "handwritten",
        "opro",
        "reflective",
        "reflective-generality",
        "gepa",
    ]
    assert (
        rows["reflective-generality"]["accuracy"] == [75.0, 100.0]
        and rows["reflective-generality"]["mean"] == 87.5
    )
    assert rows["reflective-generality"]["prompt_level"] == [75.0, 100.0] and rows["handwritten"][
        "prompt_level"
    ] == [25.0]
    assert rows["opro"]["metric_calls"] == [70, 70] and rows["gepa"]["metric_calls"] == [81, 81]
    assert rows["gepa"]["found"] == ["g0", "g1"] and rows["none"]["fixed"] and not rows["gepa"]["fixed"]
    # aligned by id, gepa equals handwritten on every example: a difference of exactly 0
    assert {k: rows["gepa"]["vs_handwritten"][k] for k in ("n", "prompts", "seeds", "diff", "ci95")} == {
        "n": 8, "prompts": 4, "seeds": [0, 1], "diff": 0.0, "ci95": [0.0, 0.0]}  # fmt: skip
    assert rows["gepa"]["accuracy"] == [37.5, 37.5]
    # a fixed row pairs with every seed; searched rows pair seed with seed
    assert (
        rows["reflective-generality"]["vs_none"]["n"] == 8
        and rows["reflective-generality"]["vs_none"]["diff"] == 87.5
    )
    assert (
        rows["reflective-generality"]["vs_gepa"]["n"] == 8
        and rows["reflective-generality"]["vs_gepa"]["diff"] == 50.0
    )
    assert rows["handwritten"]["vs_none"]["n"] == 4
    assert doc["sizes"] == {**SIZES, "budget": 80} and doc["test_ids"] == IDS and doc["warnings"] == []
    goals = {
        g["against"]: g for g in doc["goals"]
    }  # computed for the best promptopt row: `reflective-generality`
    assert {g["row"] for g in goals.values()} == {"reflective-generality"}
    assert goals["none"]["met"] is True and goals["gepa"]["met"] is True
    assert goals["handwritten"]["met"] is (rows["reflective-generality"]["vs_handwritten"]["ci95"][0] > 0)
    md = (tmp_path / "ifbench.md").read_text()
    assert (
        "| reflective-generality | reflect-ifbench-general.cells.jsonl | 75 / 100 | 87.5 |" in md
        and "Command:" in md
    )
    assert "## Goals" in md and "reflective-generality ≥ gepa: **met**" in md


def test_missing_sources_are_named_and_left_out(table: Any, tmp_path: Path) -> None:
    fixed(tmp_path)
    reflect(tmp_path, "ifbench", {("opro", 0): [0, 1, 0, 0]})
    doc = run(table, tmp_path)
    assert [t["row"] for t in doc["table"]] == ["none", "handwritten", "opro"]
    assert set(doc["missing"]) == {"reflect (ifbench-general)", "peers (ifbench)"}
    md = (tmp_path / "ifbench.md").read_text()
    assert "peers (ifbench): **missing**" in md and "no gepa row" in md


def test_the_reflect_mapping_is_a_flag(table: Any, tmp_path: Path) -> None:
    sources(tmp_path)
    doc = run(table, tmp_path, "--reflect", "ifbench:opro=opro-old,reflective=-", "--peers", "")
    assert [t["row"] for t in doc["table"]] == ["none", "handwritten", "opro-old"]
    with pytest.raises(ConfigError):
        table.parse_reflect(["ifbench:opro"])


@pytest.mark.parametrize(
    "spoil, says",
    [
        (lambda d: peers(d, tag="smoke", smoke=True), "smoke run"),  # a peers smoke file is no result
        (lambda d: peers(d, test_ids=IDS[:3] + ["ifbench:9"]), "other test prompts"),
        (lambda d: reflect(d, "ifbench-general", {("reflective", 0): [1, 1, 1, 0]}, answer_tokens=200),
         "differ in answer_tokens"),
        (lambda d: reflect(d, "ifbench-general", {("reflective", 0): [1, 1, 1]}), "3 test values"),
    ],
)  # fmt: skip
def test_sources_that_do_not_pair_are_refused_and_nothing_is_written(
    table: Any, tmp_path: Path, spoil: Any, says: str
) -> None:
    sources(tmp_path)
    spoil(tmp_path)
    extra = ["--peers", "smoke"] if says == "smoke run" else []
    with pytest.raises(DataError, match=says):
        table.main(["--results-dir", str(tmp_path), *extra])
    assert not any(tmp_path.glob("ifbench.*"))


def test_a_different_no_instruction_row_is_a_warning(table: Any, tmp_path: Path) -> None:
    sources(tmp_path)
    fixed(tmp_path, none=[0, 0, 0, 1])  # the reflect cells' `empty` values are all 0
    doc = run(table, tmp_path)
    assert len(doc["warnings"]) == 1 and "in 6 of 6 cells (up to 1 of 4 examples" in doc["warnings"][0]
    assert "**Warning:**" in (tmp_path / "ifbench.md").read_text()


def test_the_reflect_run_directory_must_have_answered_the_same_test_prompts(
    table: Any, tmp_path: Path
) -> None:
    sources(tmp_path)
    results = tmp_path / "bench" / "results"
    results.mkdir(parents=True)
    for f in tmp_path.glob("*.json*"):
        f.rename(results / f.name)
    cells = [json.loads(x) for x in (results / "reflect-ifbench.cells.jsonl").read_text().splitlines()]
    cells[0]["run_dir"] = "bench/results/reflect/ifbench/opro-s0"
    write_jsonl(results / "reflect-ifbench.cells.jsonl", cells)
    run_dir = tmp_path / cells[0]["run_dir"]
    run_dir.mkdir(parents=True)
    write_jsonl(run_dir / "answers.jsonl", [{"kind": "answer", "split": "test", "example": i} for i in IDS])
    run(table, results)  # the same ids: fine
    write_jsonl(run_dir / "answers.jsonl", [{"kind": "answer", "split": "test", "example": "ifbench:7"}])
    with pytest.raises(DataError, match="run directory of opro seed 0"):
        table.main(["--results-dir", str(results)])


# --------------------------------------------------------------------------- answer lengths


def in_repo(tmp_path: Path) -> Path:
    """The sources moved to ``<repo>/bench/results`` (run directories are relative to the repo root)."""
    results = tmp_path / "bench" / "results"
    results.mkdir(parents=True)
    for f in tmp_path.glob("*.json*"):
        f.rename(results / f.name)
    return results


Logged = tuple[str, tuple[dict[str, str], ...], list[str | None]]


def answer_log(run_dir: Path, logged: list[Logged]) -> None:
    """An ``answers.jsonl``: (instruction, demos, the test answers in IDS order; None: failed, unlogged)."""
    from promptopt.prompting import demo_set_id
    from promptopt.tasks.instructions.answer_log import instruction_id

    lines: list[dict[str, Any]] = []
    for instruction, demos, texts in logged:
        lines.append({"kind": "instruction", "id": instruction_id(instruction), "text": instruction})
        extra = {"demos": demo_set_id(demos)} if demos else {}
        lines += [{"kind": "answer", "split": "test", "instruction": instruction_id(instruction), **extra,
                   "example": i, "value": 0.0, "answer": t} for i, t in zip(IDS, texts, strict=True) if t is not None]  # fmt: skip
    run_dir.mkdir(parents=True)
    write_jsonl(run_dir / "answers.jsonl", lines)


def set_run_dirs(results: Path, tag: str, extra_cells: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    path = results / f"reflect-{tag}.cells.jsonl"
    cells = [json.loads(x) for x in path.read_text().splitlines()] + list(extra_cells)
    for c in cells:
        c["run_dir"] = f"bench/results/reflect/{tag}/{c['method']}-s{c['seed']}"
    write_jsonl(path, cells)
    return cells


LONG = "one two three four five six seven eight nine ten"
YES_DEMO = ({"input": "Is it? Answer yes, no or maybe, no explanation.", "output": "Yes"},)


def test_short_answers_from_run_directories_and_peer_answers(table: Any, tmp_path: Path) -> None:
    sources(tmp_path)
    results = in_repo(tmp_path)
    set_run_dirs(results, "ifbench-general")
    repo = tmp_path
    # seed 0 also has "Yes" answers of the same instruction asked with demos: not the cell's (it has none)
    answer_log(repo / "bench/results/reflect/ifbench-general/reflective-s0",
               [("reflective 0", (), ["Yes", "one two three", "a b c d e", LONG]),
                ("reflective 0", YES_DEMO, ["Yes"] * 4), ("", (), ["a b c d"] * 4)])  # fmt: skip
    answer_log(repo / "bench/results/reflect/ifbench-general/reflective-s1",
               [("reflective 1", (), ["No", "a b c d", "a b c d e f", LONG])])  # fmt: skip
    peer = results / "ifbench_peers_runs" / "ifbench" / "gepa-s0"
    peer.mkdir(parents=True)
    write_jsonl(peer / "test.jsonl", [{"id": i, "value": 0.0, "response": t}
                                      for i, t in zip(IDS, ["Yes", None, "a b c d", LONG], strict=True)])  # fmt: skip
    doc = run(table, results)
    rows = {t["row"]: t for t in doc["table"]}
    gen = rows["reflective-generality"]["answers"]
    assert gen["n"] == 8 and gen["short"] == 37.5 and gen["median_words"] == 4.5 and gen["seeds"] == [0, 1]
    # the failed request is no answer; seed 1's test.jsonl is not here: pooled over seed 0 alone
    assert rows["gepa"]["answers"] == {"n": 3, "short": 33.3, "median_words": 4, "short_max_words": 3,
                                       "seeds": [0], "missing_seeds": [1]}  # fmt: skip
    # the fixed file has no `words` yet: none uses a reflect cell's no-instruction answers, handwritten "—"
    assert rows["none"]["answers"]["short"] == 0.0 and "no-instruction" in rows["none"]["answers"]["from"]
    assert rows["handwritten"]["answers"] is None and rows["opro"]["answers"] is None
    assert doc["degenerate"] == [] and not any(t["degenerate"] for t in doc["table"])
    md = (results / "ifbench.md").read_text()
    assert "| 87.5 | 87.5 | 37.5 % | 4.5 |" in md and "| 33.3 % (seeds 0) | 4 |" in md
    assert "| handwritten | ifbench_fixed-reflect.json | 37.5 (fixed) | 37.5 | 25 | — | — |" in md
    assert "Degenerate answers: none" in md  # pooled; seed 0 at 2 of 4 is left out of the goals' best row
    assert "reflective-generality (seed 0: 50.0 % short answers)" in md


def test_a_degenerate_row_is_named_and_never_the_best_row(table: Any, tmp_path: Path) -> None:
    sources(tmp_path)
    results = in_repo(tmp_path)
    demos_cells = [{"method": "demos", "seed": s, "instruction": "Answer.", "demos": 1,
                    "per_example": {"best": [1, 1, 1, 1], "empty": [0] * 4},
                    "metric_calls": {"used": 76, "max": 80}} for s in (0, 1)]  # fmt: skip
    set_run_dirs(results, "ifbench-general", demos_cells)
    for s in (0, 1):
        run_dir = tmp_path / f"bench/results/reflect/ifbench-general/demos-s{s}"
        # with its demo the target answers "Yes" to everything; without it, at length
        answer_log(run_dir, [("Answer.", YES_DEMO, ["Yes"] * 4), ("Answer.", (), [LONG] * 4)])
        write_json(run_dir / "result.json", {"demos": list(YES_DEMO)})
    doc = run(table, results)
    rows = {t["row"]: t for t in doc["table"]}
    assert rows["demos"]["mean"] == 100.0 and rows["demos"]["degenerate"]
    assert rows["demos"]["answers"]["short"] == 100.0 and rows["demos"]["answers"]["median_words"] == 1
    assert [d["row"] for d in doc["degenerate"]] == ["demos"]
    # the highest mean is the degenerate row's: the goals are computed for the best of the others
    assert {g["row"] for g in doc["goals"]} == {"reflective-generality"}
    assert all(g["left_out"] == ["demos"] for g in doc["goals"])
    md = (results / "ifbench.md").read_text()
    assert (
        "**Degenerate answers**" in md and "**demos** (100.0 % of 8 answers ≤ 3 words, median 1 word)" in md
    )
    assert "must not be read as instruction following" in md
    assert "left out as degenerate" in md and "demos (100.0 % short answers)" in md
    # every promptopt row degenerate: no goal is claimed
    only = [{**rows["demos"]}]
    assert table.goals(only) == [{"goal": "a promptopt row", "met": None, "left_out": ["demos"],
                                  "why": "every promptopt row is degenerate: demos"}]  # fmt: skip


def test_the_fixed_rows_use_their_stored_word_counts(table: Any, tmp_path: Path) -> None:
    sources(tmp_path)
    doc_path = tmp_path / "ifbench_fixed-reflect.json"
    doc = json.loads(doc_path.read_text())
    doc["rows"]["none"]["words"] = [1, 1, 2, None]  # None: a failed request
    doc["rows"]["handwritten"]["words"] = [40, 50, 1, 60]
    write_json(doc_path, doc)
    rows = {t["row"]: t for t in run(table, tmp_path)["table"]}
    assert rows["none"]["answers"]["short"] == 100.0 and rows["none"]["answers"]["n"] == 3
    assert "from" not in rows["none"]["answers"] and rows["none"]["degenerate"]
    assert (
        rows["handwritten"]["answers"]["short"] == 25.0
        and rows["handwritten"]["answers"]["median_words"] == 45
    )


# --------------------------------------------------------------------------- every reflect method, a second target


def test_every_reflect_method_is_a_row_and_a_clash_is_qualified_by_tag(table: Any, tmp_path: Path) -> None:
    import reflect as reflect_bench  # bench/reflect.py: the methods its cells can have

    sources(tmp_path)
    cells = {(m, s): [1, 0, 0, 0] for m in reflect_bench.METHODS for s in (0, 1)}
    reflect(tmp_path, "ifbench", cells)
    reflect(tmp_path, "ifbench-general", {("reflective+demos", 0): [1, 1, 0, 0], ("demos", 0): [1, 1, 1, 1]})
    doc = run(table, tmp_path)
    names = [t["row"] for t in doc["table"] if t["group"] == "promptopt"]
    # ifbench's demos and reflective+demos are unnamed by the default mapping: the general file names
    # both, so they are shown with their tag instead of failing the table
    assert names == ["opro", "reflective", "demos (ifbench)", "reflective+demos (ifbench)", "reflective+demos",
                     "demos"]  # fmt: skip
    assert {t["row"]: t["accuracy"] for t in doc["table"]}["reflective+demos (ifbench)"] == [25.0, 25.0]
    # alone in the table, an unnamed method keeps its own name
    doc = run(table, tmp_path, "--reflect", "ifbench", "--peers", "none")
    assert [t["row"] for t in doc["table"]][2:] == list(reflect_bench.METHODS)
    with pytest.raises(ConfigError, match="two sources give a row 'd'"):  # two *named* alike
        table.main(["--results-dir", str(tmp_path), "--reflect", "ifbench:demos=d", "--reflect",
                    "ifbench-general:demos=d"])  # fmt: skip


def test_a_new_reflective_demos_row_gets_the_degenerate_check(table: Any, tmp_path: Path) -> None:
    sources(tmp_path)
    results = in_repo(tmp_path)
    cells = [{"method": "reflective+demos", "seed": 0, "instruction": "Answer.", "demos": 1,
              "per_example": {"best": [1, 1, 1, 1], "empty": [0] * 4}, "metric_calls": {"used": 70}}]  # fmt: skip
    set_run_dirs(results, "ifbench", cells)
    run_dir = tmp_path / "bench/results/reflect/ifbench/reflective+demos-s0"
    answer_log(run_dir, [("Answer.", YES_DEMO, ["Yes"] * 4)])
    write_json(run_dir / "result.json", {"demos": list(YES_DEMO)})
    doc = run(table, results)
    row = {t["row"]: t for t in doc["table"]}["reflective+demos"]
    assert row["source"] == "reflect-ifbench.cells.jsonl" and row["degenerate"]
    assert "reflective+demos" in doc["goals"][0]["left_out"]
    # rows whose answers are not here are named as not checked, whatever their group
    md = (results / "ifbench.md").read_text()
    assert "not checked: none, handwritten, opro, reflective, reflective-generality, gepa." in md


TARGET15 = "openai:qwen15@http://127.0.0.1:8015/v1"


def second_target(d: Path) -> None:
    """The 0.5B's sources (default tags) beside a 1.5B target's partial ones: fixed rows + one method."""
    sources(d)
    fixed(d)
    doc = json.loads((d / "ifbench_fixed-reflect.json").read_text())
    write_json(d / "ifbench_fixed-reflect15.json", {**doc, "scorer": TARGET15})
    peers_doc = json.loads((d / "ifbench_peers-ifbench.json").read_text())
    peers_doc["setup"].update(task_model="openai/s", task_base="http://127.0.0.1:8005/v1")  # the 0.5B: "s"
    write_json(d / "ifbench_peers-ifbench.json", peers_doc)
    write_jsonl(d / "reflect-ifbench15.cells.jsonl",
                [{"method": "reflective", "seed": s, "instruction": f"r15 {s}", "demos": 0, "metric_calls": {"used": 60},
                  "per_example": {"best": [1, 1, 1, 0], "empty": [0] * 4}} for s in (0, 1)])  # fmt: skip


def test_a_second_target_is_another_set_of_tags_and_another_output(table: Any, tmp_path: Path) -> None:
    second_target(tmp_path)
    flags = ["--fixed", "reflect15", "--reflect", "ifbench15", "--reflect", "ifbench15-general"]
    table.main(["--results-dir", str(tmp_path), *flags, "--peers", "none", "--rewriter", "none",
                "--out", "ifbench-qwen15"])  # fmt: skip
    assert not (tmp_path / "ifbench.json").exists()
    doc = json.loads((tmp_path / "ifbench-qwen15.json").read_text())
    assert [t["row"] for t in doc["table"]] == ["none", "handwritten", "reflective"]
    assert doc["target"] == "qwen15" and doc["missing"] == {
        "reflect (ifbench15-general)": "reflect-ifbench15-general.cells.jsonl: not there yet"
    }
    md = (tmp_path / "ifbench-qwen15.md").read_text()
    assert (
        "- reflect (ifbench15-general): **missing** (reflect-ifbench15-general.cells.jsonl: not there yet)"
        in md
    )
    assert "peers (" not in md and "reflective ≥ gepa: n/a (no gepa row)" in md
    assert (tmp_path / "ifbench-qwen15.png").exists() or doc["plot"] is None
    # the 0.5B's peers (the --peers default) in the 1.5B table: refused, nothing written
    with pytest.raises(DataError, match=r"different target models: qwen15 \(ifbench_fixed-reflect15.json"):
        table.main(["--results-dir", str(tmp_path), *flags, "--out", "mixed"])
    assert not any(tmp_path.glob("mixed.*"))
    # and the defaults still make today's table from the 0.5B's tags
    assert [t["row"] for t in run(table, tmp_path)["table"]][-1] == "gepa"


# --------------------------------------------------------------------------- the rewriter's goal


def rewriter(d: Path, rule: float, judge: float | None, tag: str = "reflect", keep: bool = False) -> None:
    """An ifbench_rewriter-<tag>.{json,examples.jsonl} whose shares of prompts dropping a constraint
    are ``rule`` and ``judge`` (None: run without a judge); ``keep``: made with --keep-original."""
    by_judge = None if judge is None else {"model": "openai:j@u", "prompts_dropping_any": round(judge * 4),
                                           "share_prompts_dropping_any": judge}  # fmt: skip
    write_json(d / f"ifbench_rewriter-{tag}.json", {
        "target": "openai:s@http://x/v1", "instruction": "Follow.", "answer_tokens": 300, "keep_original": keep,
        "split": {"val": 10, "test": 4}, "test_ids": IDS, "preservation_judge": by_judge,
        "preservation_rule": {"prompts": 4, "prompts_dropping_any": round(rule * 4),
                              "share_prompts_dropping_any": rule}})  # fmt: skip
    write_jsonl(d / f"ifbench_rewriter-{tag}.examples.jsonl",
                [{"method": m, "id": i, "value": 0.0} for m in ("rewriter", "instruction+rewriter") for i in IDS])  # fmt: skip


@pytest.mark.parametrize(
    "rule, judge, met, says",
    [
        (0.25, 0.0, False, "by rule 1 of 4 prompts (25.0 %, not met); by the judge `openai:j@u` 0 of 4 prompts "
                           "(0.0 %, met)"),
        (0.0, None, True, "by rule 0 of 4 prompts (0.0 %, met); no judge figure"),
        (0.0, 0.05, True, "by the judge `openai:j@u` 0 of 4 prompts (5.0 %, met)"),  # 5 % is within the goal
    ],
)  # fmt: skip
def test_the_rewriter_goal_line_says_both_figures(
    table: Any, tmp_path: Path, rule: float, judge: float | None, met: bool, says: str
) -> None:
    sources(tmp_path)
    rewriter(tmp_path, rule, judge)
    doc = run(table, tmp_path, "--rewriter", "reflect")
    g = doc["rewriter_goal"]
    assert g["met"] is met and g["source"] == "ifbench_rewriter-reflect.json"
    assert [m["by"] for m in g["measures"]] == (["rule"] if judge is None else ["rule", "judge"])
    verdict = "**met**" if met else "**not met**"
    line = next(
        x for x in (tmp_path / "ifbench.md").read_text().splitlines() if x.startswith("- rewriter drops")
    )
    assert (
        line.startswith(f"- rewriter drops a constraint in ≤ 5 % of prompts: {verdict} — ") and says in line
    )
    assert {t["row"] for t in doc["table"]} >= {"bpo-rewriter", "instruction+bpo-rewriter"}
    # without the rewriter source the goal is there, not applicable
    doc = run(table, tmp_path)
    assert doc["rewriter_goal"]["met"] is None
    assert (
        "- rewriter drops a constraint in ≤ 5 % of prompts: n/a (no rewriter source"
        in (tmp_path / "ifbench.md").read_text()
    )


def test_the_interval_resamples_prompts_not_seed_pairs(stats: Any) -> None:
    from ifbench_table_sources import Row

    a, b = Row("a", "promptopt", "x"), Row("b", "fixed", "y")
    gain = [1.0, 1.0] + [0.0] * 6
    for seed in (0, 1, 2):  # the same gain on the same 2 prompts at every seed: 2 prompts, not 6 draws
        a.add(seed, gain, None, "")
    b.add(None, [0.0] * 8, None, "")
    got = stats.paired(a, b)
    assert got["n"] == 24 and got["prompts"] == 8 and got["diff"] == 25.0
    assert got["ci95"][0] == 0.0  # P(neither prompt drawn in 8) = 0.75 ** 8 = 0.10: the low end reaches 0
    # resampled pair by pair, 24 draws miss all 6 gained pairs with P 0.75 ** 24 < 0.001: a false "above 0"
    assert stats.bootstrap_mean_ci(gain * 3, seed=0)[0] > 0.0


def test_two_rewriter_sources_each_get_rows_and_a_goal_line(table: Any, tmp_path: Path) -> None:
    sources(tmp_path)
    rewriter(tmp_path, 0.25, None)
    rewriter(tmp_path, 0.0, None, tag="keep", keep=True)
    doc = run(table, tmp_path, "--rewriter", "reflect,keep")
    assert {t["row"] for t in doc["table"]} >= {"bpo-rewriter", "bpo-rewriter (original kept)",
                                                 "instruction+bpo-rewriter (original kept)"}  # fmt: skip
    assert [g["met"] for g in doc["rewriter_goals"]] == [False, True] and doc["rewriter_goal"]["met"] is False
    lines = [
        x for x in (tmp_path / "ifbench.md").read_text().splitlines() if x.startswith("- rewriter drops")
    ]
    assert len(lines) == 2 and "original kept" in lines[1] and "original kept" not in lines[0]


# --------------------------------------------------------------------------- the gain by answer length, per-seed shares


E = ["e1", "e2", "e3", "e4"]


@pytest.fixture
def stats(table: Any) -> Any:
    return importlib.import_module("ifbench_table_stats")


def hand_row(table: Any, name: str, per_seed: dict[Any, tuple[list[float], dict[str, int] | None]]) -> Any:
    """A row built by hand: seed (None: fixed) → (its values in E order, its word counts by id)."""
    row = table.Row(name, "fixed" if None in per_seed else "promptopt", "hand")
    for seed, (values, by_id) in per_seed.items():
        row.add(seed, values, None, "", None if by_id is None else list(by_id.values()), by_id)
    return row


def test_a_gain_made_only_of_short_answers_is_all_in_the_short_part(table: Any, stats: Any) -> None:
    none = hand_row(table, "none", {None: ([0, 0, 0, 0], {e: 20 for e in E})})
    # every example it gains on, it answers in at most 3 words (e2: exactly 3); e3's 4 words gain nothing
    row = hand_row(table, "bare", {0: ([1, 1, 0, 0], {"e1": 1, "e2": 3, "e3": 4, "e4": 50}),
                                   1: ([0, 1, 0, 0], {"e1": 1, "e2": 2, "e3": 9, "e4": 9})})  # fmt: skip
    split = stats.by_length(row, none, E)
    assert split == {"short": {"n": 4, "points": 37.5}, "long": {"n": 4, "points": 0.0}, "no_answer": 0,
                     "short_max_words": 3}  # fmt: skip
    assert stats.paired(row, none)["diff"] == 37.5
    # the same values, but e1's answers long: that part of the gain moves to the others
    row.words_by_id[0]["e1"] = row.words_by_id[1]["e1"] = 4
    split = stats.by_length(row, none, E)
    assert split["short"] == {"n": 2, "points": 25.0} and split["long"] == {"n": 6, "points": 12.5}


def test_the_split_uses_the_pairs_of_paired_a_fixed_row_with_every_seed(table: Any, stats: Any) -> None:
    none = hand_row(table, "none", {None: ([0, 0, 1, 0], {e: 1 for e in E})})  # none's own lengths: unused
    hand = hand_row(table, "handwritten", {None: ([1, 0, 1, 1], {"e1": 2, "e2": 30, "e3": 30, "e4": 5})})
    searched = hand_row(table, "reflective", {
        0: ([1, 1, 1, 0], {"e1": 1, "e2": 8, "e3": 8, "e4": 8}),
        1: ([1, 0, 0, 1], {"e1": 8, "e2": 8, "e3": 8}),  # e4: a failed request, no answer (an "other")
        2: ([0, 1, 1, 1], {"e1": 2, "e2": 2, "e3": 8, "e4": 8}),
    })  # fmt: skip
    for a, b, n in [(searched, none, 12), (searched, hand, 12), (hand, none, 4), (none, hand, 4)]:
        d, split = stats.paired(a, b), stats.by_length(a, b, E)
        assert d["n"] == n == split["short"]["n"] + split["long"]["n"]
        assert split["short"]["points"] + split["long"]["points"] == pytest.approx(d["diff"], abs=0.01)
    split = stats.by_length(searched, none, E)
    # diffs vs none: s0 [1, 1, 0, 0], s1 [1, 0, -1, 1], s2 [0, 1, 0, 1]; short: s0 e1, s2 e1 e2
    assert split["short"] == {"n": 3, "points": round(100 * 2 / 12, 2)} and split["no_answer"] == 1
    assert split["long"] == {"n": 9, "points": 25.0}  # 1 (s0 e2) + 1 - 1 + 1 (s1, e4 unanswered) + 1 (s2 e4)
    assert stats.by_length(hand, none, E)["short"] == {"n": 1, "points": 25.0}  # e1 (2 words): +1 of 4


def test_a_row_without_answer_texts_has_no_split(table: Any, stats: Any) -> None:
    none = hand_row(table, "none", {None: ([0, 0, 0, 0], None)})
    hand = hand_row(table, "handwritten", {None: ([1, 0, 0, 0], None)})
    row = hand_row(table, "opro", {0: ([1, 1, 0, 0], None), 1: ([1, 0, 0, 0], None)})
    assert stats.by_length(row, none, E) is None and stats.by_length(hand, none, E) is None
    # one seed's answers missing: the split would leave pairs out of `paired`'s, so there is none
    part = hand_row(table, "part", {0: ([1, 1, 0, 0], {e: 1 for e in E}), 1: ([1, 0, 0, 0], None)})
    assert stats.by_length(part, none, E) is None
    assert stats.by_length(hand_row(table, "x", {0: ([1, 0, 0, 0], {"e1": 1})}), none, None) is None
    entries = {t["row"]: t for t in stats.summarize([none, hand, row], E)}
    assert (
        entries["opro"]["vs_none_by_length"] is None and entries["opro"]["vs_handwritten_by_length"] is None
    )
    assert entries["opro"]["short_by_seed"] == [] and "vs_gepa_by_length" not in entries["opro"]
    assert "vs_none_by_length" not in entries["none"]


def test_each_seed_has_its_short_share_and_a_collapsed_seed_is_named(table: Any, tmp_path: Path) -> None:
    sources(tmp_path)
    results = in_repo(tmp_path)
    set_run_dirs(results, "ifbench-general")
    base = tmp_path / "bench/results/reflect/ifbench-general"
    # seed 0 answers half its prompts with a bare word or two (50 %), seed 1 at length: pooled 25 %
    answer_log(base / "reflective-s0", [("reflective 0", (), ["Yes", "Ok sure", LONG, LONG]),
                                        ("", (), [LONG] * 4)])  # fmt: skip
    answer_log(base / "reflective-s1", [("reflective 1", (), [LONG] * 4)])
    for s in (0, 1):  # gepa's answers in its own (reversed) id order: its split must go by id
        peer = results / "ifbench_peers_runs" / "ifbench" / f"gepa-s{s}"
        peer.mkdir(parents=True)
        write_jsonl(peer / "test.jsonl", [{"id": i, "value": 0.0, "response": "Yes" if i == "ifbench:1" else LONG}
                                          for i in reversed(IDS)])  # fmt: skip
    doc = run(table, results)
    rows = {t["row"]: t for t in doc["table"]}
    gen = rows["reflective-generality"]
    assert gen["short_by_seed"] == [{"seed": 0, "n": 4, "short": 50.0}, {"seed": 1, "n": 4, "short": 0.0}]
    assert gen["answers"]["short"] == 25.0 and not gen["degenerate"]  # the pooled rule is unchanged
    # not degenerate pooled, but left out of the best-row choice for its seed 0: the next best is the row
    assert {g["row"] for g in doc["goals"]} == {"reflective"} and doc["degenerate"] == []
    assert all(g["left_out"] == ["reflective-generality"] for g in doc["goals"])
    # vs none (all 0): seed 0 gains 1 on each of its two short answers: 2 of 8 pairs carry 25 points
    assert gen["vs_none_by_length"] == {"short": {"n": 2, "points": 25.0}, "long": {"n": 6, "points": 62.5},
                                        "no_answer": 0, "short_max_words": 3}  # fmt: skip
    assert gen["vs_handwritten_by_length"]["short"] == {"n": 2, "points": 12.5}
    # gepa scores 1 on ifbench:1, the one it answers "Yes" to (in its file, the last of four)
    assert rows["gepa"]["vs_none_by_length"]["short"] == {"n": 2, "points": 25.0}
    assert rows["gepa"]["vs_none_by_length"]["long"] == {"n": 6, "points": 12.5}
    # the fixed none row has no words: a reflect cell's no-instruction answers, by id too
    assert rows["none"]["vs_handwritten_by_length"]["long"] == {"n": 4, "points": -37.5}
    assert rows["opro"]["vs_none_by_length"] is None and rows["handwritten"]["vs_none_by_length"] is None
    md = (results / "ifbench.md").read_text()
    assert "- seed 0 of reflective-generality: 50 % of its 4 answers ≤ 3 words" in md
    assert "left out as degenerate" in md and "reflective-generality (seed 0: 50.0 % short answers)" in md
    assert "seed 1 of reflective-generality" not in md and "of gepa:" not in md  # 0 % and 25 %
    section = md.split("## Gain by answer length", 1)[1].split("## Goals", 1)[0]
    assert ("- reflective-generality: vs none +87.5 = +25.0 from 2 answers ≤ 3 words + 62.5 from 6 others; "
            "vs handwritten +50.0 = +12.5 from 2 answers ≤ 3 words + 37.5 from 6 others") in section  # fmt: skip
    assert "- none: vs handwritten -37.5 = +0.0 from 0 answers ≤ 3 words - 37.5 from 4 others" in section
    assert "- — (answers not here): handwritten, opro, reflective" in section


def test_a_fixed_rows_words_pair_by_its_example_ids(table: Any) -> None:
    lengths = importlib.import_module("ifbench_lengths")
    row = {"example_ids": IDS, "words": [1, None, 4, 0]}  # None: a failed request, left out
    assert lengths.fixed_id_words(row) == {"ifbench:1": 1, "ifbench:3": 4, "ifbench:4": 0}
    assert lengths.fixed_id_words({"example_ids": IDS, "words": [1]}) is None  # torn: not paired
    assert lengths.fixed_id_words({"example_ids": IDS}) is None
    assert lengths.short_by_seed({None: [1, 2, 3, 4]}) == [{"seed": None, "n": 4, "short": 75.0}]
    assert lengths.collapsed_seeds(lengths.short_by_seed({1: [1, 9], 0: [9, 9], 2: None})) == [
        {"seed": 1, "n": 2, "short": 50.0}
    ]


def test_a_retest_file_is_one_source_with_its_groups_and_seeds(table: Any, tmp_path: Path) -> None:
    def cell(values: list[float], prompt: str, calls: int | None = None) -> dict[str, Any]:
        return {"system_prompt": prompt, "per_example": values, "example_ids": IDS, "metric_calls": calls,
                "words": [1, 40, None, 40]}  # fmt: skip

    rows = {
        "none": {"group": "fixed", "seeds": {"fixed": cell([0, 0, 0, 0], "")}},
        "handwritten": {"group": "fixed", "seeds": {"fixed": cell([1, 0, 0, 0], "Follow.")}},
        "reflective": {"group": "promptopt", "seeds": {"0": cell([1, 1, 0, 0], "r0", 66),
                                                       "1": cell([1, 1, 1, 0], "r1", 70)}},
        "gepa": {"group": "peer", "seeds": {"0": cell([1, 0, 0, 0], "g0", 82), "1": cell([1, 0, 0, 0], "g1", 80)}},
    }  # fmt: skip
    write_json(tmp_path / "ifbench_retest-t.json", {"sizes": SIZES, "scorer": "openai:q@x", "rows": rows})
    doc = run(table, tmp_path, "--fixed", "none", "--reflect", "none", "--peers", "none", "--retest", "t")
    got = {t["row"]: t for t in doc["table"]}
    assert [t["row"] for t in doc["table"]] == ["none", "handwritten", "reflective", "gepa"]
    assert got["reflective"]["group"] == "promptopt" and got["gepa"]["group"] == "peer"
    assert got["reflective"]["accuracy"] == [50.0, 75.0] and got["reflective"]["metric_calls"] == [66, 70]
    assert got["none"]["fixed"] and got["reflective"]["vs_gepa"]["diff"] == 37.5  # seed with seed
    assert {g["row"] for g in doc["goals"]} == {"reflective"} and doc["target"] == "q"
    rows["gepa"]["seeds"]["1"]["example_ids"] = list(reversed(IDS))
    write_json(tmp_path / "ifbench_retest-t.json", {"sizes": SIZES, "scorer": "openai:q@x", "rows": rows})
    with pytest.raises(DataError, match="other test ids"):
        run(table, tmp_path, "--fixed", "none", "--reflect", "none", "--peers", "none", "--retest", "t")
