"""A BPO rewriter bound to its settings: the loader that :mod:`promptopt.rewriting` names for ``bpo``.

Why here and not in the task: turning a folder or hub id into a :class:`~.rewriter.Rewriter`, and
building :class:`~.rewriter.RewriteSettings`, is BPO's business; instruction search only asks for
rewrites (:class:`promptopt.rewriting.BoundRewriter`) and so does not import the optimizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.optimizers.bpo.rewriter import RewriteSettings, arewrite_with, load_rewriter

__all__ = ["BoundBPORewriter", "bind_rewriter"]


@dataclass(frozen=True)
class BoundBPORewriter:
    """``rewriter`` (a loaded :class:`~.rewriter.Rewriter` or anything with its ``rewrite`` /
    ``arewrite`` signature) with ``settings``; ``owned`` when it was loaded here, so closing it
    is this object's job."""

    rewriter: Any
    settings: RewriteSettings
    owned: bool

    async def arewrite(self, prompts: Sequence[str]) -> list[str]:
        return await arewrite_with(self.rewriter, prompts, self.settings)

    async def aclose(self) -> None:
        if self.owned:
            await self.rewriter.aclose()


def bind_rewriter(rewriter: str | Path | Any, *, mode: str = "default") -> BoundBPORewriter:
    """A folder or hub id loaded as a :class:`~.rewriter.Rewriter` (closed by ``aclose``), or a
    rewriter object used as it is (left open), bound to ``RewriteSettings(mode=mode)``."""
    settings = RewriteSettings(mode=mode)  # a bad mode fails before any model is loaded
    owned = isinstance(rewriter, str | Path)
    return BoundBPORewriter(load_rewriter(rewriter, settings), settings, owned=owned)
