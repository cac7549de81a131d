"""A small IFBench folder and BPO base prompts for tests of the ``ifbench`` task (tests only).

The task reads IFBench rows and composes its training prompts from BPO's prompt sets, both found
through the environment; three test files need the same folders, the same isolated request cache and
the same restored ``promptopt`` logger (the CLI configures it), so this is the one copy."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: IFBench-format rows whose every constraint a bare "Yes" follows vacuously: the collapse the
#: responsive gate and the short-answer warning are tested on
VACUOUS_ROWS: list[dict[str, Any]] = [
    {"key": "1", "prompt": "Write an essay about rain. The output should not contain any whitespace.",
     "instruction_id_list": ["format:no_whitespace"], "kwargs": [{}]},
    {"key": "2", "prompt": "Explain tides. The output should not contain any whitespace.",
     "instruction_id_list": ["format:no_whitespace"], "kwargs": [{}]},
    {"key": "3", "prompt": "Describe bees. Include exactly 2 numbers in the response.",
     "instruction_id_list": ["count:numbers"], "kwargs": [{"N": 2}]},
    {"key": "4", "prompt": "Tell a story. Answer with one of the following options: yes/no/maybe.",
     "instruction_id_list": ["format:options", "format:no_whitespace"],
     "kwargs": [{"options": "yes/no/maybe"}, {}]},
]  # fmt: skip


def install_ifbench_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: Sequence[dict[str, Any]], *, dolly: int = 0
) -> None:
    """``rows`` as the IFBench test file, 8 Vicuna prompts (and ``dolly`` Dolly ones) as BPO's base
    prompts, and a request cache under ``tmp_path``, all set through the environment."""
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    ifb = tmp_path / "ifbench"
    ifb.mkdir()
    (ifb / "IFBench_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("PROMPTOPT_IFBENCH_DATA_DIR", str(ifb))
    bpo = tmp_path / "bpo" / "testset"
    bpo.mkdir(parents=True)
    (bpo / "vicuna_eval.jsonl").write_text(
        "".join(
            json.dumps({"question_id": i, "text": f"How do bees make honey, part {i}?"}) + "\n"
            for i in range(8)
        )
    )
    if dolly:
        rows_dolly = [
            {"idx": i, "instruction": f"Summarise text {i}.", "context": "Bees live in hives."}
            for i in range(dolly)
        ]
        (bpo / "dolly_eval.json").write_text(json.dumps(rows_dolly))
    monkeypatch.setenv("PROMPTOPT_BPO_DATA_DIR", str(tmp_path / "bpo"))


@contextmanager
def kept_promptopt_logger() -> Iterator[None]:
    """Restore the ``promptopt`` logger's handlers, propagation and level after the block."""
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    try:
        yield
    finally:
        logger.handlers[:] = saved[0]
        logger.propagate, logger.level = saved[1], saved[2]
