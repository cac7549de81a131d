"""Any OpenAI-compatible endpoint: the OpenAI API, vLLM serve, llama.cpp server, LM Studio.

Spec strings: ``openai:<model>`` (the OpenAI API, key from ``OPENAI_API_KEY``) and
``openai:<model>@<base_url>`` (any compatible server; on localhost a missing key becomes the dummy
``"EMPTY"`` so local servers work without setup).

Why these choices:

- One ``openai.AsyncOpenAI`` per event loop (kept in ``loop_state``): its HTTP connection pool is
  bound to the loop that opened it, and the sync door runs each batch on a fresh loop.
- The concurrency bound is held per HTTP *attempt*, not per request: a request that fans out into
  several calls (``n`` emulation) stays inside the bound, and a request sleeping in backoff does
  not hold a slot that another request could use.
- Retries are tenacity's (the client's own retries are switched off so there is one policy):
  bounded attempts, exponential backoff with jitter, and the server's ``Retry-After`` honoured
  (capped). Only transient failures are retried: 408/409/429/5xx, timeouts, connection errors
  and broken HTTP framing. A malformed answer is not: asking again rarely helps and costs money.
- Every failure leaves as a typed ``LLMError`` whose message is built here from facts (status,
  attempts, a redacted and shortened server message), so no API key or URL credential can leak
  through an error, a log line or the model ``name`` (which is a cache key).
- Several endpoints of one model (``openai:<model>@<url1>,<url2>``): each attempt goes to the
  endpoint with the fewest requests in flight; one that cannot be reached is marked down for a
  cool-off and the attempt is retried on another at once (see ``llm/multi.py``).
- ``max_concurrency="auto"`` replaces the fixed bound with an AIMD controller fed by each
  attempt's outcome and latency (see ``llm/concurrency.py``).
- Servers that ignore ``n`` (llama.cpp answers one choice) get the missing samples as separate
  concurrent calls, with ``seed + i`` for sample ``i`` when a seed is given; usage is summed.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import ipaddress
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit, urlunsplit

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from promptopt.errors import ConfigError
from promptopt.llm import structured
from promptopt.llm.base import (
    RETRY_LOG_ATTR,
    BaseLLM,
    Choice,
    Completion,
    LLMAuthError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    Request,
    RetryNotice,
    Usage,
    run_sync,
    settle_results,
)
from promptopt.llm.concurrency import (
    AIMDSettings,
    ConcurrencySetting,
    Limiter,
    make_controller,
    parse_concurrency,
)
from promptopt.llm.multi import EndpointPool, Reach

log = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_DUMMY_KEY = "EMPTY"
_LOCAL_HOSTS = frozenset({"localhost", "localhost.localdomain"})
_MAX_SERVER_MESSAGE = 200

Api = Literal["chat", "completions"]
TokenLimitParam = Literal["max_tokens", "max_completion_tokens"]


# --------------------------------------------------------------------------- spec and secrets


_URL_START = re.compile(r"@(?=[a-z][a-z0-9+.-]*://)", re.IGNORECASE)


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and with which credentials.

    ``base_url`` is what the HTTP client gets: never any ``user:password@`` (the HTTP library logs
    URLs); such credentials travel as a Basic ``Authorization`` header in ``headers`` instead.
    ``public_url`` is the URL without credentials, query or fragment: safe for names and messages.
    ``secrets`` lists every string that must never be shown.
    """

    model: str
    base_url: str | None
    public_url: str | None
    api_key: str
    headers: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The model name used in cache keys and reports: never carries a secret."""
        if self.public_url is None or self.public_url.rstrip("/") == OPENAI_DEFAULT_BASE_URL:
            return f"openai:{self.model}"
        return f"openai:{self.model}@{self.public_url}"


def split_spec(rest: str) -> tuple[str, str | None]:
    """``"<model>@<base_url>"`` → (model, base_url); the URL starts at the first ``@<scheme>://``.

    Why not ``partition("@")``: URLs may carry ``user:pw@host`` and model names may contain ``@``.
    """
    match = _URL_START.search(rest)
    if match is None:
        return rest.strip(), None
    return rest[: match.start()].strip(), rest[match.end() :].strip()


def _netloc(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return host if parts.port is None else f"{host}:{parts.port}"


def public_url(url: str) -> str:
    """The URL without user info, query and fragment (where credentials hide)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, _netloc(parts), parts.path.rstrip("/"), "", ""))


