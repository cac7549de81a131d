"""Any provider LiteLLM reaches (Anthropic, Azure, Bedrock, Vertex, Gemini, OpenAI-compatible
servers, ...): the ``litellm:<provider/model>[@<api_base>]`` model spec.

Why through LiteLLM: one client for a hundred providers' wire formats and credentials, the same
route DSPy, GEPA and TextGrad take. What promptopt keeps for itself is what ``openai:`` has: one
retry policy (tenacity; LiteLLM's and the SDKs' own retries are switched off), the concurrency
bound per attempt (fixed or ``"auto"``), typed errors (:mod:`promptopt.llm.litellm_errors`), the
request cache and the budget (the factory wraps this backend like any other), ``n`` emulation for
providers that answer one choice. The retry loop, the limiter and the ``n`` emulation are the very
code ``openai:`` runs (:mod:`promptopt.llm.calls`).

Credentials: ``api_key`` (from ``--optimizer-api-key-env`` / ``--scorer-api-key-env`` or the
Python ``api_key_env``, see :mod:`promptopt.llm.credentials`), else LiteLLM reads the provider's
own variable (``ANTHROPIC_API_KEY``, ``AZURE_API_KEY``, AWS and Google credentials, ...); a server
on this machine without either gets the dummy key ``EMPTY``, as with ``openai:``.
``headers`` go to every request (LiteLLM's ``extra_headers``). Neither reaches ``name``.

Prices: LiteLLM's price table (``litellm.get_model_info``) where it knows the model
(``known_price``, adopted by the budget unless the user priced the model), else the user's
``--price``. The table is the copy shipped inside the installed LiteLLM:
``LITELLM_LOCAL_MODEL_COST_MAP`` is set (unless the user set it) before LiteLLM is imported,
which would otherwise fetch a newer table from the network on import.

LiteLLM is imported on first use of this scheme only (it takes seconds), and told not to print
its debug hints (``suppress_debug_info``): only the CLI prints. Its asynchronous logging queue is
drained after each batch, so nothing of a batch stays bound to an event loop that the sync door
is about to close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from promptopt.errors import ConfigError
from promptopt.llm import litellm_errors, openai_wire
from promptopt.llm.base import BaseLLM, Completion, LLMError, Request, settle_results
from promptopt.llm.calls import check_timeout_and_retries, loop_limiter, make_backoff, retried, sample_rest
from promptopt.llm.concurrency import ConcurrencySetting, bound_from
from promptopt.llm.litellm_spec import import_litellm, known_price, parse_rest
from promptopt.llm.openai_options import env_overrides
from promptopt.llm.openai_spec import LOCAL_DUMMY_KEY, is_local_url, public_url
from promptopt.llm.redact import Redactor

log = logging.getLogger(__name__)

#: the options :func:`from_spec` takes (``api_key``, ``api_base`` and ``headers`` besides these)
OPTIONS = frozenset(
    {"timeout", "max_retries", "max_concurrency", "backoff", "backoff_max", "retry_after_max", "extra_body"}
)


class LiteLLMBackend(BaseLLM):
    """An ``LLM`` over ``litellm.acompletion`` (see the module docstring for the why)."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        timeout: float = 60.0,
        max_retries: int = 4,
        max_concurrency: ConcurrencySetting = 16,
        backoff: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_max: float = 60.0,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_timeout_and_retries(timeout, max_retries)
        self._backoff = make_backoff(backoff, backoff_max, retry_after_max)
        self._litellm = import_litellm()
        try:
            _, self.provider, _, _ = self._litellm.get_llm_provider(model, api_base=api_base)
        except Exception:  # LiteLLM's BadRequestError for a model without a provider it knows
            raise ConfigError(
                f"LiteLLM cannot tell the provider of {model!r}: write it as <provider>/<model>, e.g. "
                "anthropic/claude-3-5-haiku-latest or openai/my-model@http://127.0.0.1:8000/v1"
            ) from None
        self.model = model
        self.api_base = api_base
        self.public_base = public_url(api_base) if api_base else None
        self.name = f"litellm:{model}" + (f"@{self.public_base}" if self.public_base else "")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        bound = bound_from(max_concurrency)
        self.concurrency: ConcurrencySetting = bound.setting
        self.controller = bound.controller
        self.max_concurrency = bound.most
        self.known_price = known_price(self._litellm, model, self.provider)
        self.extra_body = dict(extra_body) if extra_body else None
        self._api_key = api_key if api_key is not None else self._local_dummy_key(model, api_base)
        self._headers = dict(headers or {})
        self._redact = Redactor([*secrets, *([api_key] if api_key else []), *self._headers.values()])

    def _local_dummy_key(self, model: str, api_base: str | None) -> str | None:
        """``"EMPTY"`` for a server on this machine when no key is given and LiteLLM finds none for
        the provider (as ``openai:`` does: a local server needs no setup); else None, so LiteLLM
        reads the provider's own variable."""
        if api_base is None or not is_local_url(api_base):
            return None
        try:
            found = bool(
                self._litellm.validate_environment(model=model, api_base=api_base).get("keys_in_environment")
            )
        except Exception:  # LiteLLM's own check failed: let LiteLLM decide on the call
            return None
        return None if found else LOCAL_DUMMY_KEY

    def __repr__(self) -> str:  # never the key or a header's value
        return f"LiteLLMBackend(name={self.name!r}, timeout={self.timeout}, max_retries={self.max_retries})"

    # -- batch
    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        try:
            results = await asyncio.gather(*(self._complete(r) for r in requests), return_exceptions=True)
        finally:
            await self._drain_litellm_logging()
        return settle_results(results, return_exceptions)

    async def _drain_litellm_logging(self) -> None:
        """Let LiteLLM's logging queue finish this loop's entries (a loop change otherwise warns
        and carries them over). Its location is internal to LiteLLM: missing, nothing is done."""
        try:
            from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
        except ImportError:
            return
        await asyncio.sleep(0)  # the success callbacks are queued just after each answer
        try:
            await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout=5.0)
        except Exception as exc:  # logging is LiteLLM's own business: never fail a batch over it
            log.debug("LiteLLM's logging queue was not drained: %s", type(exc).__name__)

    async def _complete(self, request: Request) -> Completion:
        first = await self._call(request, n=request.n, seed=request.seed)
        # a provider that answers one choice: the rest are asked for one by one
        return await sample_rest(self._call, request, [first], self.name)

    # -- one call, retried
    async def _call(self, request: Request, *, n: int, seed: int | None) -> Completion:
        return await retried(
            lambda: self._attempt(request, n=n, seed=seed),
            name=self.name,
            max_retries=self.max_retries,
            wait=self._backoff,
            transient=litellm_errors.is_transient,
            reason=litellm_errors.retry_reason,
            log=log,
            failures=(litellm_errors.AttemptFailed,),
            translate=self._translate,
        )

    async def _attempt(self, request: Request, *, n: int, seed: int | None) -> Completion:
        params, _ = openai_wire.request_params(
            request,
            model=self.model,
            n=n,
            seed=seed,
            token_limit_param="max_tokens",
            extra_body=self.extra_body,
            structured_output="none",
        )
        call: dict[str, Any] = {
            **params,
            "messages": request.chat_messages(),
            "timeout": self.timeout,
            "num_retries": 0,  # one retry policy: ours
            "max_retries": 0,  # nor the provider SDK's
            "drop_params": True,  # a parameter the provider does not take (seed, n) is left out, not refused
        }
        if self.api_base is not None:
            call["api_base"] = self.api_base
        if self._api_key is not None:
            call["api_key"] = self._api_key
        if self._headers:
            call["extra_headers"] = dict(self._headers)
        async with loop_limiter(self.loop_state(), self.controller).slot() as slot:
            try:
                response = await self._litellm.acompletion(**call)
            except Exception as exc:  # LiteLLM's, or whatever its provider's client raised
                if litellm_errors.status_of(exc) in (429, 503):
                    slot.overloaded()
                raise litellm_errors.failed_attempt(self._litellm, exc) from exc
        return openai_wire.parse_response(response, chat=True, name=self.name)

    def _translate(self, failed: litellm_errors.AttemptFailed, attempts: int, elapsed: float) -> LLMError:
        """A typed LLMError with a one-line message built from facts (never a key or header)."""
        return litellm_errors.translate(
            failed,
            attempts,
            elapsed,
            name=self.name,
            timeout=self.timeout,
            where=self.public_base or f"the {self.provider} API",
            redact=self._redact,
        )


