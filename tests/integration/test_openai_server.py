"""The openai: backend against a real llama.cpp server running SmolLM2-135M on 127.0.0.1.

llama.cpp ignores ``n`` (one choice comes back), so these tests also exercise the n emulation
against a real server. SmolLM2 is tiny: the tests check that real text comes back through every
path, not what the text says.
"""

from __future__ import annotations

import asyncio

import pytest

from promptopt.llm.base import Completion, LLMBadRequestError, Request
from promptopt.llm.factory import build_llm
from promptopt.llm.openai_compat import from_spec
from tests.servers.llama_server import LlamaServer

pytestmark = pytest.mark.integration


def _rest(server: LlamaServer) -> str:
    return server.spec.removeprefix("openai:")


def test_concurrent_batch_with_n_gives_real_text(llama_server: LlamaServer) -> None:
    llm = from_spec(_rest(llama_server), timeout=60, max_retries=1, max_concurrency=4)
    assert llm.name == f"openai:{llama_server.model}@{llama_server.base_url}"
    batch = [
        Request.chat("Write a short poem about rain.", n=3, temperature=0.9, seed=11, max_tokens=16),
        Request.chat("Say hello.", max_tokens=16),
        Request.chat("Name a fruit.", system="Answer with one word.", max_tokens=16),
        Request(prompt="Count to three:", max_tokens=16),
    ]
    out = llm.generate(batch)
    assert all(isinstance(c, Completion) for c in out)
    assert [len(c.choices) for c in out] == [3, 1, 1, 1]
    for completion in out:
        assert all(t.strip() for t in completion.texts), completion.texts
        assert completion.usage.completion_tokens > 0 and completion.usage.prompt_tokens > 0
    assert out[0].usage.calls == 3  # the server returned one choice; two more calls were made
    assert len(set(out[0].texts)) > 1  # seeds 11, 12, 13 at temperature 0.9 give different samples


def test_seeded_greedy_answer_is_repeatable_and_max_tokens_is_honoured(llama_server: LlamaServer) -> None:
    llm = from_spec(_rest(llama_server), timeout=60, max_retries=1)
    req = Request.chat("What is the capital of France?", max_tokens=8, seed=0)
    first, second = llm.generate([req]), llm.generate([req])
    assert first[0].text == second[0].text
    assert first[0].usage.completion_tokens <= 8


async def test_async_completions_mode_and_cache(llama_server: LlamaServer, tmp_path) -> None:
    llm = build_llm(
        llama_server.spec, cache=tmp_path / "c.sqlite", api="completions", timeout=60, max_retries=1
    )
    req = Request(prompt="The sky is", max_tokens=8)
    first = (await llm.agenerate([req]))[0]
    again = (await llm.agenerate([req]))[0]
    assert first.text.strip() and not first.cached
    assert again.cached and again.text == first.text
    await llm.aclose()


def test_prompt_beyond_context_is_a_typed_bad_request(llama_server: LlamaServer) -> None:
    """The server refuses a prompt longer than its context (HTTP 400): a typed error, not a crash."""
    llm = from_spec(_rest(llama_server), timeout=60, max_retries=0)
    huge = "word " * 5000  # beyond n_ctx=2048
    [err] = llm.generate([Request.chat(huge, max_tokens=4)], return_exceptions=True)
    assert isinstance(err, LLMBadRequestError), err
    assert "\n" not in str(err)


def test_many_concurrent_sync_and_async_callers_share_the_server(llama_server: LlamaServer) -> None:
    llm = from_spec(_rest(llama_server), timeout=60, max_retries=1, max_concurrency=8)

    async def go() -> list[object]:
        batches = [[Request.chat(f"Say the number {i}.", max_tokens=6)] for i in range(6)]
        results = await asyncio.gather(*(llm.agenerate(b) for b in batches))
        await llm.aclose()
        return [r[0] for r in results]

    out = asyncio.run(go())
    assert len(out) == 6 and all(isinstance(c, Completion) and c.text.strip() for c in out)