def is_local_url(url: str) -> bool:
    """True for loopback hosts (``localhost``, 127.0.0.0/8, ``::1``, ``0.0.0.0``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in _LOCAL_HOSTS:
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return addr.is_loopback or addr.is_unspecified


def resolve_endpoint(rest: str, *, api_key: str | None = None, base_url: str | None = None) -> Endpoint:
    """Parse the spec's ``rest``, pick the base URL and the key; raise a one-line error if unusable."""
    model, url = split_spec(rest)
    if not model:
        raise ConfigError(
            "the openai backend needs a model: 'openai:<model>' or 'openai:<model>@<base_url>' "
            "(e.g. openai:gpt-4o-mini, openai:qwen@http://127.0.0.1:8000/v1)"
        )
    if url is not None and base_url is not None and url != base_url:
        raise ConfigError(
            "give the base URL either in the spec (openai:<model>@<url>) or as base_url, not both"
        )
    url = url or base_url or os.environ.get("OPENAI_BASE_URL") or None
    headers: list[tuple[str, str]] = []
    secrets: list[str] = []
    client_url: str | None = None
    if url is not None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ConfigError(
                "the base URL cannot be parsed; expected e.g. http://127.0.0.1:8000/v1"
            ) from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"base URL {public_url(url)!r} must be an http:// or https:// URL with a host, "
                "e.g. http://127.0.0.1:8000/v1"
            )
        if parts.username or parts.password:
            user, password = unquote(parts.username or ""), unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
            secrets += [password, token, f"{user}:{password}"]
        if parts.query:
            secrets += [parts.query, *(v for _, v in parse_qsl(parts.query))]
        client_url = urlunsplit((parts.scheme, _netloc(parts), parts.path, parts.query, ""))
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if not key:
        if url is not None and is_local_url(url):
            key = LOCAL_DUMMY_KEY
        else:
            where = "the OpenAI API" if url is None else public_url(url)
            raise LLMAuthError(
                f"no API key for {where}: set OPENAI_API_KEY or pass api_key "
                "(use api_key='EMPTY' for a server without authentication)"
            )
    secrets.append(key)
    return Endpoint(
        model=model,
        base_url=client_url,
        public_url=public_url(url) if url else None,
        api_key=key,
        headers=tuple(headers),
        secrets=tuple(s for s in secrets if s),
    )


_URL_SEPARATOR = re.compile(r"\s*,\s*(?=[a-z][a-z0-9+.-]*://)", re.IGNORECASE)


def split_urls(url: str) -> list[str]:
    """``"<url1>,<url2>"`` → the URLs: a comma separates URLs only where the next one starts with
    ``<scheme>://``, so a comma inside a URL (legal in paths and queries) stays part of it."""
    return [u for u in _URL_SEPARATOR.split(url.strip()) if u]


def resolve_endpoints(
    rest: str, *, api_key: str | None = None, base_url: str | None = None
) -> tuple[Endpoint, ...]:
    """Every endpoint of ``openai:<model>@<url1>,<url2>,...`` (one key for all; each URL's own
    credentials stay with it); one endpoint when there is one URL or none."""
    model, url = split_spec(rest)
    if url is None or len(split_urls(url)) <= 1:
        return (resolve_endpoint(rest, api_key=api_key, base_url=base_url),)
    if base_url is not None:
        raise ConfigError(
            "give the base URLs either in the spec (openai:<model>@<url1>,<url2>) or as base_url, not both"
        )
    endpoints = tuple(resolve_endpoint(f"{model}@{u}", api_key=api_key) for u in split_urls(url))
    seen = [e.public_url for e in endpoints]
    if len(set(seen)) != len(seen):
        raise ConfigError(
            f"the same base URL is given twice in openai:{model}@{','.join(str(u) for u in seen)}"
        )
    return endpoints


def pool_name(endpoints: Sequence[Endpoint]) -> str:
    """The name of a model served by several endpoints: ``openai:<model>@<url1>,<url2>`` (no secrets)."""
    if len(endpoints) == 1:
        return endpoints[0].name
    return (
        f"openai:{endpoints[0].model}@{','.join(e.public_url or OPENAI_DEFAULT_BASE_URL for e in endpoints)}"
    )


