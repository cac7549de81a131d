"""Rewriting a task's splits through a BPO rewriter before anything is scored (``rewriter``), with
an optional guard on the rewrites (``guard_model``) and, with ``keep_original``, the original
question kept beside its rewrite."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from promptopt.errors import ConfigError
from promptopt.llm.base import run_sync
from promptopt.rewriting import BoundRewriter, GuardedRewriter, GuardTally, RewriterLoader, rewriter_loader
from promptopt.tasks.instructions.datasets import Example, Splits

if TYPE_CHECKING:
    from promptopt.llm.base import LLM

__all__ = ["GUARD_STATUSES", "check_guard", "check_keep_original", "recorded_guard", "rewrite_splits"]

#: The guard's decisions as a split recipe counts them: the statuses of BPO's rewrite guard
#: (``promptopt.optimizers.bpo.guard.STATUSES``, named here because a task does not import an
#: optimizer; a test pins that the two agree).
GUARD_STATUSES: tuple[str, ...] = ("kept", "reverted", "error", "unchanged")


def check_guard(rewriter: Any, guard_model: Any, guard_llm: Any) -> None:
    """Refuse a guard without a rewriter (it checks rewrites: without any it would silently do
    nothing) and a guard given in the wrong form, before any model or data is loaded."""
    if (guard_model is not None or guard_llm is not None) and rewriter is None:
        raise ConfigError("--guard-model needs --rewriter (Python: guard_model= needs rewriter=)")
    if guard_model is not None and (not isinstance(guard_model, str) or not guard_model.strip()):
        raise ConfigError(f"guard_model must be a model spec, got {guard_model!r}")
    if isinstance(guard_llm, str):
        raise ConfigError("guard_llm is an LLM object; give a model spec as guard_model (--guard-model)")


def check_keep_original(rewriter: Any, keep_original: Any) -> None:
    """Refuse ``keep_original`` without a rewriter (it composes a rewrite with its question:
    without any it would silently do nothing) or given as anything but a bool."""
    if not isinstance(keep_original, bool):
        raise ConfigError(f"keep_original must be true or false, got {keep_original!r}")
    if keep_original and rewriter is None:
        raise ConfigError("--keep-original needs --rewriter (Python: keep_original= needs rewriter=)")


def recorded_guard(guard_model: str | None, guard_llm: LLM | None) -> str | None:
    """What config.json records of the guard: its spec, else the name of the LLM object given (as
    a rewriter object is recorded by name: the run's config says a guard was used)."""
    if guard_model is not None:
        return guard_model
    return None if guard_llm is None else str(getattr(guard_llm, "name", "guard"))


def rewrite_splits(
    splits: Splits,
    rewriter: Any,
    mode: str = "default",
    *,
    load: RewriterLoader | None = None,
    guard: LLM | str | None = None,
    keep_original: bool = False,
) -> Splits:
    """``splits`` with every question rewritten by a BPO ``rewriter`` (one batch over the unique
    questions; gold answers untouched). A rewriter given as a path is loaded here and closed after.

    Why the questions and not the scorer: the scorer request is the instruction placed around the
    question, and a rewriting scorer would rewrite the instruction too; deployed, the rewriter
    sees only the user's prompt (``AlignedLLM`` rewrites first, then instructs).

    ``guard``: a judge model (an LLM, left open: the caller's; or a spec, opened here with the
    request cache and closed after) asked of every changed rewrite whether it keeps every
    requirement of the question; where it says no, cannot tell or fails, the question is scored as
    it was written (BPO's rewrite guard, as ``bpo rewrite --guard-model`` and ``serve
    --guard-model`` apply it), so the instruction is searched for the prompts a guarded deployment
    sends. The recipe's ``guard`` entry counts its decisions over the unique questions
    (:data:`GUARD_STATUSES`); ``rewriter.changed`` counts the questions scored rewritten.

    ``load`` turns ``rewriter`` into a :class:`~promptopt.rewriting.BoundRewriter`; by default
    BPO's loader, found through :func:`promptopt.rewriting.rewriter_loader` so that this task
    does not import the optimizer (and loads nothing of it unless a rewriter is given). ``load``
    is given ``guard=`` (the judge LLM, or None); with a guard it must return a
    :class:`~promptopt.rewriting.GuardedRewriter` (as BPO's loader does), whose ``guard.tally``
    the recipe records; one that does not is refused before anything is rewritten.

    ``keep_original``: each question the rewriter changed (and the guard kept) is scored as the
    question followed by its rewrite (BPO's Rephrase-and-Respond composition, as ``serve
    --keep-original`` sends it); the loader composes, given ``keep_original=True`` (a loader that
    does not take it is refused before anything is loaded). The recipe's ``rewriter`` entry then
    says ``keep_original``.
    """
    check_keep_original(rewriter, keep_original)
    questions = list(dict.fromkeys(ex.input for ex in (*splits.train, *splits.val, *splits.test)))
    loader = load or rewriter_loader()
    if keep_original:
        _check_takes_keep_original(loader)
    judge, owned = _open_guard(guard)
    try:
        new, tally = _rewrite(questions, rewriter, mode, loader, judge, keep_original)
    finally:
        if owned and judge is not None:
            run_sync(judge.aclose())

    def moved(examples: tuple[Example, ...]) -> tuple[Example, ...]:
        return tuple(replace(ex, input=new[ex.input] or ex.input) for ex in examples)

    changed = sum(1 for q in questions if (new[q] or q) != q)
    entry: dict[str, Any] = {"mode": mode, "questions": len(questions), "changed": changed}
    if keep_original:
        entry["keep_original"] = True
    recipe = {**splits.recipe, "rewriter": entry}
    if tally is not None:
        recipe["guard"] = tally
    return replace(
        splits, train=moved(splits.train), val=moved(splits.val), test=moved(splits.test), recipe=recipe
    )


def _open_guard(guard: LLM | str | None) -> tuple[LLM | None, bool]:
    """The guard's judge LLM, and whether it was opened here (a spec: then this module closes it)."""
    if not isinstance(guard, str):
        return guard, False
    from promptopt.llm.factory import build_llm

    return build_llm(guard, cache_policy="deterministic"), True


def _check_takes_keep_original(load: RewriterLoader) -> None:
    """Refuse, in one line, a loader that cannot be given ``keep_original=True`` (one written before
    the option existed): called with it, it would fail with a TypeError; called without, its
    questions would be scored without their originals."""
    try:
        sig = inspect.signature(load)
    except (TypeError, ValueError):  # no signature to read (a builtin): the call itself will tell
        return
    try:
        sig.bind("rewriter", mode="default", guard=None, keep_original=True)
    except TypeError:
        raise ConfigError("this rewriter's loader does not take keep_original (--keep-original)") from None


def _rewrite(
    questions: list[str],
    rewriter: Any,
    mode: str,
    load: RewriterLoader,
    guard: LLM | None,
    keep_original: bool = False,
) -> tuple[dict[str, str], dict[str, int] | None]:
    """question → what is scored, and the guard's counts (None without a guard). ``keep_original``
    is passed to the loader only when true (see :class:`~promptopt.rewriting.RewriterLoader`)."""
    options: dict[str, Any] = {"keep_original": True} if keep_original else {}
    bound = load(rewriter, mode=mode, guard=guard, **options)

    async def go() -> tuple[list[str], GuardTally | None]:
        try:
            checked = None if guard is None else _guard_of(bound)  # refused before any rewrite is asked
            return await bound.arewrite(questions), checked
        finally:
            await bound.aclose()  # closes only what the loader loaded

    rewrites, checked = run_sync(go())
    new = dict(zip(questions, rewrites, strict=True))
    return new, None if checked is None else {s: int(checked.tally.get(s, 0)) for s in GUARD_STATUSES}


def _guard_of(bound: BoundRewriter) -> GuardTally:
    """The guard of a rewriter loaded with ``guard=`` (:class:`~promptopt.rewriting.GuardedRewriter`:
    a fresh guard per bound rewriter, so its tally is this batch's). A loader that hands back no
    guard is refused before anything is rewritten: its rewrites would go unchecked, and the recipe
    could not say what the guard did."""
    if isinstance(bound, GuardedRewriter) and bound.guard is not None:
        return bound.guard
    raise ConfigError("this rewriter's loader does not report its guard's decisions (guard.tally)")
