"""The "keeps every requirement" guard between a BPO rewriter and the target (issue 21).

A scripted judge (FakeLLM) and a stub rewriter: the guard's rule (kept / reverted / unchanged /
unreadable / failed call), that unchanged prompts cost no call, and its three doors: the Python
API (``RewriteGuard``, ``bind_rewriter(guard=)``, ``AlignedLLM(guard=)``) and ``bpo rewrite
--guard-model``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from promptopt.aligned import AlignedLLM
from promptopt.cli import main
from promptopt.errors import ConfigError
from promptopt.llm.base import BudgetExceededError, LLMResponseError, Request, run_sync
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.bpo.bind import bind_rewriter
from promptopt.optimizers.bpo.guard import (
    GUARD_PROMPT,
    NO_VERDICT,
    GuardDecision,
    RewriteGuard,
    arewrite_guarded,
    summary_line,
)
from promptopt.optimizers.bpo.rewriter import Rewriter, RewriteSettings

#: original prompt → what the stub rewriter returns for it
REWRITES = {
    "write a haiku in French": "REWRITE-KEEP write a haiku in French about the sea",
    "answer in under 50 words": "REWRITE-LOSE answer in detail",
    "list three fruits": "list three fruits",  # unchanged: never judged
    "name a colour, lowercase only": "REWRITE-HUH name a colour",
    "say hi without commas": "REWRITE-FAIL say hi",
}
PROMPTS = list(REWRITES)


def judge(**extra: Any) -> FakeLLM:
    """A judge whose reply depends on the rewrite it is shown (tags no prompt text contains)."""
    return FakeLLM(
        rules=[
            ("REWRITE-KEEP", "Yes"),
            ("REWRITE-LOSE", "No."),
            ("REWRITE-HUH", "Hard to say; it depends."),
            ("REWRITE-FAIL", LLMResponseError("judge server said 500")),
        ],
        **extra,
    )


class StubRewriter:
    """Anything with ``Rewriter.arewrite``'s signature works as a rewriter (records its calls)."""

    name = "stub-rewriter"

    def __init__(self, mapping: dict[str, str] | None = None) -> None:
        self.mapping = REWRITES if mapping is None else mapping
        self.calls: list[list[str]] = []
        self.closed = False

    async def arewrite(self, prompts: Sequence[str], settings: Any = None, **_: Any) -> list[str]:
        self.calls.append(list(prompts))
        return [self.mapping.get(p, p) for p in prompts]

    async def aclose(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True


# --------------------------------------------------------------------------- the rule


def test_the_request_shows_both_prompts_at_temperature_zero() -> None:
    req = RewriteGuard(FakeLLM()).request("orig {x} text", "new text")
    text = request_text(req)
    assert "[Original prompt]\norig {x} text\n" in text and "[Rewritten prompt]\nnew text\n" in text
    assert req.temperature == 0.0 and req.max_tokens == 16
    assert "every requirement and constraint" in GUARD_PROMPT and text.rstrip().endswith("Yes or No.")


def test_kept_reverted_unchanged_unreadable_and_error() -> None:
    llm = judge()
    guard = RewriteGuard(llm)
    out = guard.check(PROMPTS, [REWRITES[p] for p in PROMPTS])
    assert out.statuses == ["kept", "reverted", "unchanged", "reverted", "error"]
    # Only a kept (or unchanged) rewrite is sent; every other prompt goes out as the user wrote it.
    assert out.prompts == [REWRITES[PROMPTS[0]], PROMPTS[1], PROMPTS[2], PROMPTS[3], PROMPTS[4]]
    assert out.rewrites == [REWRITES[p] for p in PROMPTS]
    assert out.decisions[3].reason == NO_VERDICT
    assert "LLMResponseError" in (out.decisions[4].reason or "") and "500" in (out.decisions[4].reason or "")
    # One call per changed pair, all in one batch; the unchanged prompt was never shown to the judge.
    assert llm.batches == [4]
    assert not any("\nlist three fruits\n" in request_text(r) for r in llm.calls)
    assert out.counts() == {"kept": 1, "reverted": 2, "error": 1, "unchanged": 1}


def test_unchanged_and_blank_rewrites_cost_no_call() -> None:
    llm = judge()
    out = RewriteGuard(llm).check(["a prompt", "  other  ", "third"], ["a prompt", "other", "   "])
    assert out.statuses == ["unchanged", "unchanged", "reverted"]
    assert out.prompts == ["a prompt", "other", "third"]
    assert llm.calls == [] and llm.batches == []


@pytest.mark.parametrize(
    ("reply", "status"),
    [("yes", "kept"), ("**Yes**, it keeps them.", "kept"), ("Verdict: no", "reverted"), ("", "reverted")],
)
def test_verdicts_are_read_by_the_shared_parser(reply: str, status: str) -> None:
    out = RewriteGuard(FakeLLM(default=reply or " ")).check(["p"], ["p, rewritten"])
    assert out.statuses == [status]


def test_a_budget_refusal_propagates() -> None:
    with pytest.raises(BudgetExceededError):
        RewriteGuard(FakeLLM(default=BudgetExceededError("over budget"))).check(["p"], ["q"])


def test_summary_line_and_running_tally() -> None:
    guard = RewriteGuard(judge())
    out = guard.check(PROMPTS, [REWRITES[p] for p in PROMPTS])
    assert out.summary() == (
        "guard: 1 kept, 2 reverted (1 without a verdict), 1 error, 1 unchanged "
        "(originals used; first error: LLMResponseError: judge server said 500)"
    )
    guard.check(["write a haiku in French"], [REWRITES["write a haiku in French"]])
    assert guard.tally == {"kept": 2, "reverted": 2, "error": 1, "unchanged": 1}
    assert summary_line([GuardDecision("kept"), GuardDecision("reverted", "x")]) == (
        "guard: 1 kept, 1 reverted, 0 errors, 0 unchanged"
    )


def test_without_a_guard_every_rewrite_is_sent() -> None:
    rw = StubRewriter()
    out = run_sync(arewrite_guarded(rw, PROMPTS, RewriteSettings(), None))
    assert out.prompts == [REWRITES[p] for p in PROMPTS]
    assert out.statuses == ["kept", "kept", "unchanged", "kept", "kept"]


# --------------------------------------------------------------------------- Python API


def test_bound_rewriter_with_a_guard() -> None:
    bound = bind_rewriter(StubRewriter(), guard=judge())
    got = asyncio.run(bound.arewrite(PROMPTS))
    assert got == [REWRITES[PROMPTS[0]], *PROMPTS[1:]]
    assert bound.guard is not None and bound.guard.tally["reverted"] == 2
    assert asyncio.run(bind_rewriter(StubRewriter()).arewrite(PROMPTS[:2])) == [
        REWRITES[p] for p in PROMPTS[:2]
    ]


def test_aligned_llm_sends_the_original_where_the_guard_reverts() -> None:
    target = FakeLLM(fn=lambda req, _: "ANSWER TO " + request_text(req))
    guard = RewriteGuard(judge())
    aligned = AlignedLLM(target, rewriter=StubRewriter(), guard=guard)
    done = aligned.generate_aligned([Request.chat(p) for p in PROMPTS])
    assert [d.guard for d in done] == ["kept", "reverted", "unchanged", "reverted", "error"]
    sent = [request_text(r) for r in target.calls]
    assert sent == [REWRITES[PROMPTS[0]], *PROMPTS[1:]]
    assert [d.was_rewritten for d in done] == [True, False, False, False, False]
    assert "+guard:" in aligned.name and guard.tally["kept"] == 1
    plain = AlignedLLM(FakeLLM(default="ok"), rewriter=StubRewriter())
    assert [d.guard for d in plain.generate_aligned([Request.chat(PROMPTS[0])])] == [None]


def test_aligned_llm_guard_needs_a_rewriter() -> None:
    with pytest.raises(ConfigError, match="needs rewriter="):
        AlignedLLM(FakeLLM(), instruction="Be brief.", guard=judge())


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubRewriter:
    """``bpo rewrite`` loads this stub instead of a model; ``--guard-model judge:scripted`` is
    the scripted judge (any other spec is opened as usual)."""
    rw = StubRewriter()
    loads: list[str] = []

    def load(path: Any, *_: Any, **__: Any) -> StubRewriter:
        loads.append(str(path))
        return rw

    monkeypatch.setattr(Rewriter, "load", load)
    import promptopt.cli.bpo as cli_bpo

    real_open = cli_bpo.open_model
    monkeypatch.setattr(
        cli_bpo,
        "open_model",
        lambda spec, **kw: judge() if spec == "judge:scripted" else real_open(spec, **kw),
    )
    rw.loads = loads  # type: ignore[attr-defined]
    return rw


def _prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    return path


def test_cli_jsonl_guard_field_and_summary(
    stub: StubRewriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(
        ["bpo", "rewrite", "-r", "rw/", "-i", str(_prompts_file(tmp_path)), "--guard-model", "judge:scripted"]
    )
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["guard"] for r in rows] == ["kept", "reverted", "unchanged", "reverted", "error"]
    assert [r["optimized_prompt"] for r in rows] == [REWRITES[PROMPTS[0]], *PROMPTS[1:]]
    assert [r["id"] for r in rows] == list(range(5)) and [r["prompt"] for r in rows] == PROMPTS
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("guard: 1 kept, 2 reverted (1 without a verdict), 1 error, ")


def test_cli_without_guard_is_unchanged(
    stub: StubRewriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["bpo", "rewrite", "-r", "rw/", "-i", str(_prompts_file(tmp_path))])
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert all("guard" not in r for r in rows) and "guard:" not in captured.err
    assert [r["optimized_prompt"] for r in rows] == [REWRITES[p] for p in PROMPTS]


def test_cli_text_output_is_the_original_where_reverted(
    stub: StubRewriter, capsys: pytest.CaptureFixture[str]
) -> None:
    # A real spec through open_model (request cache included): this judge says No to everything.
    main(["bpo", "rewrite", "-r", "rw/", "answer in under 50 words", "--guard-model", "fake:No"])
    captured = capsys.readouterr()
    assert captured.out == "answer in under 50 words\n"
    assert captured.err.strip() == "guard: 0 kept, 1 reverted, 0 errors, 0 unchanged"
    main(["bpo", "rewrite", "-r", "rw/", "write a haiku in French", "--guard-model", "judge:scripted"])
    assert capsys.readouterr().out == REWRITES["write a haiku in French"] + "\n"


def test_cli_bad_guard_model_is_one_line_before_loading(
    stub: StubRewriter, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bpo", "rewrite", "-r", "rw/", "a prompt", "--guard-model", "nosuch:model"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuch" in err[0] and "Traceback" not in err[0]
    assert stub.loads == []  # type: ignore[attr-defined]
