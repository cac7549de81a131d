"""Model spec strings → backends, through an explicit registry (no substring guessing).

A spec is ``SCHEME`` or ``SCHEME:REST``: ``local``, ``local:qwen2.5-coder-1.5b``, ``openai:gpt-4o-mini``,
``openai:MODEL@http://127.0.0.1:8000/v1``, ``litellm:anthropic/claude-3-5-haiku-latest``,
``vllm:Qwen/Qwen2.5-7B-Instruct``, ``hf:./my-model``, ``fake:``. The built-in schemes are a constant table of import paths so that optional backends
(vLLM, transformers) are imported only when used; third parties add schemes through the
``promptopt.backends`` entry-point group. Nothing here is mutable at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from promptopt.errors import UnknownNameError
from promptopt.extras import require_installed
from promptopt.llm.base import LLM

ENTRY_POINT_GROUP = "promptopt.backends"

#: scheme → "module:factory". A factory is called as ``factory(rest, **options) -> LLM``.
BUILTIN_BACKENDS: Mapping[str, str] = {
    "local": "promptopt.llm.local:from_spec",
    "openai": "promptopt.llm.openai_compat:from_spec",
    "litellm": "promptopt.llm.litellm_backend:from_spec",
    "vllm": "promptopt.llm.vllm_engine:from_spec",
    "hf": "promptopt.llm.hf:from_spec",
    "fake": "promptopt.llm.fake:from_spec",
}

#: What each scheme is for, shown by ``promptopt models`` and in error messages.
BACKEND_HELP: Mapping[str, str] = {
    "local": "embedded default model, in-process on CPU (local or local:<name>)",
    "openai": (
        "OpenAI API or any OpenAI-compatible server (openai:<model> or openai:<model>@<base_url>; "
        "several servers of one model: openai:<model>@<url1>,<url2>, requests go to the least busy "
        "and move off a dead one; PROMPTOPT_MAX_CONCURRENCY=<n>|auto, total over all servers)"
    ),
    "litellm": (
        "any provider LiteLLM reaches: Anthropic, Azure, Bedrock, Vertex, Gemini, ... "
        "(litellm:<provider/model> or litellm:<provider/model>@<api_base>; the provider's own key "
        "variable, e.g. ANTHROPIC_API_KEY, or --optimizer/scorer-api-key-env; needs the litellm extra)"
    ),
    "vllm": "in-process vLLM engine, batched (vllm:<hf id or path>; needs the vllm extra and a GPU)",
    "hf": "transformers generation, CPU or GPU (hf:<hf id or path>; needs the train extra)",
    "fake": "scripted fake for tests (fake: or fake:<reply>)",
}


#: scheme → (extra, modules its backend needs). ``create_backend`` checks them without importing,
#: so a spec whose extra is missing fails when it is opened, in one line naming the extra, instead
#: of every call failing inside a run. (``vllm`` raises its own install hint in its factory.)
BACKEND_EXTRAS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "local": ("local", ("llama_cpp",)),
    "hf": ("train", ("torch", "transformers")),
    "litellm": ("litellm", ("litellm",)),
}

#: The built-in schemes that talk HTTP and so take an API key and extra headers (``api_key`` and
#: ``headers`` options, see :mod:`promptopt.llm.credentials`); the others run in this process.
CREDENTIAL_SCHEMES: frozenset[str] = frozenset({"openai", "litellm"})


def takes_credentials(spec: str) -> bool:
    """Whether the model ``spec`` takes an API key and headers (a plug-in scheme: no, it reads its
    own configuration)."""
    return ModelSpec.parse(spec).scheme in CREDENTIAL_SCHEMES


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec string. ``rest`` is everything after the first colon ('' if none)."""

    scheme: str
    rest: str

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        if not isinstance(spec, str) or not spec.strip():
            raise UnknownNameError("empty model spec; try 'local' or 'openai:<model>'")
        spec = spec.strip()
        scheme, _, rest = spec.partition(":")
        return cls(scheme=scheme.lower(), rest=rest)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}" if self.rest else self.scheme


def _plugin_backends() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_schemes() -> list[str]:
    """Every scheme a spec may start with: built-ins first, then plug-ins."""
    return list(BUILTIN_BACKENDS) + sorted(set(_plugin_backends()) - set(BUILTIN_BACKENDS))


def backend_factory(scheme: str) -> Callable[..., LLM]:
    """The factory for ``scheme``, imported on demand."""
    target = BUILTIN_BACKENDS.get(scheme)
    if target is not None:
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    plugin = _plugin_backends().get(scheme)
    if plugin is not None:
        return plugin.load()
    raise UnknownNameError(
        f"unknown model spec scheme {scheme!r}; known: {', '.join(known_schemes())} "
        "(e.g. 'local', 'openai:gpt-4o-mini', 'openai:MODEL@http://127.0.0.1:8000/v1')"
    )


def create_backend(spec: str, **options: Any) -> LLM:
    """Build the bare backend for a spec string (no cache, no budget)."""
    parsed = ModelSpec.parse(spec)
    factory = backend_factory(parsed.scheme)
    extra, modules = BACKEND_EXTRAS.get(parsed.scheme, ("", ()))
    for module in modules:
        require_installed(module, extra, what=f"model spec '{parsed}'")
    return factory(parsed.rest, **options)
