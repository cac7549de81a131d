"""A BPO rewriter bound to its settings: the loader that :mod:`promptopt.rewriting` names for ``bpo``.

Why here and not in the task: turning a folder or hub id into a :class:`~.rewriter.Rewriter`, and
building :class:`~.rewriter.RewriteSettings`, is BPO's business; instruction search only asks for
rewrites (:class:`promptopt.rewriting.BoundRewriter`) and so does not import the optimizer.

A bound rewriter may carry a :class:`~.guard.RewriteGuard` (``bind_rewriter(..., guard=LLM)``): its
rewrites then pass the guard, a rewrite that loses a requirement of the prompt coming back as the
original, and the guard's ``tally`` counts what it kept and reverted. With ``keep_original=True``
each prompt comes back as the original followed by its rewrite (:func:`~.rewriter.keep_original_prompt`,
after the guard), the prompts ``serve --keep-original`` sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptopt.optimizers.bpo.guard import RewriteGuard, arewrite_guarded, as_guard
from promptopt.optimizers.bpo.rewriter import RewriteSettings, load_rewriter

if TYPE_CHECKING:
    from promptopt.llm.base import LLM

__all__ = ["BoundBPORewriter", "bind_rewriter"]


@dataclass(frozen=True)
class BoundBPORewriter:
    """``rewriter`` (a loaded :class:`~.rewriter.Rewriter` or anything with its ``rewrite`` /
    ``arewrite`` signature) with ``settings``; ``owned`` when it was loaded here, so closing it
    is this object's job; ``guard``, when given, checks every changed rewrite."""

    rewriter: Any
    settings: RewriteSettings
    owned: bool
    guard: RewriteGuard | None = None

    async def arewrite(self, prompts: Sequence[str]) -> list[str]:
        return (await arewrite_guarded(self.rewriter, prompts, self.settings, self.guard)).prompts

    async def aclose(self) -> None:
        if self.owned:
            await self.rewriter.aclose()


def bind_rewriter(
    rewriter: str | Path | Any,
    *,
    mode: str = "default",
    guard: RewriteGuard | LLM | None = None,
    keep_original: bool = False,
) -> BoundBPORewriter:
    """A folder or hub id loaded as a :class:`~.rewriter.Rewriter` (closed by ``aclose``), or a
    rewriter object used as it is (left open), bound to ``RewriteSettings(mode=mode,
    keep_original=keep_original)`` and to ``guard`` (a judge LLM or a :class:`~.guard.RewriteGuard`;
    its LLM stays open: the caller's)."""
    # a bad mode fails before any model is loaded
    settings = RewriteSettings(mode=mode, keep_original=keep_original)
    owned = isinstance(rewriter, str | Path)
    return BoundBPORewriter(load_rewriter(rewriter, settings), settings, owned=owned, guard=as_guard(guard))
