"""bench/ifbench_retest.py's sources: which found prompts it answers again, and which it refuses.

Why these tests: the retest's rows pair with the searches' only if it reads each seed's own found
prompt; a DSPy program or a prompt with demos is not a system prompt, and answering its bare
instruction would report a prompt nobody found, so those must be refused.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import ConfigError, DataError

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def retest(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("ifbench_retest")


def _results(tmp_path: Path) -> Path:
    cells = [
        {"method": "reflective", "seed": 1, "instruction": "B", "metric_calls": {"used": 70}, "demos": 0},
        {"method": "reflective", "seed": 0, "instruction": "A", "metric_calls": {"used": 66}},
        {"method": "demos", "seed": 0, "instruction": "C", "demos": 2},
    ]
    (tmp_path / "reflect-t.cells.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    peers = {"cells": [
        {"method": "gepa", "seed": 0, "found": {"system_prompt": "G"}, "metric_calls": 82},
        {"method": "mipro", "seed": 0, "found": {"instruction": "M", "demos": 3}, "metric_calls": 80},
    ]}  # fmt: skip
    (tmp_path / "ifbench_peers-t.json").write_text(json.dumps(peers))
    return tmp_path


def test_each_seed_keeps_its_own_prompt(retest: Any, tmp_path: Path) -> None:
    results = _results(tmp_path)
    found = retest.found_prompts("reflect", "t", "reflective", results)
    assert {s: f["system_prompt"] for s, f in found.items()} == {0: "A", 1: "B"}
    assert found[0]["metric_calls"] == 66 and found[1]["source"] == "reflect-t.cells.jsonl seed 1"
    gepa = retest.found_prompts("peers", "t", "gepa", results)
    assert gepa[0]["system_prompt"] == "G" and gepa[0]["metric_calls"] == 82


def test_what_is_not_a_system_prompt_is_refused(retest: Any, tmp_path: Path) -> None:
    results = _results(tmp_path)
    with pytest.raises(ConfigError, match="demos"):
        retest.found_prompts("reflect", "t", "demos", results)
    with pytest.raises(ConfigError, match="DSPy"):
        retest.found_prompts("peers", "t", "mipro", results)
    with pytest.raises(DataError, match="no cell"):
        retest.found_prompts("reflect", "t", "opro", results)
    with pytest.raises(DataError, match="does not exist"):
        retest.found_prompts("peers", "other", "gepa", results)


def test_source_specs(retest: Any) -> None:
    assert retest.parse_source("reflect:a-b:reflective=x") == ("reflect", "a-b", "reflective", "x")
    assert retest.parse_source("peers:t:gepa") == ("peers", "t", "gepa", "gepa")
    for bad in ("reflect:t", "table:t:gepa", "peers::gepa"):
        with pytest.raises(ConfigError, match="KIND:TAG:METHOD"):
            retest.parse_source(bad)