class Redactor:
    """Removes known secrets from any text that may reach a message or a log line."""

    def __init__(self, secrets: Sequence[str]) -> None:
        # Longest first, so a secret that contains another is removed whole; dummy keys are no secret.
        kept = {s for s in secrets if s and s != LOCAL_DUMMY_KEY and len(s) >= 3}
        self._secrets = sorted(kept, key=len, reverse=True)

    def __call__(self, text: str, limit: int | None = None) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        text = " ".join(text.split())
        if limit is not None and len(text) > limit:
            text = text[: limit - 1] + "…"
        return text


# --------------------------------------------------------------------------- retry policy

_TRANSIENT_STATUS = frozenset({408, 409, 429})


def _transport_errors() -> tuple[type[BaseException], ...]:
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


def is_transient(exc: BaseException) -> bool:
    """Whether a failed attempt is worth repeating (rate limits, 5xx, timeouts, lost connections)."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _TRANSIENT_STATUS or exc.status_code >= 500
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


# --------------------------------------------------------------------------- the backend


class OpenAICompatLLM(BaseLLM):
    """An ``LLM`` over an OpenAI-compatible HTTP API (see module docstring for the why)."""

    def __init__(
        self,
        endpoint: Endpoint | Sequence[Endpoint],
        *,
        timeout: float = 60.0,
        max_retries: int = 4,
        max_concurrency: ConcurrencySetting = 16,
        api: Api = "chat",
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_max: float = 60.0,
        token_limit_param: TokenLimitParam = "max_tokens",
        extra_body: dict[str, Any] | None = None,
        structured_output: str = "none",
        endpoint_cooloff: float = 2.0,
    ) -> None:
        super().__init__()
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        concurrency = parse_concurrency(max_concurrency)
        endpoints = (endpoint,) if isinstance(endpoint, Endpoint) else tuple(endpoint)
        if not endpoints or len({e.model for e in endpoints}) != 1:
            raise ConfigError("an openai backend needs one or more endpoints of the same model")
        if endpoint_cooloff < 0:
            raise ConfigError(f"endpoint_cooloff must be >= 0 seconds, got {endpoint_cooloff}")
        if api not in ("chat", "completions"):
            raise ConfigError(f"api must be 'chat' or 'completions', got {api!r}")
        if token_limit_param not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(
                f"token_limit_param must be 'max_tokens' or 'max_completion_tokens', got {token_limit_param!r}"
            )
        if backoff < 0 or backoff_max < 0 or retry_after_max < 0:
            raise ConfigError("backoff, backoff_max and retry_after_max must be >= 0")
        self._endpoint = endpoints[0]
        self._endpoints = endpoints
        self.name = pool_name(endpoints)
        self.model = endpoints[0].model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        #: what was asked for (a number or "auto"); ``controller.limit`` is the bound right now
        self.concurrency: ConcurrencySetting = concurrency
        self.controller = make_controller(concurrency)
        #: the most attempts ever in flight: the fixed number, or the adaptive controller's cap
        self.max_concurrency = concurrency if isinstance(concurrency, int) else AIMDSettings().cap
        self.pool = EndpointPool(
            len(endpoints), cooloff=endpoint_cooloff, cooloff_max=max(30.0, endpoint_cooloff)
        )
        self.api: Api = api
        self.token_limit_param: TokenLimitParam = token_limit_param
        self.extra_body = dict(extra_body) if extra_body else None
        #: how the server decodes under a Request's constraint: declared, never guessed from the URL
        self.structured_output = structured.check_server_mechanism(structured_output)
        self._backoff = Backoff(backoff, backoff_max, retry_after_max, random.Random())
        self._redact = Redactor([s for e in endpoints for s in e.secrets])
        self._broken_framing = _transport_errors()
        #: None until the server shows whether it honours ``n``; a fact about the server, not the loop.
        self._native_n: bool | None = None

    def __repr__(self) -> str:  # never the key
        return f"OpenAICompatLLM(name={self.name!r}, timeout={self.timeout}, max_retries={self.max_retries})"

    # -- client per event loop and endpoint
    @staticmethod
    def _client_key(index: int) -> str:
        return "client" if index == 0 else f"client@{index}"

    def _client(self, index: int = 0) -> openai.AsyncOpenAI:
        state = self.loop_state()
        key = self._client_key(index)
        client = state.get(key)
        if client is None:
            endpoint = self._endpoints[index]
            client = openai.AsyncOpenAI(
                api_key=endpoint.api_key,
                base_url=endpoint.base_url or OPENAI_DEFAULT_BASE_URL,
                timeout=self.timeout,
                max_retries=0,  # one retry policy: ours (tenacity)
                default_headers=dict(endpoint.headers) or None,
            )
            state[key] = client
        return client

    async def aclose(self) -> None:
        """Close this event loop's HTTP clients (others die with their loops); safe to call twice."""
        state = self.loop_state()
        for index in range(len(self._endpoints)):
            client = state.pop(self._client_key(index), None)
            if client is not None:
                await client.close()

    # -- admission: the concurrency bound, then an endpoint
    def _limiter(self) -> Limiter:
        state = self.loop_state()
        limiter = state.get("limiter")
        if limiter is None:
            limiter = state["limiter"] = Limiter(self.controller)
        return limiter

    @asynccontextmanager
    async def _slot(self, tried: list[int]) -> AsyncIterator[openai.AsyncOpenAI]:
        """Hold a concurrency slot and an endpoint for one attempt; tell both how it went.

        ``tried`` is the request's list of endpoints so far: a retry avoids the last one.
        """
        async with self._limiter().slot() as slot:
            lease = self.pool.acquire(avoid=tried[-1] if tried else None)
            tried.append(lease.index)
            reach: Reach = "answered"
            try:
                yield self._client(lease.index)
            except openai.APIStatusError as exc:
                if exc.status_code in (429, 503):
                    slot.overloaded()
                raise
            except openai.APITimeoutError:
                reach = "unknown"  # slow is not dead
                raise
            except openai.APIConnectionError:
                reach = "unreachable"  # refused, reset, or closed mid-answer: the server is going
                raise
            finally:
                self.pool.release(lease, reach)

    def _wait(self, state: RetryCallState) -> float:
        """No wait before moving a request off an endpoint that cannot be reached while another is
        up (that is failover, not backoff); the usual backoff otherwise."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if (
            len(self._endpoints) > 1
            and isinstance(exc, openai.APIConnectionError)
            and not isinstance(exc, openai.APITimeoutError)
            and self.pool.up_count() > 0
        ):
            return 0.0
        return self._backoff(state)

    def generate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        """Sync door: the batch runs on a fresh loop, whose connections are closed before it ends."""

        async def once() -> list[Any]:
            try:
                return await self.agenerate(requests, return_exceptions=return_exceptions)
            finally:
                await self.aclose()

        return run_sync(once())

    # -- batch
    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        results = await asyncio.gather(*(self._complete(r) for r in requests), return_exceptions=True)
        return settle_results(results, return_exceptions)

    async def _complete(self, request: Request) -> Completion:
        parts: list[Completion] = []
        if request.n == 1 or self._native_n is not False:
            first = await self._call(request, n=request.n, seed=request.seed)
            parts.append(first)
            if len(first.choices) >= request.n:
                if request.n > 1:
                    self._native_n = True
                return _merge(parts, request.n, self.name)
            self._native_n = False
            log.debug(
                "%s returned %d of n=%d choices; sampling the rest one by one",
                self.name,
                len(first.choices),
                request.n,
            )
        missing = range(sum(len(p.choices) for p in parts), request.n)
        results = await asyncio.gather(
            *(self._call(request, n=1, seed=_sample_seed(request.seed, i)) for i in missing),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r
            parts.append(r)
        return _merge(parts, request.n, self.name)

    # -- one call, retried
    async def _call(self, request: Request, *, n: int, seed: int | None) -> Completion:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        started = time.monotonic()
        tried: list[int] = []  # endpoints this request's attempts went to
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(request, n=n, seed=seed, tried=tried)
        except LLMError:
            raise
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            attempts = int(retrying.statistics.get("attempt_number", 1))
            raise self._translate(exc, attempts, time.monotonic() - started) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _attempt(self, request: Request, *, n: int, seed: int | None, tried: list[int]) -> Completion:
        async with self._slot(tried) as client:
            params: dict[str, Any] = {
                "model": self.model,
                "n": n,
                "temperature": request.temperature,
                "top_p": request.top_p,
                self.token_limit_param: request.max_tokens,
            }
            if request.stop:
                params["stop"] = list(request.stop)
            if seed is not None:
                params["seed"] = seed
            shaped, extra = structured.request_params(self.structured_output, request.constraint)
            if self.extra_body or extra:
                params["extra_body"] = {**(self.extra_body or {}), **extra}
            if self.api == "completions" and request.prompt is not None:
                if self.token_limit_param != "max_tokens":
                    params["max_tokens"] = params.pop(self.token_limit_param)
                response = await client.completions.create(prompt=request.prompt, **params)
                return self._parse(response, chat=False)
            response = await client.chat.completions.create(
                messages=request.chat_messages(), **params, **shaped
            )
            return self._unwrapped(self._parse(response, chat=True), request)

    def _unwrapped(self, completion: Completion, request: Request) -> Completion:
        """Each choice as the request's constraint describes it (see ``structured.unwrap``)."""
        if request.constraint is None or self.structured_output != "openai":
            return completion
        choices = tuple(
            Choice(structured.unwrap(self.structured_output, request.constraint, c.text), c.finish_reason)
            for c in completion.choices
        )
        return Completion(choices, completion.usage, model=completion.model)

    def _parse(self, response: Any, *, chat: bool) -> Completion:
        """Turn the client's object into a Completion, refusing anything that is not a real answer."""
        raw_choices = getattr(response, "choices", None)
        if not isinstance(raw_choices, list) or not raw_choices:
            raise LLMResponseError(f"{self.name}: the server answered with no choices")
        choices: list[Choice] = []
        for c in sorted(raw_choices, key=lambda c: getattr(c, "index", 0) or 0):
            if chat:
                message = getattr(c, "message", None)
                if message is None:
                    raise LLMResponseError(f"{self.name}: a choice in the answer has no message")
                text = getattr(message, "content", None)
            else:
                text = getattr(c, "text", None)
            if text is not None and not isinstance(text, str):
                raise LLMResponseError(f"{self.name}: a choice's text is not a string")
            choices.append(Choice(text or "", str(getattr(c, "finish_reason", None) or "stop")))
        u = getattr(response, "usage", None)
        usage = Usage(
            prompt_tokens=int(getattr(u, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(u, "completion_tokens", 0) or 0),
            calls=1,
        )
        return Completion(tuple(choices), usage, model=self.name)

    # -- errors and logs
    def _translate(self, exc: BaseException, attempts: int, elapsed: float) -> LLMError:
        """A typed LLMError with a one-line message built from facts (never the key)."""
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''} in {elapsed:.1f}s"
        if isinstance(exc, json.JSONDecodeError):
            return LLMResponseError(f"{self.name}: the server's answer is not valid JSON ({exc.msg})")
        if isinstance(exc, openai.APIResponseValidationError):
            return LLMResponseError(f"{self.name}: the server's answer does not have the expected shape")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status in (401, 403):
                return LLMAuthError(
                    f"{self.name}: the server rejected the API key (HTTP {status}); check OPENAI_API_KEY or api_key"
                )
            detail = self._redact(_server_message(exc), _MAX_SERVER_MESSAGE)
            said = f": {detail}" if detail else ""
            if status == 429:
                return LLMRateLimitError(f"{self.name}: rate limited (HTTP 429) {tries}{said}")
            if status >= 500 or status in _TRANSIENT_STATUS:
                return LLMServerError(f"{self.name}: server error (HTTP {status}) {tries}{said}")
            return LLMBadRequestError(f"{self.name}: request rejected (HTTP {status}){said}")
        if isinstance(exc, openai.APITimeoutError):
            return LLMTimeoutError(f"{self.name}: no answer within {self.timeout:g}s, {tries}")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            if self._broken_framing and isinstance(cause, self._broken_framing):
                return LLMResponseError(
                    f"{self.name}: the server sent an incomplete HTTP response (connection closed mid-answer), {tries}"
                )
            reason = type(cause).__name__ if cause is not None else "connection error"
            where = ", ".join(e.public_url or OPENAI_DEFAULT_BASE_URL for e in self._endpoints)
            return LLMConnectionError(f"{self.name}: cannot reach {where} ({reason}), {tries}")
        return LLMResponseError(f"{self.name}: unexpected client error {type(exc).__name__}")

    def _log_retry(self, state: RetryCallState) -> None:
        """One INFO record per retry, with a :class:`RetryNotice` attached for front ends to fold."""
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        notice = RetryNotice(self.name, state.attempt_number, self.max_retries + 1, _retry_reason(exc), wait)
        log.info("%s", notice, extra={RETRY_LOG_ATTR: notice})


