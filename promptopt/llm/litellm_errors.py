"""A failed LiteLLM call → promptopt's typed ``LLMError``, and whether it is worth another attempt.

Why a table: LiteLLM maps every provider's failures onto its own exception classes
(``litellm.RateLimitError``, ``ServiceUnavailableError``, ``Timeout``, ...); this module maps those
onto the classes the rest of promptopt decides by (retries here, the outage rules of scoring, the
CLI's one error line). The classes are looked up on the ``litellm`` module by name when a call
fails, so this module imports nothing heavy. The order matters: a subclass (``Timeout``, a kind of
``APIConnectionError``; ``ContextWindowExceededError``, a kind of ``BadRequestError``) comes
before the class it derives from. LiteLLM reports some transport failures under another class (a
refused connection or a reset as ``InternalServerError``, HTTP 500); what it wraps, found on the
exception's cause chain (:data:`CAUSE_MAP`), decides first, so a dead server is a connection error
and a body that is not JSON is a response error (not retried), as with ``openai:``.

Why messages are built, never passed on: LiteLLM's text carries the provider's message, which may
echo the request's key or headers. The message here is the status, the attempts and a redacted,
shortened provider message (a bearer token a server echoes is cut as well); for rejected
credentials there is no provider message at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from types import ModuleType

import openai

from promptopt.llm.base import (
    LLMAuthError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
)
from promptopt.llm.calls import MAX_SERVER_MESSAGE, attempts_text, body_message
from promptopt.llm.openai_retry import TRANSIENT_STATUS, retry_after_seconds
from promptopt.llm.redact import cut_bearer

#: LiteLLM exception class name → (promptopt's error class, worth retrying). ``None`` as the class:
#: decided by the HTTP status (LiteLLM's catch-all ``APIError``). First match wins.
ERROR_MAP: tuple[tuple[str, type[LLMError] | None, bool], ...] = (
    ("AuthenticationError", LLMAuthError, False),
    ("PermissionDeniedError", LLMAuthError, False),
    ("RateLimitError", LLMRateLimitError, True),
    ("Timeout", LLMTimeoutError, True),
    ("ServiceUnavailableError", LLMServerError, True),
    ("InternalServerError", LLMServerError, True),
    ("BadGatewayError", LLMServerError, True),
    ("APIConnectionError", LLMConnectionError, True),
    ("ContextWindowExceededError", LLMBadRequestError, False),
    ("ContentPolicyViolationError", LLMBadRequestError, False),
    ("BadRequestError", LLMBadRequestError, False),
    ("NotFoundError", LLMBadRequestError, False),
    ("UnprocessableEntityError", LLMBadRequestError, False),
    ("APIResponseValidationError", LLMResponseError, False),
    ("APIError", None, False),
)

#: what LiteLLM wraps (it reports a refused connection as HTTP 500, a body that is not JSON as
#: well): the underlying failure, found on the exception's cause chain, decides first
CAUSE_MAP: tuple[tuple[type[BaseException], type[LLMError], bool], ...] = (
    (openai.APITimeoutError, LLMTimeoutError, True),
    (openai.APIConnectionError, LLMConnectionError, True),
    (json.JSONDecodeError, LLMResponseError, False),
)

_LITELLM_PREFIX = re.compile(r"^\s*litellm\.\w+:\s*(\w+:\s*)?")


def classify(litellm: ModuleType, exc: BaseException) -> tuple[type[LLMError], bool] | None:
    """(promptopt's error class, worth retrying) for a LiteLLM exception (by what it wraps first,
    :data:`CAUSE_MAP`, then by its class, :data:`ERROR_MAP`); None for any other."""
    for cause in _causes(exc):
        for cls, error, transient in CAUSE_MAP:
            if isinstance(cause, cls):
                return error, transient
    status = status_of(exc)
    for name, error, transient in ERROR_MAP:
        cls = getattr(litellm, name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            if error is not None:
                return error, transient
            if status is not None and (status >= 500 or status in TRANSIENT_STATUS):
                return (LLMRateLimitError if status == 429 else LLMServerError), True
            return LLMBadRequestError, False
    return None


def _causes(exc: BaseException, depth: int = 12) -> list[BaseException]:
    """The exceptions ``exc`` was raised from or while handling (not ``exc`` itself), nearest first."""
    out: list[BaseException] = []
    seen = {id(exc)}
    nxt = exc.__cause__ or exc.__context__
    while nxt is not None and id(nxt) not in seen and len(out) < depth:
        out.append(nxt)
        seen.add(id(nxt))
        nxt = nxt.__cause__ or nxt.__context__
    return out


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


class AttemptFailed(Exception):
    """One failed attempt: LiteLLM's exception (``error``) and its kind (:func:`classify`; None
    when it is no LiteLLM failure), decided where the attempt failed. Why a wrapper: the retry loop
    re-raises the last failure, which replaces its context, and with it the cause chain the kind
    is read from. ``response`` is the error's (``Retry-After`` is read from it)."""

    def __init__(self, error: BaseException, kind: tuple[type[LLMError], bool] | None) -> None:
        super().__init__(type(error).__name__)
        self.error = error
        self.kind = kind
        self.response = getattr(error, "response", None)


