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
    assert rows["gepa"]["vs_handwritten"] == {"n": 8, "seeds": [0, 1], "diff": 0.0, "ci95": [0.0, 0.0]}
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
