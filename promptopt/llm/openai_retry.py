"""The openai backend's retry policy: which failures are worth another attempt, and how long to wait.

Why one policy, here: the client's own retries are switched off, so tenacity (driven by the
backend) is the only one. Attempts are bounded, backoff is exponential with jitter, and the
server's ``Retry-After`` is honoured (capped). Only transient failures are retried: 408/409/429/
5xx, timeouts, connection errors and broken HTTP framing. A malformed answer is not: asking again
rarely helps and costs money.
"""

from __future__ import annotations

import math
import random

import openai
from tenacity import RetryCallState

TRANSIENT_STATUS = frozenset({408, 409, 429})


def is_transient(exc: BaseException) -> bool:
    """Whether a failed attempt is worth repeating (rate limits, 5xx, timeouts, lost connections)."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in TRANSIENT_STATUS or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError)  # includes APITimeoutError


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's requested delay (``retry-after-ms`` or ``Retry-After`` seconds), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue  # HTTP-date form: fall back to our own backoff
        if seconds >= 0 and math.isfinite(seconds):
            return seconds
    return None


class Backoff:
    """Tenacity wait: the server's Retry-After if it gave one (capped), else exponential with jitter.

    "Equal jitter": half the exponential step is fixed, half is random, so retries of many
    concurrent requests spread out without collapsing to zero wait.
    """

    def __init__(self, initial: float, maximum: float, retry_after_max: float, rng: random.Random) -> None:
        self.initial = initial
        self.maximum = maximum
        self.retry_after_max = retry_after_max
        self._rng = rng

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        server_says = retry_after_seconds(exc)
        if server_says is not None:
            return min(server_says, self.retry_after_max)
        step = min(self.initial * 2.0 ** (state.attempt_number - 1), self.maximum)
        return step / 2 + self._rng.uniform(0, step / 2)


def retry_reason(exc: BaseException | None) -> str:
    """Why an attempt failed, in a few words built from the exception's type (never its text,
    which may echo a URL with credentials)."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return f"no connection: {type(cause).__name__}" if cause is not None else "no connection"
    return type(exc).__name__
