"""Any OpenAI-compatible endpoint: the OpenAI API, vLLM serve, llama.cpp server, LM Studio.

Spec strings: ``openai:<model>`` (the OpenAI API, key from ``OPENAI_API_KEY``) and
``openai:<model>@<base_url>`` (any compatible server; on localhost a missing key becomes the dummy
``"EMPTY"`` so local servers work without setup).

Why these choices:

- One ``openai.AsyncOpenAI`` per event loop (kept in ``loop_state``): its HTTP connection pool is
  bound to the loop that opened it, and the sync door runs each batch on a fresh loop. The
  clients of a loop are closed when that loop shuts down (see ``_close_at_loop_exit``), whoever
  forgets to: a caller closing later from another loop cannot reach them.
- The concurrency bound is held per HTTP *attempt*, not per request: a request that fans out into
  several calls (``n`` emulation) stays inside the bound, and a request sleeping in backoff does
  not hold a slot that another request could use.
- Retries are tenacity's (the client's own retries are switched off so there is one policy):
  bounded attempts, exponential backoff with jitter, and the server's ``Retry-After`` honoured
  (capped). Only transient failures are retried: 408/409/429/5xx, timeouts, connection errors
  and broken HTTP framing. A malformed answer is not: asking again rarely helps and costs money.
- Every failure leaves as a typed ``LLMError`` whose message is built from facts (status,
  attempts, a redacted and shortened server message), so no API key or URL credential can leak
  through an error, a log line or the model ``name`` (which is a cache key).
- Several endpoints of one model (``openai:<model>@<url1>,<url2>``): each attempt goes to the
  endpoint with the fewest requests in flight; one that cannot be reached is marked down for a
  cool-off and the attempt is retried on another at once (see ``llm/multi.py``).
- ``max_concurrency="auto"`` replaces the fixed bound with an AIMD controller fed by each
  attempt's outcome and latency (see ``llm/concurrency.py``).
- Servers that ignore ``n`` (llama.cpp answers one choice) get the missing samples as separate
  concurrent calls, with ``seed + i`` for sample ``i`` when a seed is given; usage is summed.

Where the parts live: spec parsing and credentials in ``llm/openai_spec.py``, secret removal in
``llm/redact.py``, the retry policy in ``llm/openai_retry.py``, error mapping in
``llm/openai_errors.py``, call arguments and answer parsing in ``llm/openai_wire.py``, option names
and their environment defaults in ``llm/openai_options.py``; the retry loop, the per-loop
concurrency limiter and ``n`` emulation, which ``litellm:`` shares, in ``llm/calls.py``. This module
is the backend that ties them together; it re-exports their public names for existing importers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import openai
from tenacity import RetryCallState

from promptopt.errors import ConfigError
from promptopt.llm import openai_wire, structured
from promptopt.llm.base import (
    BaseLLM,
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
    run_sync,
    settle_results,
)
from promptopt.llm.calls import check_timeout_and_retries, loop_limiter, make_backoff, retried, sample_rest
from promptopt.llm.concurrency import ConcurrencySetting, bound_from
from promptopt.llm.multi import EndpointPool, Reach
from promptopt.llm.openai_errors import translate, transport_errors
from promptopt.llm.openai_options import ENV_OPTIONS, OPTIONS, Api, TokenLimitParam, env_overrides
from promptopt.llm.openai_retry import Backoff, is_transient, retry_after_seconds, retry_reason
from promptopt.llm.openai_spec import (
    LOCAL_DUMMY_KEY,
    OPENAI_DEFAULT_BASE_URL,
    Endpoint,
    is_local_url,
    pool_name,
    public_url,
    resolve_endpoint,
    resolve_endpoints,
    split_spec,
    split_urls,
    with_headers,
)
from promptopt.llm.redact import Redactor

__all__ = [
    "ENV_OPTIONS",
    "LOCAL_DUMMY_KEY",
    "OPENAI_DEFAULT_BASE_URL",
    "Api",
    "Backoff",
    "Endpoint",
    "LLMAuthError",
    "LLMBadRequestError",
    "LLMConnectionError",
    "LLMError",
    "LLMRateLimitError",
    "LLMResponseError",
    "LLMServerError",
    "LLMTimeoutError",
    "OpenAICompatLLM",
    "Redactor",
    "TokenLimitParam",
    "env_overrides",
    "from_spec",
    "is_local_url",
    "is_transient",
    "pool_name",
    "public_url",
    "resolve_endpoint",
    "resolve_endpoints",
    "retry_after_seconds",
    "split_spec",
    "split_urls",
]

log = logging.getLogger(__name__)


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
        check_timeout_and_retries(timeout, max_retries)
        bound = bound_from(max_concurrency)
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
        self._backoff = make_backoff(backoff, backoff_max, retry_after_max)
        self._endpoint = endpoints[0]
        self._endpoints = endpoints
        self.name = pool_name(endpoints)
        self.model = endpoints[0].model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        #: what was asked for (a number or "auto"); ``controller.limit`` is the bound right now;
        #: ``max_concurrency`` the most attempts ever in flight (see ``concurrency.Bound``)
        self.concurrency: ConcurrencySetting = bound.setting
        self.controller = bound.controller
        self.max_concurrency = bound.most
        self.pool = EndpointPool(
            len(endpoints), cooloff=endpoint_cooloff, cooloff_max=max(30.0, endpoint_cooloff)
        )
        self.api: Api = api
        self.token_limit_param: TokenLimitParam = token_limit_param
        self.extra_body = dict(extra_body) if extra_body else None
        #: how the server decodes under a Request's constraint: declared, never guessed from the URL
        self.structured_output = structured.check_server_mechanism(structured_output)
        self._redact = Redactor([s for e in endpoints for s in e.secrets])
        self._broken_framing = transport_errors()
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
            self._close_at_loop_exit(state)
        return client

    def _close_at_loop_exit(self, state: dict[str, Any]) -> None:
        """Close this loop's clients when the loop shuts down, if nobody has by then.

        Why: a connection pool can only be closed on the loop that opened it. A sync door whose
        caller closes the backend afterwards (``open_models``, ``close()``) runs that close on a
        *new* loop, which has no clients, so the old loop's stayed open; the openai client's
        ``__del__`` then scheduled its close on whatever loop ran at garbage collection, printing
        "Task exception was never retrieved ... Event loop is closed" tracebacks (seen running
        several ``bpo eval`` jobs in one process). ``asyncio.run`` cancels pending tasks before it
        closes its loop, so a task that waits forever and closes the clients when cancelled runs
        in time on every sync door; :meth:`aclose` cancels it when it has closed them itself.
        """
        if "closer" in state:
            return

        async def close_when_cancelled() -> None:
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                await self._close_clients(state)
                raise

        state["closer"] = asyncio.get_running_loop().create_task(
            close_when_cancelled(), name="promptopt-close-clients"
        )

    async def _close_clients(self, state: dict[str, Any]) -> None:
        for index in range(len(self._endpoints)):
            client = state.pop(self._client_key(index), None)
            if client is not None:
                await client.close()

    async def aclose(self) -> None:
        """Close this event loop's HTTP clients (others are closed as their loops end); safe to
        call twice."""
        state = self.loop_state()
        await self._close_clients(state)
        closer = state.pop("closer", None)
        if closer is not None:
            closer.cancel()

    # -- admission: the concurrency bound, then an endpoint
    @asynccontextmanager
    async def _slot(self, tried: list[int]) -> AsyncIterator[openai.AsyncOpenAI]:
        """Hold a concurrency slot and an endpoint for one attempt; tell both how it went.

        ``tried`` is the request's list of endpoints so far: a retry avoids the last one.
        """
        async with loop_limiter(self.loop_state(), self.controller).slot() as slot:
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
                reach = "timeout"  # slow is not dead; silent for a whole timeout is (llm/multi.py)
                raise
            except asyncio.CancelledError:
                reach = "unknown"  # the caller gave up (a serve client left): nothing learnt
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
                return openai_wire.merge(parts, request.n, self.name)
            self._native_n = False
            log.debug(
                "%s returned %d of n=%d choices; sampling the rest one by one",
                self.name,
                len(first.choices),
                request.n,
            )
        return await sample_rest(self._call, request, parts, self.name)

    # -- one call, retried
    async def _call(self, request: Request, *, n: int, seed: int | None) -> Completion:
        tried: list[int] = []  # endpoints this request's attempts went to
        return await retried(
            lambda: self._attempt(request, n=n, seed=seed, tried=tried),
            name=self.name,
            max_retries=self.max_retries,
            wait=self._wait,
            transient=is_transient,
            reason=retry_reason,
            log=log,
            failures=(openai.OpenAIError, json.JSONDecodeError),
            translate=self._translate,
        )

    async def _attempt(self, request: Request, *, n: int, seed: int | None, tried: list[int]) -> Completion:
        async with self._slot(tried) as client:
            params, shaped = openai_wire.request_params(
                request,
                model=self.model,
                n=n,
                seed=seed,
                token_limit_param=self.token_limit_param,
                extra_body=self.extra_body,
                structured_output=self.structured_output,
            )
            if self.api == "completions" and request.prompt is not None:
                params = openai_wire.completions_params(params, self.token_limit_param)
                response = await client.completions.create(prompt=request.prompt, **params)
                return openai_wire.parse_response(response, chat=False, name=self.name)
            response = await client.chat.completions.create(
                messages=request.chat_messages(), **params, **shaped
            )
            return self._unwrapped(openai_wire.parse_response(response, chat=True, name=self.name), request)

    def _unwrapped(self, completion: Completion, request: Request) -> Completion:
        """Each choice as the request's constraint describes it (see ``structured.unwrap``)."""
        return openai_wire.unwrapped(completion, request, self.structured_output)

    # -- errors
    def _translate(self, exc: BaseException, attempts: int, elapsed: float) -> LLMError:
        """A typed LLMError with a one-line message built from facts (never the key)."""
        return translate(
            exc,
            attempts,
            elapsed,
            name=self.name,
            timeout=self.timeout,
            urls=[e.public_url or OPENAI_DEFAULT_BASE_URL for e in self._endpoints],
            redact=self._redact,
            broken_framing=self._broken_framing,
        )


def from_spec(rest: str, **options: Any) -> OpenAICompatLLM:
    """Factory for ``openai:<model>``, ``openai:<model>@<base_url>`` and
    ``openai:<model>@<url1>,<url2>,...`` (several servers of one model, one API key).

    Options: ``api_key`` (never stored in ``name``), ``base_url``, ``headers`` (extra HTTP headers,
    their values redacted like the key), ``timeout`` (60 s),
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
    headers = options.pop("headers", None)  # extra headers: sent on every request, values are secrets
    for key, value in env_overrides().items():
        options.setdefault(key, value)
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown option(s) for the openai backend: {', '.join(unknown)}; "
            f"known: api_key, base_url, {', '.join(sorted(OPTIONS))}"
        )
    endpoints = resolve_endpoints(rest, api_key=api_key, base_url=base_url)
    if headers:
        endpoints = with_headers(endpoints, headers)
    return OpenAICompatLLM(endpoints, **options)