def failed_attempt(litellm: ModuleType, exc: BaseException) -> AttemptFailed:
    return AttemptFailed(exc, classify(litellm, exc))


def is_transient(exc: BaseException) -> bool:
    """Tenacity's retry test: the failures the table marks as worth retrying."""
    return isinstance(exc, AttemptFailed) and exc.kind is not None and exc.kind[1]


def retry_reason(exc: BaseException | None) -> str:
    """Why an attempt failed, from the failure's kind (never its text)."""
    if not isinstance(exc, AttemptFailed):
        return type(exc).__name__ if exc is not None else "unknown"
    if exc.kind is None:
        return type(exc.error).__name__
    if exc.kind[0] is LLMTimeoutError:
        return "timeout"
    if exc.kind[0] is LLMConnectionError:
        return "no connection"
    status = status_of(exc.error)
    return f"HTTP {status}" if status is not None else type(exc.error).__name__


def provider_message(exc: BaseException, redact: Callable[[str, int | None], str]) -> str:
    """The provider's own words: the error body's message when it has one (:func:`body_message`),
    else LiteLLM's text without its class-name prefix; redacted, bearer tokens cut, shortened.

    A body that is not JSON leaves it to LiteLLM's text (``openai:`` reads such a body itself)."""
    text = body_message(exc) or _LITELLM_PREFIX.sub("", str(getattr(exc, "message", "") or ""))
    return redact(cut_bearer(text), MAX_SERVER_MESSAGE)


def translate(
    failed: AttemptFailed,
    attempts: int,
    elapsed: float,
    *,
    name: str,
    timeout: float,
    where: str,
    redact: Callable[[str, int | None], str],
) -> LLMError:
    """A typed LLMError with a one-line message built from facts (see the module docstring).
    ``where``: the public api_base, or the provider's name."""
    tries = attempts_text(attempts, elapsed)
    exc, kind = failed.error, failed.kind
    if kind is None:
        return LLMResponseError(f"{name}: unexpected error from LiteLLM ({type(exc).__name__})")
    error, _ = kind
    status = status_of(exc)
    if error is LLMAuthError:
        return LLMAuthError(
            f"{name}: the provider rejected the API key (HTTP {status}); check the key variable "
            "(the provider's own, e.g. ANTHROPIC_API_KEY, or the one named by --optimizer-api-key-env / "
            "--scorer-api-key-env)"
        )
    detail = provider_message(exc, redact)
    said = f": {detail}" if detail else ""
    if error is LLMTimeoutError:
        return LLMTimeoutError(f"{name}: no answer within {timeout:g}s, {tries}")
    if error is LLMConnectionError:
        return LLMConnectionError(f"{name}: cannot reach {where}, {tries}{said}")
    if error is LLMRateLimitError:
        limited = LLMRateLimitError(f"{name}: rate limited (HTTP 429) {tries}{said}")
        limited.retry_after = retry_after_seconds(exc)
        return limited
    if error is LLMServerError:
        return LLMServerError(f"{name}: server error (HTTP {status}) {tries}{said}")
    if error is LLMResponseError:
        return LLMResponseError(f"{name}: the provider's answer does not have the expected shape{said}")
    return error(f"{name}: request rejected (HTTP {status}){said}")
