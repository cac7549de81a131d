"""The scaffolding an HTTP backend puts around one call: the retry loop, the concurrency bound
per event loop, and ``n`` samples from a server that answers fewer.

Why shared: ``openai:`` (:mod:`promptopt.llm.openai_compat`) and ``litellm:``
(:mod:`promptopt.llm.litellm_backend`) must behave alike around a call — one retry policy with a
:class:`RetryNotice` per retry, errors that leave as promptopt's typed ``LLMError`` built from facts
(never the client's text, which may echo a secret), the same bound on attempts in flight, the same
seeds for emulated samples — and what they share is written once here, with the two pieces of a
failure's message they word alike (:func:`attempts_text`, :func:`body_message`). What differs stays
in each backend: which failures are transient, how long to wait, how a failure is worded, how one
attempt is made.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from promptopt.errors import ConfigError
from promptopt.llm import openai_wire
from promptopt.llm.base import RETRY_LOG_ATTR, Completion, LLMError, Request, RetryNotice
from promptopt.llm.concurrency import Controller, Limiter
from promptopt.llm.openai_retry import Backoff

E = TypeVar("E", bound=BaseException)

#: the most characters of a server's own message an error carries (after redaction)
MAX_SERVER_MESSAGE = 200


class Call(Protocol):
    """One call of a backend, retried: ``n`` choices of ``request``, sampled with ``seed``."""

    def __call__(self, request: Request, *, n: int, seed: int | None) -> Awaitable[Completion]: ...


def check_timeout_and_retries(timeout: float, max_retries: int) -> None:
    """A one-line ConfigError for a timeout or retry count no call could honour."""
    if timeout <= 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
    if max_retries < 0:
        raise ConfigError(f"max_retries must be >= 0, got {max_retries}")


def make_backoff(backoff: float, backoff_max: float, retry_after_max: float) -> Backoff:
    """The wait between attempts (see :class:`Backoff`); a one-line ConfigError for a negative one."""
    if backoff < 0 or backoff_max < 0 or retry_after_max < 0:
        raise ConfigError("backoff, backoff_max and retry_after_max must be >= 0")
    return Backoff(backoff, backoff_max, retry_after_max, random.Random())


def attempts_text(attempts: int, elapsed: float) -> str:
    """``after 3 attempts in 12.3s``: how hard a failed call tried, worded alike by every backend."""
    return f"after {attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f}s"


def body_message(exc: BaseException) -> str:
    """The server's own words from an error's JSON body (``{"error": {"message": ...}}``,
    ``{"error": "..."}`` or ``{"message": ...}``); "" for none or a body that is not JSON.

    Why only the words: the caller redacts and shortens them before they reach a message, since a
    server may echo the request (its key, its headers) back.
    """
    body = getattr(exc, "body", None)
    if not isinstance(body, dict):
        return ""
    inner = body.get("error", body)
    message = inner.get("message") if isinstance(inner, dict) else inner
    return str(message) if message else ""


def loop_limiter(state: dict[str, Any], controller: Controller) -> Limiter:
    """The running loop's limiter over ``controller`` (``state``: the backend's ``loop_state()``).

    Why per loop: the limiter's waiters are futures of one event loop, and the sync door runs each
    batch on a fresh one; the controller, shared by every loop, keeps what was learnt of the bound.
    """
    limiter = state.get("limiter")
    if limiter is None:
        limiter = state["limiter"] = Limiter(controller)
    return limiter


async def retried(
    attempt: Callable[[], Awaitable[Completion]],
    *,
    name: str,
    max_retries: int,
    wait: Callable[[RetryCallState], float],
    transient: Callable[[BaseException], bool],
    reason: Callable[[BaseException | None], str],
    log: logging.Logger,
    failures: tuple[type[E], ...],
    translate: Callable[[E, int, float], LLMError],
) -> Completion:
    """``attempt()`` until it answers, fails for good (``transient`` says no) or ``max_retries``
    retries are spent, waiting ``wait(state)`` between attempts.

    Before each retry one INFO record goes to ``log`` with a :class:`RetryNotice` attached (its
    reason from ``reason(exc)``: built from the failure's kind, never its text) for front ends to
    fold. The last failure, if one of ``failures``, leaves as ``translate(exc, attempts, elapsed)``,
    without its cause chain (whose text may carry a secret); an ``LLMError`` leaves as it is.
    """

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        pause = state.next_action.sleep if state.next_action is not None else 0.0
        notice = RetryNotice(name, state.attempt_number, max_retries + 1, reason(exc), pause)
        log.info("%s", notice, extra={RETRY_LOG_ATTR: notice})

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_retries + 1),
        wait=wait,
        retry=retry_if_exception(transient),
        before_sleep=log_retry,
        reraise=True,
    )
    started = time.monotonic()
    try:
        async for each in retrying:
            with each:
                return await attempt()
    except LLMError:
        raise
    except failures as exc:
        attempts = int(retrying.statistics.get("attempt_number", 1))
        raise translate(exc, attempts, time.monotonic() - started) from None
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


async def sample_rest(call: Call, request: Request, parts: list[Completion], name: str) -> Completion:
    """``parts`` with the choices they lack up to ``request.n``, asked for one call a choice.

    Why: some servers answer one choice whatever ``n`` says (llama.cpp, several providers). The
    missing ones are asked for concurrently, choice ``i`` with ``seed + i`` when a seed is given,
    so a seeded request gets the same samples each time; usage is summed. Every call settles
    before the first failure is raised, so none is left running.
    """
    missing = range(sum(len(p.choices) for p in parts), request.n)
    results = await asyncio.gather(
        *(call(request, n=1, seed=openai_wire.sample_seed(request.seed, i)) for i in missing),
        return_exceptions=True,
    )
    for r in results:
        if isinstance(r, BaseException):
            raise r
        parts.append(r)
    return openai_wire.merge(parts, request.n, name)
