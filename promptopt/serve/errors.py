"""Every error ``promptopt serve`` answers, in OpenAI's shape; upstream failures mapped to statuses.

Why one shape everywhere: OpenAI clients read ``{"error": {"message", "type", "param", "code"}}``
(the SDK turns it into ``APIStatusError.message`` and ``.code``); FastAPI's own answers for an
unknown path, a wrong method or a validation failure are ``{"detail": ...}`` and an unhandled
exception is a plain-text 500, which reach a client as opaque strings. vLLM's OpenAI server
installs the same kind of handlers (HTTP exceptions and validation errors in its error shape,
validation as 400); the texts of 404 ("Invalid URL (GET /v1/x)") and model_not_found are OpenAI's.

Pure: nothing here imports the web framework at import time (:func:`install_handlers` does, when
the app is built), so the mapping is tested without a socket.

Upstream failures (typed ``LLMError`` after the backend's retries) become one status each
(:func:`upstream_error`). Their messages are fixed texts, except a 400's: the upstream's own words
say what was wrong with the client's request, so they pass, with every URL and host:port scrubbed
(:func:`scrub_addresses`): an upstream's message can name its internal address, which the client of
a deployed endpoint has no business learning. The full message goes to the server log only.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from promptopt.llm.base import (
    BudgetExceededError,
    LLMAuthError,
    LLMBadRequestError,
    LLMError,
    LLMRateLimitError,
    LLMTimeoutError,
)

log = logging.getLogger("promptopt.serve")

#: Retry-After (seconds) for a 429 whose upstream named no delay: the backend has already retried
#: with backoff and failed, so an immediate retry would be wasted; a few seconds, like the cool-off
#: an LLM gateway (LiteLLM) gives a rate-limited deployment.
DEFAULT_RETRY_AFTER = 5

_ADDRESS_PATTERNS = (
    re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]{},;]+"),  # any URL
    re.compile(r"\[[0-9a-fA-F:.]+\](?::\d{1,5})?"),  # [IPv6]:port
    re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b"),  # IPv4[:port]
    re.compile(r"\b(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+):\d{1,5}\b"),  # host.name:port
)


class ApiError(Exception):
    """An answer in OpenAI's error shape: the status, ``message``, ``kind`` (OpenAI's ``type``),
    the offending ``param``, a machine-readable ``code`` and extra response ``headers``."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.kind, param=self.param, code=self.code)

    def response(self) -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


def error_body(
    message: str, kind: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape (what the SDK turns into ``APIStatusError.message``)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def scrub_addresses(text: str) -> str:
    """``text`` with every URL, IP address and host:port replaced by ``<address>``."""
    for pattern in _ADDRESS_PATTERNS:
        text = pattern.sub("<address>", text)
    return text


def retry_after_headers(seconds: float | None) -> dict[str, str]:
    """``Retry-After`` (whole seconds, as HTTP wants) and, for the SDK's finer reading,
    ``retry-after-ms``; the upstream's delay when it gave one, else :data:`DEFAULT_RETRY_AFTER`."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return {"Retry-After": str(DEFAULT_RETRY_AFTER)}
    return {"Retry-After": str(max(1, math.ceil(seconds))), "retry-after-ms": str(round(seconds * 1000))}


def upstream_error(exc: LLMError, *, forward_auth: bool) -> ApiError:
    """The client's answer for an upstream failure: a general message, details in the log only."""
    if isinstance(exc, LLMBadRequestError):
        detail = scrub_addresses(str(exc).split(": ", 1)[-1])
        return ApiError(400, f"the model rejected the request: {detail}")
    if isinstance(exc, LLMAuthError):
        if forward_auth:
            return ApiError(401, "the upstream model rejected the forwarded API key", "authentication_error")
        return ApiError(502, "the upstream model rejected this server's credentials", "upstream_error")
    if isinstance(exc, LLMRateLimitError):
        return ApiError(429, "the upstream model is rate limited; retry later", "rate_limit_error",
                        code="rate_limit_exceeded", headers=retry_after_headers(exc.retry_after))  # fmt: skip
    if isinstance(exc, BudgetExceededError):
        # the budget does not refill: no Retry-After, and the SDK's automatic retries switched off
        return ApiError(429, "this server's budget for the upstream model is spent", "insufficient_quota",
                        code="insufficient_quota", headers={"x-should-retry": "false"})  # fmt: skip
    if isinstance(exc, LLMTimeoutError):
        return ApiError(504, "the upstream model did not answer in time", "upstream_timeout")
    return ApiError(502, f"the upstream model failed ({type(exc).__name__})", "upstream_error")


def status_for(exc: LLMError, *, forward_auth: bool) -> tuple[int, str, str]:
    """(HTTP status, OpenAI error type, client message) for an upstream failure."""
    error = upstream_error(exc, forward_auth=forward_auth)
    return error.status, error.kind, error.message


def install_handlers(app: Any) -> None:
    """Answer the framework's own errors (unknown path, wrong method, validation, a bug) in
    OpenAI's shape instead of FastAPI's ``{"detail": ...}`` and plain-text 500."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def api_error(_request: Any, exc: ApiError) -> Any:
        return exc.response()

    async def http_error(request: Any, exc: HTTPException) -> Any:
        where = f"{request.method} {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            return ApiError(404, f"Invalid URL ({where})", headers=headers).response()
        if exc.status_code == 405:
            allowed = headers.get("Allow") or headers.get("allow") or ""
            hint = f"; allowed: {allowed}" if allowed else ""
            error = ApiError(405, f"method not allowed ({where}){hint}", code="method_not_allowed",
                             headers=headers)  # fmt: skip
            return error.response()
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return ApiError(exc.status_code, str(exc.detail), kind, headers=headers).response()

    async def invalid(_request: Any, exc: RequestValidationError) -> Any:
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return ApiError(400, str(first.get("msg", "invalid request")), param=where).response()

    async def bug(_request: Any, exc: Exception) -> Any:
        log.error("internal error while serving a request: %s", type(exc).__name__)
        return ApiError(500, "internal server error", "server_error").response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, bug)
