"""The contract between a prompt rewriter and the code that feeds it prompts, below both.

Why this module: instruction search can rewrite every question through a BPO rewriter before
anything is scored (``create(..., rewriter=DIR)``, ``opro run --rewriter DIR``), but tasks sit
below optimizers (DESIGN.md: "nothing flows back up: tasks do not import optimizers"). So a task
only knows :class:`BoundRewriter` — a rewriter with its settings fixed — and turns the rewriter it
was given (a folder, a hub id or a loaded object) into one with a :class:`RewriterLoader`. The
default loader is found in :data:`LOADERS`: ``"module:function"`` references resolved when a
rewriter is actually given (as entry points are), so neither this module nor a task imports an
optimizer, and a task without a rewriter loads nothing of BPO. A caller may pass its own loader.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, cast

from promptopt.errors import ConfigError

__all__ = ["LOADERS", "BoundRewriter", "RewriterLoader", "rewriter_loader"]


class BoundRewriter(Protocol):
    """A rewriter with its settings (mode, seed, judge, ...) fixed: what a task needs of one."""

    async def arewrite(self, prompts: Sequence[str]) -> list[str]:
        """One rewrite per prompt, in order (a prompt may come back unchanged)."""
        ...

    async def aclose(self) -> None:
        """Release what the loader loaded (a model read from a folder); a rewriter object the
        caller handed in stays open, since its owner closes it."""
        ...


class RewriterLoader(Protocol):
    """Turns a rewriter as a user gives it (folder, hub id, loaded object) into a
    :class:`BoundRewriter` for rewrite ``mode`` (raising ``ConfigError`` on a bad one)."""

    def __call__(self, rewriter: str | Path | Any, *, mode: str) -> BoundRewriter: ...


#: Loaders by rewriter kind, as ``"module:function"``: resolved on use, so that the layer which
#: consumes rewrites never imports the layer which trains them.
LOADERS: Mapping[str, str] = MappingProxyType({"bpo": "promptopt.optimizers.bpo.bind:bind_rewriter"})


def rewriter_loader(kind: str = "bpo") -> RewriterLoader:
    """The registered loader of ``kind`` (imports its module now, not before)."""
    try:
        ref = LOADERS[kind]
    except KeyError:
        raise ConfigError(f"unknown rewriter kind {kind!r}; choose one of {', '.join(LOADERS)}") from None
    module, _, attr = ref.partition(":")
    return cast(RewriterLoader, getattr(importlib.import_module(module), attr))
