"""A failed OpenAI-client call → a typed ``LLMError`` whose one-line message is built from facts.

Why built, never passed on: the client's own exception text may echo a URL with credentials or
the request's headers. The message here is made of the status, the attempts, the public URLs and
a redacted, shortened server message, so no API key or URL credential can leak through an error.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence

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
from promptopt.llm.redact import Redactor, cut_bearer


def transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's "server broke the protocol" error (httpx2 for openai 3.x, httpx before).

    Why: a body cut off mid-transfer surfaces as this (wrapped in ``APIConnectionError``), and it
    is the one connection error that means "the server answered, badly".
    """
    found: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        err = getattr(mod, "RemoteProtocolError", None)
        if isinstance(err, type):
            found.append(err)
    return tuple(found)


def server_message(exc: openai.APIStatusError) -> str:
    """The server's own words: its JSON error body's message (:func:`body_message`), or a text body."""
    body = exc.body
    return body_message(exc) or (body if isinstance(body, str) and body.strip() else "")


def translate(
    exc: BaseException,
    attempts: int,
    elapsed: float,
    *,
    name: str,
    timeout: float,
    urls: Sequence[str],
    redact: Redactor,
    broken_framing: tuple[type[BaseException], ...],
) -> LLMError:
    """A typed LLMError with a one-line message built from facts (never the key).

    ``name`` is the model's secret-free name, ``urls`` its endpoints' public URLs, ``redact`` the
    backend's redactor and ``broken_framing`` what :func:`transport_errors` found.
    """
    tries = attempts_text(attempts, elapsed)
    if isinstance(exc, json.JSONDecodeError):
        return LLMResponseError(f"{name}: the server's answer is not valid JSON ({exc.msg})")
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMResponseError(f"{name}: the server's answer does not have the expected shape")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            return LLMAuthError(
                f"{name}: the server rejected the API key (HTTP {status}); check OPENAI_API_KEY or api_key"
            )
        detail = redact(cut_bearer(server_message(exc)), MAX_SERVER_MESSAGE)
        said = f": {detail}" if detail else ""
        if status == 429:
            limited = LLMRateLimitError(f"{name}: rate limited (HTTP 429) {tries}{said}")
            limited.retry_after = retry_after_seconds(exc)
            return limited
        if status >= 500 or status in TRANSIENT_STATUS:
            return LLMServerError(f"{name}: server error (HTTP {status}) {tries}{said}")
        return LLMBadRequestError(f"{name}: request rejected (HTTP {status}){said}")
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeoutError(f"{name}: no answer within {timeout:g}s, {tries}")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        if broken_framing and isinstance(cause, broken_framing):
            return LLMResponseError(
                f"{name}: the server sent an incomplete HTTP response (connection closed mid-answer), {tries}"
            )
        reason = type(cause).__name__ if cause is not None else "connection error"
        where = ", ".join(urls)
        return LLMConnectionError(f"{name}: cannot reach {where} ({reason}), {tries}")
    return LLMResponseError(f"{name}: unexpected client error {type(exc).__name__}")
