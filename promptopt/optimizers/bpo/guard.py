"""A guard between a BPO rewriter and the target: a rewrite that loses a requirement is not sent.

Why: a rewriter is trained to make prompts *better*, not to keep them *whole*. Measured on IFBench
prompts (``bench/results/ifbench_rewriter-reflect.md``), a 0.5B LoRA rewriter in front of a 0.5B
target dropped at least one of the user's explicit constraints in 27.5 % of prompts by the
deterministic anchor rule (12.5 % by a 1.5B yes/no judge), and instruction-following accuracy
fell 6 points. A user deploying a rewriter needs a way to keep such rewrites from reaching the
target; this is it.

The rule, per (original, rewrite) pair:

- **unchanged** (the same text, up to surrounding whitespace): no judge call, the rewrite is used.
- otherwise one yes/no question to a judge LLM (temperature 0, a few tokens, so the request cache
  makes a re-asked pair free): does the rewrite keep every requirement and constraint of the
  original — the task itself, format, length, language, keywords, what must or must not appear?
  **kept** on "yes" (the rewrite is used), **reverted** on "no" (the original is used instead).
- a reply with no readable yes/no verdict is **reverted** too: a guard that cannot tell must not let
  a possibly lossy rewrite through (the opposite of the responsive gate, whose safe side is to
  leave a real answer its score). A blank rewrite of a non-blank prompt is reverted without a call.
- a judge call that fails is **error**: the original is used and the failure is counted and kept
  (the first one is shown in :meth:`GuardedRewrites.summary`). A budget refusal propagates, as for
  every judge in the project.

Verdicts are read by the project's one yes/no parser, ``parse_responsive`` of
:mod:`promptopt.evaluators.metrics.responsive`, so the guard and the responsive gate agree on what
"yes" means. The prompt is pure text and the parsing a pure function, so both are pinned in tests
without a model. Where the guard plugs in: ``bpo rewrite --guard-model``, ``AlignedLLM(guard=)``,
``bind_rewriter(guard=)``; all go through :func:`arewrite_guarded`.

With ``RewriteSettings(keep_original=True)`` (``--keep-original``) :func:`arewrite_guarded` then
sends the original and the rewrite together (:func:`~.rewriter.keep_original_prompt`): the guard
still judges the rewrite alone against the original, and a reverted or unchanged prompt is sent
as the original alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from promptopt.errors import ConfigError
from promptopt.evaluators.metrics.responsive import parse_responsive
from promptopt.llm.base import BudgetExceededError, Request, run_sync

if TYPE_CHECKING:
    from promptopt.llm.base import LLM
    from promptopt.optimizers.bpo.rewriter import RewriteSettings

__all__ = [
    "GUARD_PROMPT",
    "STATUSES",
    "GuardDecision",
    "GuardStatus",
    "GuardedRewrites",
    "RewriteGuard",
    "arewrite_guarded",
    "as_guard",
]

#: The judge's token limit: the verdict is one word (a few tokens of markup).
DEFAULT_GUARD_MAX_TOKENS = 16

GUARD_PROMPT = """You check whether a rewritten prompt keeps every requirement of the original prompt it was rewritten from.

A rewrite may rephrase, reorder and add helpful detail. It must keep the task itself and every requirement and constraint the original sets: the output format, length limits, language, keywords or phrases that must or must not appear, the number of sections, paragraphs, bullets or items, casing, punctuation, and anything else the response must or must not do.
Answer No if the rewrite drops, weakens or changes any of them, changes the task, or answers the request instead of restating it. Answer Yes only if every requirement and constraint of the original is still in the rewrite.

[Original prompt]
{original}

[Rewritten prompt]
{rewrite}