def from_spec(rest: str, **options: Any) -> LiteLLMBackend:
    """Factory for ``litellm:<provider/model>`` and ``litellm:<provider/model>@<api_base>``.

    Options: ``api_key`` and ``headers`` (never in ``name``), ``api_base``, ``timeout`` (60 s),
    ``max_retries`` (4), ``max_concurrency`` (16 or ``"auto"``), ``backoff`` / ``backoff_max`` /
    ``retry_after_max`` (seconds), ``extra_body``. ``PROMPTOPT_REQUEST_TIMEOUT``,
    ``PROMPTOPT_MAX_RETRIES`` and ``PROMPTOPT_MAX_CONCURRENCY`` set defaults, as for ``openai:``.
    """
    options.pop("cache_dir", None)
    api_key = options.pop("api_key", None)
    headers = options.pop("headers", None)
    model, api_base, secrets = parse_rest(rest, options.pop("api_base", None))
    for key, value in env_overrides().items():
        options.setdefault(key, value)
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown option(s) for the litellm backend: {', '.join(unknown)}; "
            f"known: api_key, api_base, headers, {', '.join(sorted(OPTIONS))}"
        )
    return LiteLLMBackend(
        model, api_base=api_base, api_key=api_key, headers=headers, secrets=secrets, **options
    )
