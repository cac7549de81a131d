"""A scripted, recording fake LLM for tests (DSPy's DummyLM idea).

Three ways to script it, checked in this order for every sample:
``rules`` (regex on the request's text → reply), ``fn(request, sample_index) → reply``, and
``replies`` (a list consumed in order; with ``cycle=True`` it wraps around). A reply that is an
``Exception`` instance is raised instead, so tests can script failures. Every request is recorded
in ``calls`` and the size of every ``agenerate`` batch in ``batches`` (how callers batch is part of
their contract: one concurrent batch per step, not one call per item) for assertions. Token usage is counted in whitespace-separated words, which is
deterministic and good enough for budget tests.

Constrained decoding: ``structured_output`` declares a mechanism (see
:data:`~promptopt.llm.base.STRUCTURED_OUTPUTS`; default ``none``). With one declared and
``honour_constraints`` (default), a request's :class:`~promptopt.llm.base.Constraint` is honoured
through its ``pattern``: the reply becomes the first part of the scripted text that matches it, as
a constrained decoder would force (a script with no such part raises, it is a test error). With
``honour_constraints=False`` the fake declares the mechanism but returns the scripted text as is:
a server that silently drops the constraint.

Log-probabilities: a reply may be a :class:`~promptopt.llm.base.Choice` carrying scripted
``logprobs``; they are returned only for a request that asks for them (``top_logprobs`` > 0), as
a real backend does, and a plain string reply never has any (a backend that cannot give them).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from promptopt.llm.base import (
    STRUCTURED_OUTPUTS,
    BaseLLM,
    Choice,
    Completion,
    LLMResponseError,
    Request,
    Usage,
)

Reply = str | BaseException | Choice
ReplyFn = Callable[[Request, int], Reply]


def request_text(request: Request) -> str:
    """All the text a request shows the model, joined (what rules are matched against)."""
    if request.prompt is not None:
        return request.prompt
    return "\n".join(m.content for m in request.messages or ())


class FakeLLM(BaseLLM):
    """Deterministic stand-in for a model. Thread- and task-safe."""

    def __init__(
        self,
        replies: Sequence[Reply] = (),
        *,
        rules: Sequence[tuple[str, Reply | ReplyFn]] = (),
        fn: ReplyFn | None = None,
        cycle: bool = False,
        default: Reply | None = None,
        name: str = "fake",
        max_concurrency: int = 64,
        structured_output: str = "none",
        honour_constraints: bool = True,
    ) -> None:
        super().__init__()
        if structured_output not in STRUCTURED_OUTPUTS:
            raise ValueError(
                f"structured_output must be one of {STRUCTURED_OUTPUTS}, got {structured_output!r}"
            )
        self.structured_output = structured_output
        self.honour_constraints = honour_constraints
        self.name = name
        self.max_concurrency = max_concurrency
        self._replies = list(replies)
        self._rules = [(re.compile(p, re.S), r) for p, r in rules]
        self._fn = fn
        self._cycle = cycle
        self._default = default
        self._pos = 0
        self._lock = threading.Lock()
        self.calls: list[Request] = []
        self.batches: list[int] = []

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        with self._lock:
            self.batches.append(len(requests))
        return await super().agenerate(requests, return_exceptions=return_exceptions)

    def _next_scripted(self, request: Request, index: int) -> Reply:
        text = request_text(request)
        for pattern, reply in self._rules:
            if pattern.search(text):
                return reply(request, index) if callable(reply) else reply
        if self._fn is not None:
            return self._fn(request, index)
        with self._lock:
            if self._pos < len(self._replies):
                reply = self._replies[self._pos]
                self._pos += 1
                if self._cycle and self._pos == len(self._replies):
                    self._pos = 0
                return reply
        if self._default is not None:
            return self._default
        return LLMResponseError("FakeLLM ran out of scripted replies")

    def _constrained(self, request: Request, text: str) -> str:
        """The scripted text as a decoder honouring the request's constraint would give it."""
        c = request.constraint
        if c is None or c.pattern is None or self.structured_output == "none" or not self.honour_constraints:
            return text
        m = re.search(c.pattern, text)
        if m is None:
            raise LLMResponseError(
                f"FakeLLM: scripted reply {text[:60]!r} has no part matching the constraint"
            )
        return m.group(0)

    async def _complete(self, request: Request) -> Completion:
        with self._lock:
            self.calls.append(request)
        choices = []
        for i in range(request.n):
            reply = self._next_scripted(request, i)
            if isinstance(reply, BaseException):
                raise reply
            logprobs = reply.logprobs if isinstance(reply, Choice) and request.top_logprobs else None
            text = self._constrained(request, reply.text if isinstance(reply, Choice) else str(reply))
            finish = "stop"
            words = text.split()
            if len(words) > request.max_tokens:
                text = " ".join(words[: request.max_tokens])
                finish = "length"
            for s in request.stop:
                if s and s in text:
                    text = text[: text.index(s)]
            choices.append(Choice(text, finish, logprobs))
        usage = Usage(
            prompt_tokens=len(request_text(request).split()),
            completion_tokens=sum(len(c.text.split()) for c in choices),
            calls=1,
        )
        return Completion(tuple(choices), usage, model=self.name)


def from_spec(rest: str, **options: Any) -> FakeLLM:
    """``fake:`` echoes a fixed reply (``fake:<reply>``, default 'ok'); tests build FakeLLM directly."""
    options.pop("cache_dir", None)
    return FakeLLM(default=rest or "ok", name=f"fake:{rest}" if rest else "fake", **options)
