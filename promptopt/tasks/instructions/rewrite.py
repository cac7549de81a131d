"""Rewriting a task's splits through a BPO rewriter before anything is scored (``rewriter``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from promptopt.llm.base import run_sync
from promptopt.rewriting import RewriterLoader, rewriter_loader
from promptopt.tasks.instructions.datasets import Example, Splits


def rewrite_splits(
    splits: Splits, rewriter: Any, mode: str = "default", *, load: RewriterLoader | None = None
) -> Splits:
    """``splits`` with every question rewritten by a BPO ``rewriter`` (one batch over the unique
    questions; gold answers untouched). A rewriter given as a path is loaded here and closed after.

    Why the questions and not the scorer: the scorer request is the instruction placed around the
    question, and a rewriting scorer would rewrite the instruction too; deployed, the rewriter
    sees only the user's prompt (``AlignedLLM`` rewrites first, then instructs).

    ``load`` turns ``rewriter`` into a :class:`~promptopt.rewriting.BoundRewriter`; by default
    BPO's loader, found through :func:`promptopt.rewriting.rewriter_loader` so that this task
    does not import the optimizer (and loads nothing of it unless a rewriter is given).
    """
    bound = (load or rewriter_loader())(rewriter, mode=mode)
    questions = list(dict.fromkeys(ex.input for ex in (*splits.train, *splits.val, *splits.test)))

    async def go() -> list[str]:
        try:
            return await bound.arewrite(questions)
        finally:
            await bound.aclose()  # closes only what the loader loaded

    new = dict(zip(questions, run_sync(go()), strict=True))

    def moved(examples: tuple[Example, ...]) -> tuple[Example, ...]:
        return tuple(replace(ex, input=new[ex.input] or ex.input) for ex in examples)

    changed = sum(1 for q in questions if new[q] != q)
    recipe = {**splits.recipe, "rewriter": {"mode": mode, "questions": len(questions), "changed": changed}}
    return replace(
        splits, train=moved(splits.train), val=moved(splits.val), test=moved(splits.test), recipe=recipe
    )
