"""Optional dependency groups (pip extras) and the one-line error for a missing one.

Why a table: each heavy dependency belongs to exactly one extra that says what it enables, so a
user who calls a verb without it is told which extra to install instead of seeing an
``ImportError`` traceback. Call :func:`require` at the point of use (inside the function that needs
the module), never at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import MappingProxyType, ModuleType

from promptopt.errors import MissingExtraError

#: extra name -> what it enables (shown in the error and in ``promptopt models``).
EXTRAS = MappingProxyType(
    {
        "local": "the embedded llama.cpp models (model spec 'local', 'local:<name>')",
        "train": "BPO rewriter training and loading, the 'hf:' backend and 'models convert' (torch, transformers, accelerate, peft, gguf)",
        "vllm": "the in-process vLLM backend (model spec 'vllm:...')",
        "plot": "PNG plots in reports (matplotlib)",
        "server": "llama.cpp's OpenAI-compatible server (python -m llama_cpp.server)",
        "serve": "promptopt serve, the aligned model as an OpenAI-compatible endpoint (fastapi, uvicorn)",
        "demos": "the few-shot demonstration search (opro run --demos K: Optuna's TPE sampler)",
        "litellm": "the 'litellm:<provider/model>' model spec: any provider LiteLLM reaches",
        "track": "experiment tracking (--track mlflow[:TRACKING_URI]: MLflow's client and its SQLite store)",
    }
)

#: extra name -> the top-level modules that show it is installed (for ``promptopt models``).
EXTRA_MODULES = MappingProxyType(
    {
        "local": ("llama_cpp",),
        "train": ("torch", "transformers", "accelerate", "peft", "gguf"),
        "vllm": ("vllm",),
        "plot": ("matplotlib",),
        "server": ("llama_cpp", "uvicorn", "fastapi", "sse_starlette"),
        "serve": ("fastapi", "uvicorn"),
        "demos": ("optuna",),
        "litellm": ("litellm",),
        "track": ("mlflow", "sqlalchemy", "alembic"),
    }
)

#: What must stand before ``pip install`` for an extra: llama-cpp-python builds llama.cpp from
#: source, and without OpenMP its speed stays steady on a busy machine (see the README).
_PIP_PREFIX = MappingProxyType(
    {"local": 'CMAKE_ARGS="-DGGML_OPENMP=OFF" ', "server": 'CMAKE_ARGS="-DGGML_OPENMP=OFF" '}
)


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra`` into an editable checkout or from PyPI."""
    return f"{_PIP_PREFIX.get(extra, '')}pip install 'promptopt[{extra}]'"


def is_installed(module: str) -> bool:
    """Whether ``module`` can be found, without importing it (cheap: no native library loads)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a half-imported module
        return False


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that are not installed (empty: the extra is usable)."""
    return [m for m in EXTRA_MODULES.get(extra, ()) if not is_installed(m)]


def _error(module: str, extra: str, what: str | None) -> MissingExtraError:
    feature = what or EXTRAS.get(extra, extra)
    return MissingExtraError(
        f"{feature} needs the '{extra}' extra ({module} is not installed): {install_hint(extra)}"
    )


def require_installed(module: str, extra: str, *, what: str | None = None) -> None:
    """Like :func:`require` but without importing: for factories that must stay cheap (a backend
    is built for dry runs and cache-only reruns too) yet should fail before any work starts."""
    if not is_installed(module):
        raise _error(module, extra, what)


def require(module: str, extra: str, *, what: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra`` in one line.

    ``what`` names the feature in the message (defaults to the extra's description).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the module exists but one of *its* imports is broken: a real bug, keep it
        raise _error(module, extra, what) from None
