"""The one protocol through which promptopt talks to any model.

Why a batch of requests in and a list of completions out: scorers issue hundreds of independent
calls, and backends differ in how they parallelise them (HTTP concurrency for servers, one
``generate`` call for vLLM, padded batches for transformers). Each backend gets the whole batch and
decides; callers never loop one prompt at a time.

Why async at the core: concurrency against remote servers is the main source of speed; the sync
``generate`` is a convenience for scripts and notebooks.

This module imports nothing else from promptopt except the error root, so every layer can use it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from promptopt.errors import PromptoptError

# --------------------------------------------------------------------------- errors


class LLMError(PromptoptError):
    """A model call failed. Subclasses say how, so callers can decide to retry or give up."""


class LLMRateLimitError(LLMError):
    """The backend answered 429 (after the bounded retries). ``retry_after``: the seconds its last
    answer asked to wait (``Retry-After``), when it said; ``promptopt serve`` passes it on."""

    retry_after: float | None = None


class LLMServerError(LLMError):
    """The backend answered 5xx (after the bounded retries)."""


class LLMTimeoutError(LLMError):
    """The backend did not answer within the timeout (after the bounded retries)."""


class LLMConnectionError(LLMError):
    """The backend could not be reached (refused, reset, DNS)."""


class LLMAuthError(LLMError):
    """Missing or rejected credentials. The message never contains the key itself."""


class LLMBadRequestError(LLMError):
    """The backend rejected the request as malformed (4xx other than 401/403/429)."""


class LLMResponseError(LLMError):
    """The backend answered, but the answer could not be understood (malformed JSON, no choices)."""


class BackendUnavailableError(LLMError):
    """A backend's optional dependency or weights are missing on this machine."""


class BudgetExceededError(LLMError):
    """A call would take a run past one of its budget limits; raised *before* the call is made."""


class LLMOutageError(LLMConnectionError):
    """Some calls of a batch failed for reasons that say nothing about the request (the server or
    network was down, slow or broken) and stayed failed after the re-ask rounds: the batch is not
    scored. See :mod:`promptopt.llm.outage`."""


def engine_error(model: str, exc: ValueError | RuntimeError, failed: str = "generation") -> LLMError:
    """The LLMError for an in-process engine's exception (transformers, llama.cpp, vLLM): they
    raise ValueError for a request they reject (a prompt over the context window), which no retry
    fixes, and RuntimeError when generating itself fails (CUDA out of memory, a decode error)."""
    if isinstance(exc, ValueError):
        return LLMBadRequestError(f"{model}: {exc}")
    return LLMError(f"{model}: {failed} failed: {exc}")


# --------------------------------------------------------------------------- retry notices

#: The ``logging`` record attribute (``extra=``) that carries a :class:`RetryNotice`.
RETRY_LOG_ATTR = "promptopt_retry"


@dataclass(frozen=True)
class RetryNotice:
    """A backend is about to retry a failed call.

    Why structured: against an unreachable server every request of a batch retries several times;
    logged as text that is dozens of lines. Backends log one record per retry with this object
    attached under :data:`RETRY_LOG_ATTR`, and a front end (the CLI) decides how to summarise them.
    """

    model: str
    attempt: int  # the attempt that failed, 1-based
    max_attempts: int
    reason: str  # "HTTP 503", "timeout", "no connection: ConnectError"
    wait: float  # seconds until the next attempt

    def __str__(self) -> str:
        return (
            f"{self.model}: attempt {self.attempt} of {self.max_attempts} failed ({self.reason}); "
            f"retrying in {self.wait:.2f}s"
        )


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Message:
    """One chat message. ``role`` is ``system``, ``user`` or ``assistant``."""

    role: str
    content: str


#: How a backend decodes under a :class:`Constraint` (its ``structured_output`` attribute).
#: ``gbnf``: llama.cpp in-process, a GBNF grammar (a JSON schema converted to one, strictly);
#: ``openai``: OpenAI ``response_format`` ``json_schema`` (strict; JSON schemas only);
#: ``llama-cpp``: llama.cpp server, ``grammar`` (GBNF) or ``json_schema``;
#: ``vllm``: vLLM's ``structured_outputs`` (``json`` or ``grammar``; server >= 0.12 or engine);
#: ``none``: the backend cannot constrain decoding. (The scripted fake declares any of them.)
STRUCTURED_OUTPUTS: tuple[str, ...] = ("none", "gbnf", "openai", "llama-cpp", "vllm")
#: What each mechanism can take: the Constraint forms, in the order it prefers them.
_MECHANISM_FORMS: dict[str, tuple[str, ...]] = {
    "none": (),
    "gbnf": ("gbnf", "json_schema"),
    "openai": ("json_schema",),
    "llama-cpp": ("gbnf", "json_schema"),
    "vllm": ("json_schema", "gbnf"),
}