def _retry_reason(exc: BaseException | None) -> str:
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


def _server_message(exc: openai.APIStatusError) -> str:
    """The server's own words from an error body (``{"error": {"message": ...}}`` or text)."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)
    elif isinstance(body, str) and body.strip():
        return body
    return ""


def _sample_seed(seed: int | None, index: int) -> int | None:
    """Sample ``index``'s seed when samples are drawn one call each (``None`` stays ``None``)."""
    return None if seed is None else seed + index


def _merge(parts: Sequence[Completion], n: int, model: str) -> Completion:
    """Join the completions of the calls that served one request: first ``n`` choices, summed usage."""
    choices = tuple(c for p in parts for c in p.choices)[:n]
    usage = Usage()
    for p in parts:
        usage = usage + p.usage
    return Completion(choices, usage, model=model)


_OPTIONS = frozenset(
    {
        "timeout",
        "max_retries",
        "max_concurrency",
        "api",
        "backoff",
        "backoff_max",
        "retry_after_max",
        "token_limit_param",
        "extra_body",
        "structured_output",
        "endpoint_cooloff",
    }
)


#: Environment variables that set defaults for every openai-backend model a command opens, so a CLI
#: user with a slow or flaky server can tune them without a flag on every verb.
ENV_OPTIONS: dict[str, tuple[str, type]] = {
    "PROMPTOPT_REQUEST_TIMEOUT": ("timeout", float),
    "PROMPTOPT_MAX_RETRIES": ("max_retries", int),
    "PROMPTOPT_MAX_CONCURRENCY": ("max_concurrency", int),
}


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Backend options from ``PROMPTOPT_REQUEST_TIMEOUT`` / ``_MAX_RETRIES`` / ``_MAX_CONCURRENCY``
    (explicit options win). A malformed or negative value is a ConfigError naming the variable."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for var, (key, kind) in ENV_OPTIONS.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        if key == "max_concurrency":  # a number or "auto"
            out[key] = parse_concurrency(raw, what=var)
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{var}={raw!r} is not a valid {kind.__name__}") from None
        if value < 0 or (key != "max_retries" and value == 0):
            raise ConfigError(f"{var} must be {'>= 0' if key == 'max_retries' else '> 0'}, got {raw}")
        out[key] = value
    return out


