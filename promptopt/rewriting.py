"""The contract between a prompt rewriter and the code that feeds it prompts, below both.

Why this module: instruction search can rewrite every question through a BPO rewriter before
anything is scored (``create(..., rewriter=DIR)``, ``opro run --rewriter DIR``), but tasks sit
below optimizers (DESIGN.md: "nothing flows back up: tasks do not import optimizers"). So a task
only knows :class:`BoundRewriter` — a rewriter with its settings fixed — and turns the rewriter it
was given (a folder, a hub id or a loaded object) into one with a :class:`RewriterLoader`. The
default loader is found in :data:`LOADERS`: ``"module:function"`` references resolved when a
rewriter is actually given (as entry points are), so neither this module nor a task imports an
optimizer, and a task without a rewriter loads nothing of BPO. A caller may pass its own loader.

A rewrite guard (a judge asked whether a rewrite keeps every requirement of its prompt; BPO's
``RewriteGuard``) is part of the contract too: a loader takes it as ``guard=`` and hands back a
:class:`GuardedRewriter`, whose ``guard.tally`` the task reads to record what the guard did. Both
are declared here, not found by attribute at run time, because the task cannot import the guard's
class to learn its shape.

A third option of the contract, ``keep_original``, asks the loader to send the original prompt
together with its rewrite (the target sees both, so a requirement the rewrite drops still
reaches it): the task records it and passes it on, the loader composes.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, cast, runtime_checkable

from promptopt.errors import ConfigError

__all__ = ["LOADERS", "BoundRewriter", "GuardTally", "GuardedRewriter", "RewriterLoader", "rewriter_loader"]


class BoundRewriter(Protocol):
    """A rewriter with its settings (mode, seed, judge, ...) fixed: what a task needs of one."""

    async def arewrite(self, prompts: Sequence[str]) -> list[str]:
        """One rewrite per prompt, in order (a prompt may come back unchanged)."""
        ...

    async def aclose(self) -> None:
        """Release what the loader loaded (a model read from a folder); a rewriter object the
        caller handed in stays open, since its owner closes it."""
        ...


class GuardTally(Protocol):
    """What a task reads of a rewrite guard: its decisions so far, counted by status (BPO's
    ``kept``, ``reverted``, ``error``, ``unchanged``; a status it never reached may be missing).
    Why only this: a task records what the guard did in its split recipe; judging is the guard's."""

    @property
    def tally(self) -> Mapping[str, int]: ...


@runtime_checkable
class GuardedRewriter(BoundRewriter, Protocol):
    """A :class:`BoundRewriter` whose rewrites pass a guard: a rewrite the guard does not keep comes
    back as its prompt. What a loader returns when it is given ``guard=``; ``guard`` is None when it
    was given none (one class can serve both). Runtime-checkable so that a caller can refuse, in
    one line, a loader that ignored the guard: its rewrites would go unchecked without a word."""

    @property
    def guard(self) -> GuardTally | None:
        """The guard the rewrites pass, fresh for this bound rewriter, so that its ``tally``
        counts this rewriter's decisions only."""
        ...


class RewriterLoader(Protocol):
    """Turns a rewriter as a user gives it (folder, hub id, loaded object) into a
    :class:`BoundRewriter` for rewrite ``mode`` (raising ``ConfigError`` on a bad one).

    ``guard``: a judge LLM (``promptopt.llm.base.LLM``; typed ``Any`` because this contract imports
    nothing of the layers it sits between), left open (its owner closes it). Given one, the loader
    returns a :class:`GuardedRewriter` with a guard over that judge.

    ``keep_original``: each prompt comes back as the original with its rewrite (Rephrase and
    Respond), after the guard, where the rewrite changed it; the original alone where not. The
    composition is the loader's because its template belongs to the rewriter's kind. A caller
    passes it only when true, so that a loader written before it existed still serves every
    rewriter without it (and is refused in one line when asked for it)."""

    def __call__(
        self, rewriter: str | Path | Any, *, mode: str, guard: Any | None = None, keep_original: bool = False
    ) -> BoundRewriter: ...


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
