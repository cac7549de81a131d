"""OpenAI response bodies and stream events for finished completions.

Streaming: promptopt's LLM layer returns finished completions, so a ``stream: true`` answer is the
finished completion sent as server-sent events in OpenAI's chunk format (a role chunk, one content
chunk per choice, a finish chunk, an optional usage chunk, ``data: [DONE]``). Clients see a valid
stream; the first token simply arrives with the last.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from promptopt.llm.base import Completion


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage_json(completions: Sequence[Completion]) -> dict[str, int]:
    prompt = sum(c.usage.prompt_tokens for c in completions)
    done = sum(c.usage.completion_tokens for c in completions)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def _finish(reason: str) -> str:
    return reason if reason in ("stop", "length", "content_filter") else "stop"


def chat_response(completion: Completion, model: str, *, rid: str | None = None) -> dict[str, Any]:
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": c.text},
            "finish_reason": _finish(c.finish_reason),
            "logprobs": None,
        }
        for i, c in enumerate(completion.choices)
    ]
    return {
        "id": rid or new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage_json([completion]),
    }


def completion_response(
    completions: Sequence[Completion], model: str, *, rid: str | None = None
) -> dict[str, Any]:
    """Choices of every prompt in order: prompt ``p``'s sample ``j`` has index ``p * n + j``."""
    choices = []
    for comp in completions:
        for c in comp.choices:
            choices.append(
                {
                    "index": len(choices),
                    "text": c.text,
                    "finish_reason": _finish(c.finish_reason),
                    "logprobs": None,
                }
            )
    return {
        "id": rid or new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage_json(completions),
    }


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def chat_stream(completion: Completion, model: str, *, include_usage: bool) -> Iterator[bytes]:
    """The finished chat completion as OpenAI ``chat.completion.chunk`` events, then ``[DONE]``."""
    head = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    extra = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        return sse({**head, "choices": [choice], **extra})

    for i, c in enumerate(completion.choices):
        yield chunk(i, {"role": "assistant", "content": ""}, None)
        if c.text:
            yield chunk(i, {"content": c.text}, None)
        yield chunk(i, {}, _finish(c.finish_reason))
    if include_usage:
        yield sse({**head, "choices": [], "usage": usage_json([completion])})
    yield sse("[DONE]")


def completion_stream(
    completions: Sequence[Completion], model: str, *, include_usage: bool
) -> Iterator[bytes]:
    """The finished completions as OpenAI ``text_completion`` stream events, then ``[DONE]``."""
    head = {"id": new_id("cmpl"), "object": "text_completion", "created": int(time.time()), "model": model}
    extra = {"usage": None} if include_usage else {}
    index = 0
    for comp in completions:
        for c in comp.choices:
            if c.text:
                yield sse(
                    {
                        **head,
                        "choices": [
                            {"index": index, "text": c.text, "finish_reason": None, "logprobs": None}
                        ],
                        **extra,
                    }
                )
            yield sse(
                {
                    **head,
                    "choices": [
                        {
                            "index": index,
                            "text": "",
                            "finish_reason": _finish(c.finish_reason),
                            "logprobs": None,
                        }
                    ],
                    **extra,
                }
            )
            index += 1
    if include_usage:
        yield sse({**head, "choices": [], "usage": usage_json(completions)})
    yield sse("[DONE]")