@dataclass(frozen=True)
class Constraint:
    """The shape every sampled output must have, in the forms backends understand.

    Why several forms: llama.cpp decodes under a GBNF grammar, OpenAI only under a JSON schema
    (root an object), vLLM under either. A task gives every form it can; the forms must describe
    the same outputs, and the caller still parses and validates each output, because a server
    that ignores the constraint answers HTTP 200 with free text: a dropped constraint must show
    up as parse failures, never as trust. ``json_schema`` is kept as canonical JSON text (sorted
    keys) so that the value is hashable and part of the request cache key; ``pattern`` is a
    Python regex for the same outputs (what the scripted fake honours; no backend is sent it).
    Every form must describe a *finite* output (bounded repetitions) so a model can stop.
    """

    gbnf: str | None = None
    json_schema: str | None = None
    pattern: str | None = None

    def __post_init__(self) -> None:
        if self.gbnf is None and self.json_schema is None and self.pattern is None:
            raise ValueError("a Constraint needs a gbnf grammar, a json_schema or a pattern")
        if self.json_schema is not None and not isinstance(self.json_schema, str):
            object.__setattr__(self, "json_schema", canonical_json(self.json_schema))

    def schema(self) -> dict[str, Any] | None:
        """The JSON schema as a dict (a fresh copy), or None."""
        return None if self.json_schema is None else json.loads(self.json_schema)

    def form_for(self, mechanism: str) -> str | None:
        """The form (``gbnf``, ``json_schema``, ``pattern``) a backend with ``mechanism`` uses for
        this constraint, or None when it cannot apply it."""
        for form in _MECHANISM_FORMS.get(mechanism, ()):
            if getattr(self, form) is not None:
                return form
        return None


def canonical_json(value: Any) -> str:
    """Sorted-key, compact JSON text: equal values give equal text (cache keys, records)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def structured_output_of(llm: Any) -> str:
    """The constrained-decoding mechanism of an LLM (wrappers pass their inner one's on)."""
    mechanism = getattr(llm, "structured_output", "none")
    return mechanism if mechanism in STRUCTURED_OUTPUTS else "none"


@dataclass(frozen=True)
class Request:
    """One generation request: chat ``messages`` or a plain ``prompt`` (exactly one of them).

    Frozen and made of tuples so that it can be hashed into a cache key and shared across tasks.
    ``seed`` ``None`` means "backend default"; 0 is a real seed. ``constraint``: decode under it
    where the backend can (see :class:`Constraint`); backends without a mechanism ignore it.
    ``top_logprobs``: ask for each generated token's ``k`` most likely tokens with their
    log-probabilities (:attr:`Choice.logprobs`); 0 (default) asks for none. Backends that cannot
    give them (today: all but the OpenAI-compatible chat endpoint) ignore it, so a caller must
    work without them.
    """

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    constraint: Constraint | None = None
    top_logprobs: int = 0

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a Request needs exactly one of `messages` or `prompt`")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.top_logprobs < 0:
            raise ValueError(f"top_logprobs must be >= 0, got {self.top_logprobs}")
        if self.messages is not None and not isinstance(self.messages, tuple):
            object.__setattr__(self, "messages", tuple(self.messages))
        if not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))

    @classmethod
    def chat(cls, user: str, *, system: str | None = None, **params: Any) -> Request:
        """Shortcut for the common single-turn chat request."""
        msgs: list[Message] = []
        if system is not None:
            msgs.append(Message("system", system))
        msgs.append(Message("user", user))
        return cls(messages=tuple(msgs), **params)

    def chat_messages(self) -> list[dict[str, str]]:
        """Messages as the OpenAI wire format; a plain prompt becomes one user message."""
        if self.messages is None:
            return [{"role": "user", "content": self.prompt or ""}]
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def canonical(self) -> dict[str, Any]:
        """A JSON-able dict with every field that changes the output (used for cache keys)."""
        d = asdict(self)
        d["messages"] = None if self.messages is None else [[m.role, m.content] for m in self.messages]
        d["stop"] = list(self.stop)
        if self.constraint is None:
            d.pop("constraint")  # requests without one keep the cache keys they always had
        if not self.top_logprobs:
            d.pop("top_logprobs")  # likewise
        return d

    def with_(self, **changes: Any) -> Request:
        """A copy with some fields replaced (dataclasses.replace, kept short for callers)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Usage:
    """Token and call accounting for one completion (or a sum of them)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.calls + other.calls,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability and the ``top`` alternatives the backend listed
    there as (token, log-probability) pairs (what ``Request.top_logprobs`` asks for)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Choice:
    """One sampled output. ``finish_reason`` is ``stop``, ``length`` or what the backend said.
    ``logprobs``: its tokens, when the request asked for them and the backend gave them (else None;
    the request cache stores text only and does not keep a choice that has them)."""

    text: str
    finish_reason: str = "stop"
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True)
class Completion:
    """The answer to one Request: ``n`` choices, usage, and whether it came from the cache."""

    choices: tuple[Choice, ...]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    cached: bool = False

    @property
    def text(self) -> str:
        """The first choice's text, for the common n = 1 case."""
        return self.choices[0].text if self.choices else ""

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.choices]


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class LLM(Protocol):
    """What every backend and wrapper provides.

    ``name`` identifies the model for cache keys and reports (never includes credentials).
    ``agenerate`` returns one Completion per Request, in order. With ``return_exceptions`` a
    failed request yields its ``LLMError`` in place instead of failing the whole batch, so a
    scorer can record the failure and keep the rest.
    """

    name: str

    async def agenerate(
        self, requests: Sequence[Request], *, return_exceptions: bool = False
    ) -> list[Any]: ...

    def generate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]: ...

    async def aclose(self) -> None: ...


