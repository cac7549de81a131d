"""bench/ifbench_rewriter.py's per-constraint yes/no judge, read by the product's verdict reader.

Why: the rewriter's "drops a constraint" figure by judge counts a constraint the judge finds in the
original but not in the rewrite; a reply read wrongly ("Nothing" as no, "**Yes**" as unreadable)
moves that figure. The bench reads replies with ``judge:responsive``'s ``parse_responsive``, so both
agree on what a verdict is; this checks the bench's mapping onto yes / no / unreadable.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from promptopt.llm.base import LLMServerError
from promptopt.llm.fake import FakeLLM

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def rewriter_bench(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their helpers as ``_common``
    return importlib.import_module("ifbench_rewriter")


def test_judge_replies_are_read_by_the_products_yes_no_reader(rewriter_bench: Any) -> None:
    replies = {"r0": "Yes", "r1": "**No**", "r2": "Nothing here", "r3": "yesterday", "r4": "no.",
               "r5": LLMServerError("down")}  # fmt: skip
    judge = FakeLLM(fn=lambda request, _: next(v for k, v in replies.items() if f"requirement: {k}?" in
                                               request.messages[0].content))  # fmt: skip
    checkers = [SimpleNamespace(describe=lambda k=k: k) for k in replies]
    got = rewriter_bench.judge_carried(judge, ["a prompt"] * len(checkers), checkers)
    assert got == [True, False, None, None, False, None]
    assert all(c.temperature == 0 and c.max_tokens == 3 for c in judge.calls)