def from_spec(rest: str, **options: Any) -> OpenAICompatLLM:
    """Factory for ``openai:<model>``, ``openai:<model>@<base_url>`` and
    ``openai:<model>@<url1>,<url2>,...`` (several servers of one model, one API key).

    Options: ``api_key`` (never stored in ``name``), ``base_url``, ``timeout`` (60 s),
    ``max_retries`` (4), ``max_concurrency`` (16, the total over all endpoints, or ``"auto"``),
    ``endpoint_cooloff`` (2 s a dead endpoint rests before a probe), ``api`` (``"chat"`` or ``"completions"`` for
    plain prompts), ``backoff`` / ``backoff_max`` / ``retry_after_max`` (seconds),
    ``token_limit_param`` (``"max_completion_tokens"`` for newer OpenAI models), ``extra_body``,
    ``structured_output`` (how the server decodes under a request's constraint: ``none`` (default),
    ``openai``, ``llama-cpp`` or ``vllm``; see :mod:`promptopt.llm.structured`).
    """
    options.pop("cache_dir", None)
    api_key = options.pop("api_key", None)
    base_url = options.pop("base_url", None)
    for key, value in env_overrides().items():
        options.setdefault(key, value)
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown option(s) for the openai backend: {', '.join(unknown)}; "
            f"known: api_key, base_url, {', '.join(sorted(_OPTIONS))}"
        )
    endpoints = resolve_endpoints(rest, api_key=api_key, base_url=base_url)
    return OpenAICompatLLM(endpoints, **options)