def run_sync(coro: Any) -> Any:
    """Run a coroutine from sync code, also where an event loop is already running (notebooks).

    Why a thread in the second case: ``asyncio.run`` refuses to nest, and patching the running loop
    (nest_asyncio) changes behaviour for the whole process.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="promptopt-run-sync")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class BaseLLM:
    """Shared plumbing for backends: batch fan-out with bounded concurrency and a sync door.

    Subclasses implement ``_complete(request)`` for one request, or override ``agenerate`` when the
    backend batches natively (vLLM, transformers). Per-event-loop state (semaphores, HTTP clients)
    lives in ``loop_state`` because asyncio primitives and connection pools are bound to the loop
    that created them, and the sync door may create a fresh loop per call.
    """

    name: str = "base"
    max_concurrency: int = 16
    #: how this backend decodes under a Request's constraint (one of STRUCTURED_OUTPUTS)
    structured_output: str = "none"

    def __init__(self) -> None:
        self._loop_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._state_lock = threading.Lock()

    # -- per-loop state
    def loop_state(self) -> dict[str, Any]:
        """A dict private to the running event loop (created on first use)."""
        loop = asyncio.get_running_loop()
        with self._state_lock:
            state = self._loop_states.get(loop)
            if state is None:
                state = {"semaphore": asyncio.Semaphore(max(1, self.max_concurrency))}
                self._loop_states[loop] = state
            return state

    # -- to implement
    async def _complete(self, request: Request) -> Completion:
        raise NotImplementedError

    # -- public
    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        sem: asyncio.Semaphore = self.loop_state()["semaphore"]

        async def one(req: Request) -> Completion:
            async with sem:
                return await self._complete(req)

        results = await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)
        return settle_results(results, return_exceptions)

    def generate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        """Sync convenience around ``agenerate``."""
        return run_sync(self.agenerate(list(requests), return_exceptions=return_exceptions))

    def complete(self, prompt: str, *, system: str | None = None, **params: Any) -> str:
        """One chat turn, text out: the shortest way to use any backend from a script."""
        return self.generate([Request.chat(prompt, system=system, **params)])[0].text

    async def aclose(self) -> None:
        """Release clients and engines; safe to call twice."""

    def close(self) -> None:
        run_sync(self.aclose())


def settle_results(results: Sequence[Any], return_exceptions: bool) -> list[Any]:
    """Apply the ``return_exceptions`` contract to gathered results.

    Only ``LLMError`` is ever returned in place; any other exception is a bug and is raised.
    """
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, LLMError):
            raise r
    if not return_exceptions:
        for r in results:
            if isinstance(r, LLMError):
                raise r
    return list(results)


def raise_if_unreachable(results: Sequence[Any]) -> None:
    """Raise when every result of a batch is a connection or authentication error.

    Why: against a server that cannot be reached (wrong port, down, bad key) a run would
    otherwise record every item as failed and exit 0. Failures that leave some requests
    answered are the caller's to record; a batch in which nothing got through means the run
    cannot make progress, and one clear error (the run directory keeps what was done, so
    ``--resume`` continues later) is what a user needs.
    """
    if not results:
        return
    if not all(isinstance(r, LLMConnectionError | LLMAuthError) for r in results):
        return
    first = results[0]
    if isinstance(first, LLMAuthError):
        raise first
    raise LLMConnectionError(f"model server unreachable, no request got through: {first}")


class LLMWrapper(BaseLLM):
    """Base for wrappers (cache, budget, aligned) that add behaviour around an inner LLM."""

    def __init__(self, inner: LLM) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name

    @property
    def structured_output(self) -> str:  # type: ignore[override]
        """The inner backend's mechanism: a wrapper passes constraints through unchanged."""
        return structured_output_of(self.inner)

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        return await self.inner.agenerate(requests, return_exceptions=return_exceptions)

    async def aclose(self) -> None:
        await self.inner.aclose()
