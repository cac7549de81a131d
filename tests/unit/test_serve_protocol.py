"""The OpenAI wire format of `promptopt serve`, without a socket: what is honoured, refused, shaped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from promptopt.llm.base import (
    Choice,
    Completion,
    LLMBadRequestError,
    LLMRateLimitError,
    LLMServerError,
    Message,
    Usage,
)
from promptopt.serve import protocol
from promptopt.serve.errors import upstream_error
from promptopt.serve.protocol import BadRequest, ModelNotFound, parse_chat, parse_completion

LIMITS: dict[str, Any] = {"served": "promptopt", "default_max_tokens": 100, "max_tokens_limit": 1000}


def test_chat_fields_pass_through_to_the_request() -> None:
    body = {
        "model": "promptopt",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
        ],
        "temperature": 0.3, "top_p": 0.9, "max_completion_tokens": 7, "n": 2, "stop": "END", "seed": 0,
        "user": "u1", "presence_penalty": 0.5, "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    parsed = parse_chat(body, **LIMITS)
    [req] = parsed.requests
    assert req.messages == (Message("system", "be brief"), Message("user", "hi there"))
    assert (req.temperature, req.top_p, req.max_tokens, req.n, req.stop, req.seed) == (
        0.3,
        0.9,
        7,
        2,
        ("END",),
        0,
    )
    assert parsed.stream and parsed.include_usage and parsed.model == "promptopt"
    defaults = parse_chat({"messages": [{"role": "user", "content": "q"}]}, **LIMITS).requests[0]
    assert (defaults.temperature, defaults.top_p, defaults.max_tokens, defaults.seed) == (1.0, 1.0, 100, None)


def test_completions_batch_prompts() -> None:
    parsed = parse_completion({"prompt": ["a", "b"], "max_tokens": 5, "stop": ["x", "y"]}, **LIMITS)
    assert [r.prompt for r in parsed.requests] == ["a", "b"]
    assert all(r.max_tokens == 5 and r.stop == ("x", "y") for r in parsed.requests)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "q"}], "temperature": 3}, "temperature"),
        ({"messages": [{"role": "user", "content": "q"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "q"}], "n": 0}, "n"),
        ({"messages": [{"role": "user", "content": "q"}], "n": True}, "n"),
        ({"messages": [{"role": "user", "content": "q"}], "max_tokens": 10**6}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "q"}], "stop": ["a"] * 5}, "stop"),
        ({"messages": [{"role": "user", "content": "q"}], "stop": [""]}, "stop"),
        ({"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function"}]}, "tools"),
        ({"messages": [{"role": "user", "content": "q"}], "logprobs": True}, "logprobs"),
        ({"messages": [{"role": "user", "content": "q"}], "stream": "yes"}, "stream"),
    ],
)
def test_bad_chat_bodies_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_chat(body, **LIMITS)
    assert info.value.param == param


def test_bad_completion_bodies() -> None:
    for body in (
        {"prompt": [1, 2, 3]},
        {"prompt": []},
        {},
        {"prompt": "q", "echo": True},
        {"prompt": ["q"] * 65},
    ):
        with pytest.raises(BadRequest):
            parse_completion(body, **LIMITS)
    with pytest.raises(BadRequest, match="JSON object"):
        parse_chat([1, 2], **LIMITS)


def _events(chunks: list[bytes]) -> list[Any]:
    text = b"".join(chunks).decode()
    assert text.endswith("data: [DONE]\n\n")
    return [json.loads(e[len("data: ") :]) for e in text.split("\n\n") if e and e != "data: [DONE]"]


def test_stream_chunks_rebuild_the_completion() -> None:
    comp = Completion((Choice("one"), Choice("two", "length")), Usage(3, 4, 1))
    events = _events(list(protocol.chat_stream(comp, "m", include_usage=True)))
    by_index: dict[int, str] = {}
    finish = {}
    for e in events[:-1]:
        [c] = e["choices"]
        by_index[c["index"]] = by_index.get(c["index"], "") + (c["delta"].get("content") or "")
        if c["finish_reason"]:
            finish[c["index"]] = c["finish_reason"]
    assert by_index == {0: "one", 1: "two"} and finish == {0: "stop", 1: "length"}
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 7
    plain = _events(list(protocol.completion_stream([comp], "m", include_usage=False)))
    assert "".join(e["choices"][0]["text"] for e in plain) == "onetwo" and "usage" not in plain[0]


def test_completion_indices_run_over_prompts_and_samples() -> None:
    comps = [Completion((Choice("a"), Choice("b"))), Completion((Choice("c"), Choice("d")))]
    body = protocol.completion_response(comps, "m")
    assert [(c["index"], c["text"]) for c in body["choices"]] == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]


def test_a_request_names_the_served_model_or_none() -> None:
    chat = {"messages": [{"role": "user", "content": "q"}]}
    assert parse_chat({**chat, "model": "promptopt"}, **LIMITS).model == "promptopt"
    assert parse_completion({"prompt": "q"}, **LIMITS).model == "promptopt"
    with pytest.raises(ModelNotFound) as info:
        parse_chat({**chat, "model": "gpt-4o"}, **LIMITS)
    error = info.value
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    assert error.body()["error"]["message"] == "The model `gpt-4o` does not exist"
    with pytest.raises(BadRequest, match="model must be a string"):
        parse_completion({"prompt": "q", "model": 3}, **LIMITS)


def test_upstream_failures_map_to_statuses_and_hide_addresses() -> None:
    limited = LLMRateLimitError("up: rate limited (HTTP 429)")
    limited.retry_after = 0.2
    error = upstream_error(limited, forward_auth=False)
    assert (error.status, error.headers["Retry-After"], error.headers["retry-after-ms"]) == (429, "1", "200")
    bad = LLMBadRequestError(
        "openai:m@http://10.0.0.7:9000/v1: request rejected (HTTP 400): no adapter at http://10.0.0.7:9000/v1"
    )
    error = upstream_error(bad, forward_auth=False)
    assert error.status == 400 and error.message.endswith("no adapter at <address>")
    failed = upstream_error(LLMServerError("openai:m@http://10.0.0.7:9000/v1: HTTP 503"), forward_auth=False)
    assert failed.status == 502 and "10.0.0.7" not in failed.message
