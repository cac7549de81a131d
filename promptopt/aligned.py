"""``AlignedLLM``: a deployed LLM with an optimized prompt applied to every call.

Why an LLM wrapper rather than a helper function: everything in promptopt (scorers, judges, the
CLI, users' scripts) talks to the ``LLM`` protocol, so an aligned model drops in anywhere a model
does, over any backend (OpenAI, a vLLM server, the local model, a fake).

Two kinds of alignment:
- ``rewriter=DIR`` (BPO): the user's last message is rewritten by a trained rewriter, in one batch
  for the whole request list, and the rewritten request goes to the deployed model.
  ``agenerate_aligned`` also returns the rewritten prompt with each answer.
- ``instruction=TEXT, position=...`` (OPRO): the instruction found by search is placed exactly as
  it was scored (``promptopt.prompting.apply_instruction``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM, Completion, LLMError, LLMWrapper, Message, Request, run_sync
from promptopt.prompting import apply_instruction, check_position

if TYPE_CHECKING:
    from promptopt.optimizers.bpo.rewriter import Rewriter, RewriteSettings


@dataclass(frozen=True)
class AlignedCompletion:
    """One answer of the deployed model with the prompt it was actually asked.

    ``original``/``rewritten`` are the last user message (or plain prompt) before and after
    alignment; ``completion`` is the model's answer, or its ``LLMError`` with ``return_exceptions``.
    """

    original: str
    rewritten: str
    request: Request
    completion: Completion | LLMError

    @property
    def text(self) -> str:
        return self.completion.text if isinstance(self.completion, Completion) else ""


def _last_user_index(messages: Sequence[Message]) -> int | None:
    return max((i for i, m in enumerate(messages) if m.role == "user"), default=None)


def user_text(request: Request) -> str:
    """The text alignment acts on: the plain prompt, or the last user message ('' if none)."""
    if request.prompt is not None:
        return request.prompt
    idx = _last_user_index(request.messages or ())
    return "" if idx is None else request.messages[idx].content  # type: ignore[index]


def replace_user_text(request: Request, text: str) -> Request:
    """``request`` with its plain prompt or last user message replaced by ``text``."""
    if request.prompt is not None:
        return request.with_(prompt=text)
    msgs = list(request.messages or ())
    idx = _last_user_index(msgs)
    if idx is None:
        return request
    msgs[idx] = Message("user", text)
    return request.with_(messages=tuple(msgs))


def instruct(request: Request, instruction: str, position: str) -> Request:
    """Place ``instruction`` at ``position`` in ``request`` (a plain prompt stays plain when it can)."""
    if request.prompt is not None and position != "system":
        out = apply_instruction([Message("user", request.prompt)], instruction, position)
        return request.with_(prompt=out[-1].content)
    msgs = request.messages if request.messages is not None else (Message("user", request.prompt or ""),)
    return Request(
        messages=apply_instruction(msgs, instruction, position),
        n=request.n,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        stop=request.stop,
        seed=request.seed,
    )


class AlignedLLM(LLMWrapper):
    """An LLM whose every call is aligned by a BPO rewriter or an OPRO instruction.

    ``llm``: an LLM object or a model spec string (``openai:...``, ``local``, ``hf:DIR``...).
    Exactly one of ``rewriter`` (a directory, hub id, or loaded :class:`Rewriter`) and
    ``instruction`` must be given. Rewriting is set by ``settings`` (a
    :class:`~promptopt.optimizers.bpo.rewriter.RewriteSettings`) or by its fields as keywords
    (``mode``, ``n`` with ``judge``, ``rounds``, ``seed``, ``device``); ``seed`` is fixed per
    wrapper so the same batch of prompts is rewritten the same way each time.
    """

    def __init__(
        self,
        llm: LLM | str,
        *,
        rewriter: str | Path | Rewriter | Any = None,
        instruction: str | None = None,
        position: str = "Q_begin",
        settings: RewriteSettings | None = None,
        **rewrite_options: Any,
    ) -> None:
        if (rewriter is None) == (instruction is None):
            raise ConfigError("AlignedLLM needs exactly one of rewriter= or instruction=")
        if isinstance(llm, str):
            from promptopt.llm.registry import create_backend

            llm = create_backend(llm)
        super().__init__(llm)
        self.instruction = instruction
        self.position = check_position(position)
        self.rewriter: Rewriter | Any = None
        self._owns_rewriter = False
        self.settings: RewriteSettings | None = None
        if rewriter is not None:
            from dataclasses import replace

            from promptopt.optimizers.bpo.rewriter import RewriteSettings, load_rewriter

            try:
                s = replace(settings, **rewrite_options) if settings else RewriteSettings(**rewrite_options)
            except TypeError as exc:  # an unknown keyword
                raise ConfigError(f"AlignedLLM: {exc}") from None
            if s.n > 1 and s.judge is None:
                raise ConfigError("n > 1 needs a judge to pick the best rewrite")
            self.settings = s
            self._owns_rewriter = isinstance(rewriter, str | Path)
            # Anything with Rewriter.rewrite's signature works (a loaded Rewriter, a test stub).
            self.rewriter = load_rewriter(rewriter, s)
            tag = Path(str(getattr(self.rewriter, "name", "rewriter"))).name or "rewriter"
            self.name = f"aligned:{llm.name}+bpo:{tag}:{s.tag()}"
        else:
            if settings is not None or rewrite_options:
                raise ConfigError("rewrite settings apply to rewriter=, not to instruction=")
            digest = hashlib.sha256((instruction or "").encode("utf-8")).hexdigest()[:12]
            self.name = f"aligned:{llm.name}+instruction:{digest}@{self.position}"

    async def align(self, requests: Sequence[Request]) -> list[tuple[str, str, Request]]:
        """(original, rewritten, aligned request) for each request; rewriting is one batch."""
        originals = [user_text(r) for r in requests]
        if self.rewriter is None:
            out = []
            for r, orig in zip(requests, originals, strict=True):
                aligned = instruct(r, self.instruction or "", self.position)
                out.append((orig, user_text(aligned), aligned))
            return out
        from promptopt.optimizers.bpo.rewriter import arewrite_with

        assert self.settings is not None
        rewritten = await arewrite_with(self.rewriter, originals, self.settings)
        return [
            (orig, new, replace_user_text(r, new))
            for r, orig, new in zip(requests, originals, rewritten, strict=True)
        ]

    async def agenerate_aligned(
        self, requests: Sequence[Request], *, return_exceptions: bool = False
    ) -> list[AlignedCompletion]:
        """Answers together with the prompts that were actually sent."""
        aligned = await self.align(list(requests))
        results = await self.inner.agenerate([a[2] for a in aligned], return_exceptions=return_exceptions)
        return [
            AlignedCompletion(orig, new, req, res)
            for (orig, new, req), res in zip(aligned, results, strict=True)
        ]

    def generate_aligned(
        self, requests: Sequence[Request], *, return_exceptions: bool = False
    ) -> list[AlignedCompletion]:
        return run_sync(self.agenerate_aligned(list(requests), return_exceptions=return_exceptions))

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        done = await self.agenerate_aligned(requests, return_exceptions=return_exceptions)
        return [d.completion for d in done]

    async def aclose(self) -> None:
        """Close the deployed model, and the rewriter when this wrapper loaded it."""
        try:
            await self.inner.aclose()
        finally:
            if self._owns_rewriter and self.rewriter is not None:
                await self.rewriter.aclose()
