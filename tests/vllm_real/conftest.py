"""Opt-in tests of promptopt's vLLM paths against a real vLLM (marker ``vllm``; not in CI).

How to run them (see tests/vllm_real/README.md):

    scripts/make_vllm_venv.sh /work/venvs/vllm              # once: vLLM + promptopt in their own venv
    promptopt models convert qwen2.5-coder-0.5b /work/models/qwen05-bf16   # once: a folder vLLM serves
    PROMPTOPT_VLLM_MODEL=/work/models/qwen05-bf16 \\
        /work/venvs/vllm/bin/python -m pytest tests/vllm_real -m vllm -p no:cacheprovider

Why they run under the vLLM venv's own python: a vLLM wheel pins its own torch and transformers,
so it cannot live in the main environment; promptopt is installed there with ``--no-deps``.
Anywhere else (the default ``python -m pytest`` in CI) every test here is skipped at collection
with the reason, without importing vLLM. ``PROMPTOPT_VLLM_PYTHON`` names that interpreter for the
server fixture (default: the running one).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

HOW = (
    "run `PROMPTOPT_VLLM_MODEL=<converted folder> <vllm venv>/bin/python -m pytest tests/vllm_real -m vllm` "
    "(scripts/make_vllm_venv.sh builds the venv; tests/vllm_real/README.md)"
)


def skip_reason() -> str | None:
    """Why the vLLM tests cannot run in this interpreter, or None when they can."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:  # origin None: a namespace package, not vLLM
        return f"vLLM is not importable in this interpreter; {HOW}"
    model = os.environ.get("PROMPTOPT_VLLM_MODEL")
    if not model:
        return f"PROMPTOPT_VLLM_MODEL is not set (a save_pretrained folder, e.g. `promptopt models convert`); {HOW}"
    if not (Path(model) / "config.json").is_file():
        return f"PROMPTOPT_VLLM_MODEL={model} is not a save_pretrained folder (no config.json)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(str(item.fspath)).parents]
    if not mine:
        return
    reason = skip_reason()
    for item in mine:
        item.add_marker(pytest.mark.vllm)
        # an engine or server start takes 2-5 minutes on two shared CPU cores, in fixture setup,
        # which pytest-timeout counts against the first test (the suite's default is 300 s)
        item.add_marker(pytest.mark.timeout(1800))
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def model_dir() -> str:
    return os.environ["PROMPTOPT_VLLM_MODEL"]


@pytest.fixture(scope="session", autouse=True)
def _vllm_cpu_env() -> None:
    """Offline, and a KV cache that fits a shared CPU machine (ignored by GPU builds)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (OPRO's GSM8K files); ``PROMPTOPT_SHARED_DATA`` overrides it."""
    path = Path(os.environ.get("PROMPTOPT_SHARED_DATA", "/work/shared/data"))
    if not (path / "opro" / "gsm_data").is_dir():
        pytest.skip(f"no OPRO GSM8K data under {path} (set PROMPTOPT_SHARED_DATA)")
    return path
