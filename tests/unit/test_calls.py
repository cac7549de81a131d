"""The call scaffolding ``openai:`` and ``litellm:`` share (promptopt/llm/calls.py), without a server:
retries with one notice each, the last failure translated without its cause chain, an ``LLMError``
passed through, and ``n`` emulation with ``seed + i`` that leaves no call running on a failure."""

from __future__ import annotations

import asyncio
import logging

import pytest

from promptopt.errors import ConfigError
from promptopt.llm.base import RETRY_LOG_ATTR, Choice, Completion, LLMError, LLMServerError, Request, Usage
from promptopt.llm.calls import (
    attempts_text,
    body_message,
    check_timeout_and_retries,
    make_backoff,
    retried,
    sample_rest,
)

SECRET = "sk-calls-SECRET"
log = logging.getLogger("promptopt.test_calls")


class Flaky(Exception):
    """A failure whose text carries a secret, as a client's may."""


def _answer(text: str = "ok") -> Completion:
    return Completion((Choice(text),), Usage(1, 1, 1), model="m")


async def _retried(attempt, *, max_retries: int = 2, transient: bool = True) -> Completion:
    return await retried(
        attempt,
        name="m",
        max_retries=max_retries,
        wait=lambda state: 0.0,
        transient=lambda exc: transient and isinstance(exc, Flaky),
        reason=lambda exc: type(exc).__name__,
        log=log,
        failures=(Flaky,),
        translate=lambda exc, attempts, elapsed: LLMServerError(f"m: failed after {attempts} attempts"),
    )


async def test_transient_failures_are_retried_with_one_notice_each(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    async def attempt() -> Completion:
        calls.append(1)
        if len(calls) < 3:
            raise Flaky(SECRET)
        return _answer()

    with caplog.at_level(logging.INFO, logger="promptopt"):
        out = await _retried(attempt)
    assert out.text == "ok" and len(calls) == 3
    notices = [getattr(r, RETRY_LOG_ATTR) for r in caplog.records if hasattr(r, RETRY_LOG_ATTR)]
    assert [(n.attempt, n.max_attempts, n.reason) for n in notices] == [(1, 3, "Flaky"), (2, 3, "Flaky")]
    assert SECRET not in caplog.text


@pytest.mark.parametrize(("transient", "attempts"), [(True, 3), (False, 1)])
async def test_the_last_failure_is_translated_without_its_cause(transient: bool, attempts: int) -> None:
    async def attempt() -> Completion:
        raise Flaky(SECRET)

    with pytest.raises(LLMServerError, match=f"after {attempts} attempts") as info:
        await _retried(attempt, transient=transient)
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_an_llm_error_leaves_as_it_is() -> None:
    async def attempt() -> Completion:
        raise LLMError("already typed")

    with pytest.raises(LLMError, match="already typed"):
        await _retried(attempt)


async def test_missing_choices_are_sampled_one_call_each_with_seed_plus_i() -> None:
    seeds: list[int | None] = []

    async def call(request: Request, *, n: int, seed: int | None) -> Completion:
        assert n == 1
        seeds.append(seed)
        return _answer(f"s{seed}")

    request = Request.chat("q", n=3, seed=10)
    out = await sample_rest(call, request, [_answer("first")], "merged")
    assert sorted(seeds) == [11, 12]
    assert [c.text for c in out.choices] == ["first", "s11", "s12"]
    assert out.usage.calls == 3 and out.model == "merged"


async def test_a_failed_sample_is_raised_after_every_call_settles() -> None:
    finished: list[int | None] = []

    async def call(request: Request, *, n: int, seed: int | None) -> Completion:
        if seed == 1:
            raise LLMServerError("down")
        await asyncio.sleep(0.01)
        finished.append(seed)
        return _answer()

    with pytest.raises(LLMServerError, match="down"):
        await sample_rest(call, Request.chat("q", n=4, seed=0), [], "m")
    assert sorted(finished) == [0, 2, 3]  # none left running


def test_bad_retry_options_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="timeout"):
        check_timeout_and_retries(0, 1)
    with pytest.raises(ConfigError, match="max_retries"):
        check_timeout_and_retries(1, -1)
    with pytest.raises(ConfigError, match="backoff"):
        make_backoff(-1, 1, 1)


@pytest.mark.parametrize(
    ("attempts", "elapsed", "text"),
    [
        (1, 0.04, "after 1 attempt in 0.0s"),
        (3, 12.345, "after 3 attempts in 12.3s"),
        (0, 0.0, "after 0 attempts in 0.0s"),
    ],
)
def test_attempts_are_worded_alike_for_every_backend(attempts: int, elapsed: float, text: str) -> None:
    assert attempts_text(attempts, elapsed) == text


class BodyError(Exception):
    def __init__(self, body: object) -> None:
        super().__init__(SECRET)
        self.body = body


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"error": {"message": "model not found"}}, "model not found"),
        ({"error": "overloaded"}, "overloaded"),
        ({"message": "top level"}, "top level"),
        ({"error": {"message": 42}}, "42"),
        ({"error": {"message": ""}}, ""),
        ({"error": None}, ""),
        ({}, ""),
        ("a text body", ""),  # not JSON: each backend decides what to read instead
        (None, ""),
    ],
)
def test_the_servers_words_come_from_a_json_error_body_only(body: object, words: str) -> None:
    assert body_message(BodyError(body)) == words


def test_an_error_without_a_body_has_no_server_words() -> None:
    assert body_message(Flaky(SECRET)) == ""


def test_both_backends_cut_a_bearer_token_the_server_echoes() -> None:
    """A token that is not one of ours (a gateway's) is no known secret: both backends cut it."""
    import httpx
    import openai

    from promptopt.llm.openai_errors import translate
    from promptopt.llm.redact import Redactor, cut_bearer

    assert cut_bearer("denied for Authorization: Bearer sk-gw-123 at edge") == (
        "denied for Authorization: Bearer *** at edge"
    )
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx.Response(400, request=request)
    body = {"error": {"message": "bad header Authorization: Bearer gw-token-777"}}
    exc = openai.BadRequestError("bad", response=response, body=body)
    err = translate(exc, 1, 0.1, name="m", timeout=1.0, urls=[], redact=Redactor([]), broken_framing=())
    assert "gw-token-777" not in str(err) and "Bearer ***" in str(err)
