"""Optional dependency groups (pip extras) and the one-line error for a missing one.

Why a table: each heavy dependency belongs to exactly one extra that says what it enables, so a
user who calls a verb without it is told which extra to install instead of seeing an
``ImportError`` traceback. Call :func:`require` at the point of use (inside the function that needs
the module), never at import time.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType, ModuleType

from promptopt.errors import MissingExtraError

#: extra name -> what it enables (shown in the error and in ``promptopt models``).
EXTRAS = MappingProxyType(
    {
        "local": "the embedded llama.cpp models (model spec 'local', 'local:<name>')",
        "train": "BPO rewriter training and loading (torch, transformers, accelerate, peft)",
        "vllm": "the in-process vLLM backend (model spec 'vllm:...')",
        "plot": "PNG plots in reports (matplotlib)",
    }
)


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra`` into an editable checkout or from PyPI."""
    return f"pip install 'promptopt[{extra}]'"


def require(module: str, extra: str, *, what: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra`` in one line.

    ``what`` names the feature in the message (defaults to the extra's description).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the module exists but one of *its* imports is broken: a real bug, keep it
        feature = what or EXTRAS.get(extra, extra)
        raise MissingExtraError(
            f"{feature} needs the '{extra}' extra ({module} is not installed): {install_hint(extra)}"
        ) from None
