"""`promptopt opro run --task instructions --meta-prompt chat|bracket` end to end with fake models:
the variant reaches the meta-prompt, the parser reads its format, and a dropped proposal's
reason lands in the journal."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.runs import read_journal
from tests.unit.cli_helpers import run_cli


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


def _run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, list[dict[str, Any]]]:
    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(30))
    )
    rd = tmp_path / "run"
    args = ["opro", "run", "--task", "instructions", "--dataset", f"jsonl:{data}", "--scorer-model",
            "fake:The answer is 4.", "--steps", "1", "--per-step", "1", "--run-dir", str(rd), *extra]  # fmt: skip
    code, _, err = run_cli(capsys, *args)
    records = read_journal(rd / "journal.jsonl") if (rd / "journal.jsonl").exists() else []
    return code, err, records


def _step1(records: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    meta = next(r["meta_prompt"] for r in records if r["event"] == "step_started" and r["step"] == 1)
    trial = next(r["trial"] for r in records if r["event"] == "trial" and r["trial"]["step"] == 1)
    return meta, trial


def test_bracket_variant_skips_a_citation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, records = _run(
        tmp_path,
        capsys,
        "--meta-prompt",
        "bracket",
        "--optimizer-model",
        "fake:According to [1]: [Add carefully.]",
    )
    assert code == 0, err
    meta, trial = _step1(records)
    assert "text:\n[Let's solve the problem.]\nscore:" in meta and "square brackets" in meta
    assert trial["status"] == "scored" and trial["text"] == "Add carefully."


def test_chat_variant_journals_why_a_proposal_was_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, records = _run(tmp_path, capsys, "--optimizer-model", "fake:<INS>Put <INS> first.</INS>")
    assert code == 0, err
    meta, trial = _step1(records)
    assert "text:\n<INS>Let's solve the problem.</INS>\nscore:" in meta and "end with </INS>" in meta
    assert trial["status"] == "invalid" and "'INS'" in trial["reason"]


def test_unknown_variant_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = _run(tmp_path, capsys, "--meta-prompt", "xml", "--optimizer-model", "fake:[x]")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "unknown meta_prompt 'xml'" in lines[0] and "bracket" in lines[0]
