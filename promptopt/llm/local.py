"""The embedded default backend: a small GGUF model run in-process by llama.cpp on CPU.

``local`` → the default embedded model, ``local:<name>`` → another one from the table in
``embedded.py``, ``local:/path/to/model.gguf`` → any GGUF file (not verified: it is the user's).

Why one dedicated thread: llama.cpp's ``Llama`` object is not safe to call concurrently, and an
OpenMP build slows down sharply as soon as a second OS thread calls into it (shared/MODELS.md).
So the backend owns a :class:`~promptopt.llm.worker.Worker`; the model is created and called only
there, the event loop stays free, and concurrent requests simply queue.

Why the checks in :func:`from_spec`: llama-cpp-python and the default model's weights come with
the ``local`` extra; a spec that needs them fails when the model is opened, in one line naming
the extra, before a run directory is created, instead of at the first call inside a run.

Why grammars are checked here: llama-cpp-python hands a grammar to llama.cpp unchecked, and a GBNF
text that does not parse gives a NULL sampler that is silently skipped (free text comes back); its
``response_format={"type": "json_schema"}`` is ignored in-process, and a schema that fails to
convert falls back to generic JSON. So a :class:`~promptopt.llm.base.Constraint` becomes GBNF
here (a JSON schema through llama.cpp's own converter, errors raised), is compiled once against
the model's vocabulary, and a grammar llama.cpp rejects is a bad request, never unconstrained text.

Why lazy: constructing the backend (for ``--help``, for a dry run, for the cache to answer
everything) must not cost a 500 MB load; the model is loaded on the first real call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, UnknownNameError
from promptopt.extras import require, require_installed
from promptopt.llm.base import (
    BackendUnavailableError,
    BaseLLM,
    Choice,
    Completion,
    Constraint,
    LLMBadRequestError,
    Request,
    Usage,
    engine_error,
)
from promptopt.llm.embedded import (
    DEFAULT_LOCAL_MODEL,
    EMBEDDED_MODELS,
    EmbeddedModel,
    Notice,
    ensure_weights,
    locate_parts,
)
from promptopt.llm.gguf_file import check_gguf
from promptopt.llm.worker import Worker

logger = logging.getLogger(__name__)

DEFAULT_N_CTX = 4096
_WHAT = "the embedded model (model spec 'local')"


def default_threads() -> int:
    """``$PROMPTOPT_THREADS`` if set, else half the logical CPUs (≈ physical cores), at least 1.

    Why not all of them: see :class:`LlamaCppLLM`; the safe default loses little on an idle
    machine and avoids a tenfold slowdown on a busy one.
    """
    explicit = os.environ.get("PROMPTOPT_THREADS", "").strip()
    if explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    return max(1, (os.cpu_count() or 1) // 2)


class LlamaCppLLM(BaseLLM):
    """A GGUF model in-process through llama-cpp-python, called from one dedicated thread.

    Give either an embedded ``model`` (assembled and verified on first use) or a ``model_path``.
    ``n_threads`` defaults to :func:`default_threads` (half the logical CPUs, at least one): using
    every core is only fastest on an otherwise idle machine; when the cores are busy (a server and
    a client on one box, CI, parallel tests) it can be an order of magnitude slower, because
    llama.cpp's threads spin-wait for each other at every layer (measured on 2 shared cores: 8.2
    vs 0.6 tokens/s for the 0.5B model). ``on_notice`` receives the one-line
    notices about where the weights are (default: logging at INFO). A request's ``constraint``
    is decoded under as a GBNF grammar (``structured_output = "gbnf"``, see the module docstring).
    """

    structured_output = "gbnf"

    def __init__(
        self,
        model: EmbeddedModel | None = None,
        *,
        model_path: str | Path | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        cache_dir: str | Path | None = None,
        on_notice: Notice | None = None,
        name: str | None = None,
        llama_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if (model is None) == (model_path is None):
            raise ValueError("give exactly one of `model` or `model_path`")
        self.model = model
        self.model_path = Path(model_path) if model_path is not None else None
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads) if n_threads is not None else default_threads()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._notice = on_notice or logger.info
        self._llama_kwargs = dict(llama_kwargs or {})
        self.name = name or (f"local:{model.name}" if model is not None else f"local:{self.model_path}")
        # One worker thread, one Llama: the model is created, called and freed only there.
        self._worker = Worker("llama")
        self._llama: Any = None
        #: Constraint → compiled LlamaGrammar (worker thread only; a run uses one or two)
        self._grammars: dict[Constraint, Any] = {}
        #: seconds the last load took (weights check + llama.cpp load), for benchmarks
        self.load_seconds: float | None = None

    # ------------------------------------------------------------------ worker-thread only

    def _weights(self) -> Path:
        if self.model is not None:
            return ensure_weights(self.model, cache_dir=self.cache_dir, on_notice=self._notice)
        assert self.model_path is not None
        if not self.model_path.is_file():
            raise BackendUnavailableError(f"GGUF file {self.model_path} does not exist")
        return self.model_path

    def _load(self) -> Any:
        if self._llama is not None:
            return self._llama
        Llama = require("llama_cpp", "local", what=_WHAT).Llama
        t0 = time.perf_counter()
        path = self._weights()
        size_mb = path.stat().st_size / 1e6
        self._notice(f"loading {self.name} from {path} ({size_mb:.0f} MB) on {self.n_threads} CPU threads")
        kwargs: dict[str, Any] = {
            "n_ctx": self.n_ctx,
            "n_threads": self.n_threads,
            "verbose": False,
            **self._llama_kwargs,
        }
        try:
            self._llama = Llama(model_path=str(path), **kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendUnavailableError(f"llama.cpp could not load {path}: {exc}") from None
        self.load_seconds = time.perf_counter() - t0
        return self._llama

    def _grammar(self, constraint: Constraint) -> Any:
        """The checked LlamaGrammar for ``constraint`` (see the module docstring)."""
        grammar = self._grammars.get(constraint)
        if grammar is not None:
            return grammar
        llama_cpp = require("llama_cpp", "local", what=_WHAT)
        from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

        text = constraint.gbnf
        if text is None and constraint.json_schema is not None:
            try:
                text = json_schema_to_gbnf(constraint.json_schema)
            except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
                raise LLMBadRequestError(
                    f"{self.name}: the JSON schema cannot become a grammar: {exc}"
                ) from None
        if text is None:
            raise LLMBadRequestError(f"{self.name}: the constraint has neither a grammar nor a JSON schema")
        sampler = llama_cpp.llama_sampler_init_grammar(
            self._load()._model.vocab, text.encode("utf-8"), b"root"
        )
        if not sampler:
            raise LLMBadRequestError(f"{self.name}: llama.cpp rejected the constraint's GBNF grammar")
        llama_cpp.llama_sampler_free(sampler)
        grammar = self._grammars[constraint] = LlamaGrammar.from_string(text, verbose=False)
        return grammar

    def _run(self, request: Request) -> Completion:
        llama = self._load()
        grammar = self._grammar(request.constraint) if request.constraint is not None else None
        choices: list[Choice] = []
        prompt_tokens = 0
        completion_tokens = 0
        for i in range(request.n):
            if i > 0 and request.temperature == 0:
                # Greedy decoding gives the same text every time: copy it, count the real work once.
                choices.append(choices[0])
                continue
            params: dict[str, Any] = {
                "temperature": request.temperature,
                "top_p": request.top_p,
                "max_tokens": request.max_tokens,
                "stop": list(request.stop) or None,
                "seed": None if request.seed is None else request.seed + i,
            }
            if grammar is not None:
                params["grammar"] = grammar
            try:
                if request.messages is not None:
                    out = llama.create_chat_completion(messages=request.chat_messages(), **params)
                    first = out["choices"][0]
                    text = first["message"].get("content") or ""
                else:
                    out = llama.create_completion(prompt=request.prompt, **params)
                    first = out["choices"][0]
                    text = first.get("text") or ""
            except (ValueError, RuntimeError) as exc:  # a prompt over the context, llama_decode failing
                raise engine_error(self.name, exc, "llama.cpp") from None
            usage = out.get("usage") or {}
            # The prompt is the same for every sample (and llama.cpp reuses its KV cache), so it is
            # counted once, as OpenAI-compatible servers do for n > 1.
            if i == 0:
                prompt_tokens = int(usage.get("prompt_tokens", 0))
            completion_tokens += int(usage.get("completion_tokens", 0))
            choices.append(Choice(text, first.get("finish_reason") or "stop"))
        return Completion(
            tuple(choices),
            Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, calls=1),
            model=self.name,
        )

    def _free(self) -> None:
        self._grammars.clear()
        llama, self._llama = self._llama, None
        if llama is not None:
            close = getattr(llama, "close", None)
            if close is not None:
                close()

    # ------------------------------------------------------------------ public

    async def _complete(self, request: Request) -> Completion:
        return await self._worker.run(self._run, request)

    async def load(self) -> None:
        """Load the model now (otherwise the first request does)."""
        await self._worker.run(self._load)

    async def aclose(self) -> None:
        """Free the model and stop the worker thread; a later call loads the model again."""
        await self._worker.shutdown(self._free)


def resolve(rest: str) -> tuple[EmbeddedModel | None, Path | None]:
    """``''`` → the default model; a known name → that model; a ``.gguf`` path → that file."""
    name = rest.strip()
    if not name:
        return EMBEDDED_MODELS[DEFAULT_LOCAL_MODEL], None
    model = EMBEDDED_MODELS.get(name.lower())
    if model is not None:
        return model, None
    if name.lower().endswith(".gguf"):
        return None, Path(name).expanduser()
    raise UnknownNameError(
        f"unknown local model {name!r}; known: {', '.join(EMBEDDED_MODELS)} (or a path to a .gguf file)"
    )


def from_spec(rest: str, **options: Any) -> LlamaCppLLM:
    """Registry factory for ``local`` / ``local:<name>`` / ``local:<file.gguf>``.

    Options: ``n_ctx``, ``n_threads``, ``cache_dir`` (where assembled weights go), ``on_notice``,
    ``llama_kwargs`` (passed to ``llama_cpp.Llama``).
    """
    model, path = resolve(rest)
    allowed = {"n_ctx", "n_threads", "cache_dir", "on_notice", "llama_kwargs", "name"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"unknown option(s) for the local backend: {', '.join(unknown)}")
    require_installed("llama_cpp", "local", what=_WHAT)  # cheap: finds the package, imports nothing
    if model is not None:
        locate_parts(model)  # missing weights: say how to install them now, not mid-run
    elif path is not None and path.exists():  # the user's file: not GGUF or cut short fails now,
        check_gguf(path)  # in one line, not as every call failing mid-run (reads metadata only)
    return LlamaCppLLM(model, model_path=path, **options)
