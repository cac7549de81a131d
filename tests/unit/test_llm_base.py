"""The LLM protocol's shared plumbing: request validation, batch error contract, unreachable rule."""

from __future__ import annotations

import asyncio

import pytest

from promptopt.llm.base import (
    Completion,
    LLMAuthError,
    LLMConnectionError,
    LLMServerError,
    Request,
    raise_if_unreachable,
)
from promptopt.llm.fake import FakeLLM


def test_request_needs_exactly_one_of_messages_or_prompt() -> None:
    with pytest.raises(ValueError):
        Request()
    with pytest.raises(ValueError):
        Request(prompt="a", messages=())
    with pytest.raises(ValueError):
        Request(prompt="a", n=0)


def test_batch_error_contract() -> None:
    fake = FakeLLM(["ok", LLMServerError("down")])
    res = fake.generate([Request.chat("a"), Request.chat("b")], return_exceptions=True)
    assert isinstance(res[0], Completion) and isinstance(res[1], LLMServerError)
    with pytest.raises(LLMServerError):
        FakeLLM([LLMServerError("down")]).generate([Request.chat("a")])


def test_sync_door_works_inside_a_running_loop() -> None:
    async def inner() -> str:
        return FakeLLM(default="hi").complete("x")  # sync call from async code (a notebook)

    assert asyncio.run(inner()) == "hi"


def test_unreachable_only_when_nothing_got_through() -> None:
    conn = LLMConnectionError("openai:m@http://127.0.0.1:1/v1: cannot reach")
    raise_if_unreachable([])
    raise_if_unreachable([conn, Completion(())])  # something got through: caller records failures
    raise_if_unreachable([conn, LLMServerError("500")])  # a server error means it was reached
    with pytest.raises(LLMConnectionError, match="unreachable.*127.0.0.1:1"):
        raise_if_unreachable([conn, conn])
    with pytest.raises(LLMAuthError):
        raise_if_unreachable([LLMAuthError("bad key"), conn])


def test_engine_error_rejects_a_request_on_valueerror_and_fails_generation_on_runtimeerror() -> None:
    from promptopt.llm.base import LLMBadRequestError, LLMError, engine_error

    bad = engine_error("hf:tiny", ValueError("prompt too long"))
    assert type(bad) is LLMBadRequestError and str(bad) == "hf:tiny: prompt too long"
    failed = engine_error("local", RuntimeError("llama_decode returned -1"), "llama.cpp")
    assert type(failed) is LLMError and str(failed) == "local: llama.cpp failed: llama_decode returned -1"
    assert str(engine_error("vllm:m", RuntimeError("OOM"))) == "vllm:m: generation failed: OOM"