Does the rewritten prompt keep every requirement and constraint of the original? Reply with one word: Yes or No."""

GuardStatus = Literal["kept", "reverted", "unchanged", "error"]
#: Every status, in the order summaries list them.
STATUSES: tuple[GuardStatus, ...] = ("kept", "reverted", "error", "unchanged")
#: Why a pair was reverted, when it was not the judge's "no".
NO_VERDICT = "the judge gave no yes/no verdict"
EMPTY_REWRITE = "the rewrite is empty"
SAID_NO = "the judge said a requirement is lost"


@dataclass(frozen=True)
class GuardDecision:
    """What the guard did with one rewrite: ``status``, and ``reason`` for a revert or an error."""

    status: GuardStatus
    reason: str | None = None


@dataclass(frozen=True)
class GuardedRewrites:
    """The guard's result over a batch, in prompt order.

    ``prompts`` is what goes to the target (the rewrite where kept or unchanged, else the
    original; from :func:`arewrite_guarded` with ``keep_original``, the original with the rewrite
    where it is kept); ``rewrites`` is what the rewriter returned; ``decisions`` says which per
    prompt.
    """

    prompts: list[str]
    rewrites: list[str]
    decisions: list[GuardDecision]

    @property
    def statuses(self) -> list[GuardStatus]:
        return [d.status for d in self.decisions]

    def counts(self) -> dict[GuardStatus, int]:
        """How many prompts got each status (every status present, zeros included)."""
        c = Counter(self.statuses)
        return {s: c[s] for s in STATUSES}

    def summary(self) -> str:
        """One line: ``guard: K kept, R reverted (U without a verdict), E errors, N unchanged``."""
        return summary_line(self.decisions)


def summary_line(decisions: Sequence[GuardDecision]) -> str:
    """The one-line tally of ``decisions`` (the first error's message included when any failed)."""
    c = Counter(d.status for d in decisions)
    unread = sum(1 for d in decisions if d.status == "reverted" and d.reason == NO_VERDICT)
    reverted = f"{c['reverted']} reverted" + (f" ({unread} without a verdict)" if unread else "")
    errors = f"{c['error']} error{'s' if c['error'] != 1 else ''}"
    line = f"guard: {c['kept']} kept, {reverted}, {errors}, {c['unchanged']} unchanged"
    first = next((d.reason for d in decisions if d.status == "error"), None)
    return line + (f" (originals used; first error: {first})" if first else "")


def is_unchanged(original: str, rewrite: str) -> bool:
    """The rewrite is the original up to surrounding whitespace (no requirement can be lost)."""
    return original.strip() == rewrite.strip()


def decide(result: Any) -> GuardDecision:
    """One judge result (a Completion, or the exception its call raised) as a decision.

    A budget refusal is raised, not recorded: the caller set a limit and must see it hit.
    """
    if isinstance(result, BudgetExceededError):
        raise result
    if isinstance(result, BaseException):
        message = " ".join(str(result).split())[:200]
        return GuardDecision(
            "error", f"{type(result).__name__}: {message}" if message else type(result).__name__
        )
    verdict = parse_responsive(str(getattr(result, "text", "") or ""))
    if verdict == "yes":
        return GuardDecision("kept")
    return GuardDecision("reverted", SAID_NO if verdict == "no" else NO_VERDICT)


class RewriteGuard:
    """The guard over a judge ``llm`` (see the module docstring).

    ``tally`` counts every decision this guard has made, over all its calls, so that a long-lived
    caller (an ``AlignedLLM`` behind a server) can report its revert rate; each call's own
    decisions come back in its :class:`GuardedRewrites`.
    """

    def __init__(self, llm: LLM, *, max_tokens: int = DEFAULT_GUARD_MAX_TOKENS) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.name = str(getattr(llm, "name", "guard"))
        self.tally: Counter[str] = Counter()

    def request(self, original: str, rewrite: str) -> Request:
        """The judge request for one pair (temperature 0, so a cached verdict is reused)."""
        return Request.chat(
            GUARD_PROMPT.format(original=original, rewrite=rewrite),
            temperature=0.0,
            max_tokens=self.max_tokens,
        )

    async def acheck(self, originals: Sequence[str], rewrites: Sequence[str]) -> GuardedRewrites:
        """Judge every changed pair in one batch; unchanged and blank rewrites need no call."""
        originals, rewrites = [str(p) for p in originals], [str(r) for r in rewrites]
        if len(originals) != len(rewrites):
            raise ValueError(f"{len(rewrites)} rewrites for {len(originals)} prompts")
        decisions: list[GuardDecision | None] = []
        for orig, new in zip(originals, rewrites, strict=True):
            if is_unchanged(orig, new):
                decisions.append(GuardDecision("unchanged"))
            elif not new.strip():
                decisions.append(GuardDecision("reverted", EMPTY_REWRITE))
            else:
                decisions.append(None)
        todo = [i for i, d in enumerate(decisions) if d is None]
        if todo:
            requests = [self.request(originals[i], rewrites[i]) for i in todo]
            results = await self.llm.agenerate(requests, return_exceptions=True)
            for i, result in zip(todo, results, strict=True):
                decisions[i] = decide(result)
        done = [d for d in decisions if d is not None]
        self.tally.update(d.status for d in done)
        prompts = [
            new if d.status in ("kept", "unchanged") else orig
            for orig, new, d in zip(originals, rewrites, done, strict=True)
        ]
        return GuardedRewrites(prompts, rewrites, done)

    def check(self, originals: Sequence[str], rewrites: Sequence[str]) -> GuardedRewrites:
        """Sync door to :meth:`acheck`."""
        return run_sync(self.acheck(originals, rewrites))


def as_guard(guard: RewriteGuard | LLM | None) -> RewriteGuard | None:
    """A :class:`RewriteGuard` as it is, an LLM wrapped in one, None as None."""
    if guard is None or isinstance(guard, RewriteGuard):
        return guard
    return RewriteGuard(guard)


async def arewrite_guarded(
    rewriter: Any, prompts: Sequence[str], settings: RewriteSettings, guard: RewriteGuard | LLM | None
) -> GuardedRewrites:
    """Rewrite ``prompts`` with ``rewriter`` (any object :func:`~.rewriter.arewrite_with` takes),
    then pass the rewrites through ``guard``; without a guard every rewrite is sent as it is
    (status ``kept``, or ``unchanged``), so callers handle one result type either way.

    With ``settings.keep_original`` each prompt to send is then composed with its original
    (:func:`~.rewriter.keep_original_prompt`). Why here, after the guard: this is the one function
    every consumer (``bpo rewrite``, ``AlignedLLM`` and so ``serve``, ``bind_rewriter`` and so
    instruction search) gets its prompts from, so each composes once and alike; and the guard
    must judge what the rewriter wrote, not a text that contains the original."""
    from promptopt.optimizers.bpo.rewriter import arewrite_with, keep_original_prompt

    originals = [str(p) for p in prompts]
    rewrites = await arewrite_with(rewriter, originals, settings)
    if len(rewrites) != len(originals):
        raise ConfigError(f"the rewriter returned {len(rewrites)} rewrites for {len(originals)} prompts")
    checker = as_guard(guard)
    if checker is not None:
        result = await checker.acheck(originals, rewrites)
    else:
        decisions = [
            GuardDecision("unchanged" if is_unchanged(o, r) else "kept")
            for o, r in zip(originals, rewrites, strict=True)
        ]
        result = GuardedRewrites(list(rewrites), list(rewrites), decisions)
    if not settings.keep_original:
        return result
    sent = [keep_original_prompt(o, p) for o, p in zip(originals, result.prompts, strict=True)]
    return replace(result, prompts=sent)
