"""The OpenAI wire format: request bodies → :class:`Request`, completions → response bodies.

Pure functions, no web framework: what the server accepts and answers is tested here without a
socket. Why parse by hand rather than declare pydantic models: a validation failure must be a 400 in
OpenAI's error shape that names the field (not FastAPI's 422), and every field is either honoured
(model: the served name, any other is a 404 ``model_not_found``; messages/prompt, n, temperature,
top_p, max_tokens / max_completion_tokens, stop, seed, stream, stream_options.include_usage),
refused with a 400 that names it because its meaning would be silently lost (:data:`UNSUPPORTED`:
tools, response_format, logprobs...), or ignored (fields such as ``user``, penalties and
``logit_bias`` that SDKs send and a backend here cannot honour; vLLM's and llama.cpp's servers
ignore unknown fields too).

Answers (response bodies and stream events) are built in :mod:`promptopt.serve.answers`; this
module re-exports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from promptopt.llm.base import Message, Request
from promptopt.serve.answers import (
    chat_response,
    chat_stream,
    completion_response,
    completion_stream,
    new_id,
    sse,
    usage_json,
)
from promptopt.serve.errors import ApiError

__all__ = [
    "BadRequest",
    "ModelNotFound",
    "Parsed",
    "chat_response",
    "chat_stream",
    "completion_response",
    "completion_stream",
    "new_id",
    "parse_chat",
    "parse_completion",
    "sse",
    "usage_json",
]

#: Sampling defaults where a client leaves a field out: the OpenAI API's own.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
MAX_N = 16
#: The default request-body limit: a generous chat (a million-token context is about 4 MB of text)
#: with room for JSON escaping, and a bound on what one request can make the server hold.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_STOP = 4
#: Roles accepted in chat messages; ``developer`` is OpenAI's newer name for ``system``.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
#: Fields whose meaning would be silently lost: refused, naming the field.
UNSUPPORTED = frozenset(
    {"tools", "tool_choice", "functions", "function_call", "response_format", "audio", "modalities",
     "prediction", "suffix", "echo", "best_of", "logprobs", "top_logprobs"}
)  # fmt: skip


class BadRequest(ApiError, ValueError):
    """A request the server refuses (HTTP 400): ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(400, message, param=param)


class ModelNotFound(BadRequest):
    """A request for a model this server does not serve: 404 ``model_not_found``, as OpenAI and
    vLLM answer (answering it with another model would hide the client's mistake)."""

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist", "model")
        self.status, self.code = 404, "model_not_found"


@dataclass(frozen=True)
class Parsed:
    """A client request as promptopt sees it: one Request per prompt (completions may batch)."""

    requests: tuple[Request, ...]
    model: str
    stream: bool
    include_usage: bool


# --------------------------------------------------------------------------- parsing


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{key} must be a number", key)
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low:g} and {high:g}, got {value}", key)
    return float(value)


def _integer(body: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be an integer", key)
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low} and {high}, got {value}", key)
    return value


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise BadRequest("stop must be a non-empty string or a list of them", "stop")
    if len(stop) > MAX_STOP:
        raise BadRequest(f"stop takes at most {MAX_STOP} sequences", "stop")
    return tuple(stop)


def _content(value: Any, where: str) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        texts = []
        for part in value:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise BadRequest("only text content parts are supported", where)
            texts.append(part["text"])
        return "".join(texts)
    raise BadRequest("content must be a string or a list of text parts", where)


def _messages(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty list", "messages")
    out = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest("each message must be an object with role and content", where)
        role = m.get("role")
        if role not in ROLES:
            raise BadRequest(f"unsupported role {role!r}; use system, user or assistant", f"{where}.role")
        out.append(Message(ROLES[role], _content(m.get("content"), f"{where}.content")))
    return tuple(out)


def _common(body: Any, default_max_tokens: int, max_tokens_limit: int) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    for key in sorted(UNSUPPORTED & body.keys()):
        if body[key] not in (None, False, [], 0):
            raise BadRequest(f"{key} is not supported by promptopt serve", key)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _integer({key: limit}, key, default_max_tokens, 1, max_tokens_limit)
    return {
        "n": _integer(body, "n", 1, 1, MAX_N),
        "temperature": _number(body, "temperature", DEFAULT_TEMPERATURE, 0.0, 2.0),
        "top_p": _number(body, "top_p", DEFAULT_TOP_P, 0.0, 1.0),
        "max_tokens": max_tokens,
        "stop": _stop(body),
        "seed": _integer(body, "seed", None, -(2**63), 2**63 - 1),
    }


def _stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise BadRequest("stream must be true or false", "stream")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise BadRequest("stream_options must be an object", "stream_options")
    return bool(stream), bool(opts.get("include_usage"))


def _model(body: dict[str, Any], served: str) -> str:
    """The served name: a request names it (``/v1/models`` lists it) or leaves ``model`` out (as
    vLLM allows: the one served model answers); any other name is refused."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("model must be a string", "model")
    if model is not None and model != served:
        raise ModelNotFound(model)
    return served


def parse_chat(body: Any, *, served: str, default_max_tokens: int, max_tokens_limit: int) -> Parsed:
    """A ``POST /v1/chat/completions`` body → one chat Request."""
    params = _common(body, default_max_tokens, max_tokens_limit)
    stream, usage = _stream_flags(body)
    request = Request(messages=_messages(body.get("messages")), **params)
    return Parsed((request,), _model(body, served), stream, usage)


def parse_completion(body: Any, *, served: str, default_max_tokens: int, max_tokens_limit: int) -> Parsed:
    """A ``POST /v1/completions`` body → one plain-prompt Request per prompt (a list is a batch)."""
    params = _common(body, default_max_tokens, max_tokens_limit)
    stream, usage = _stream_flags(body)
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise BadRequest(
            "prompt must be a string or a non-empty list of strings (token ids are not supported)", "prompt"
        )
    if len(prompts) * params["n"] > 64:
        raise BadRequest("at most 64 prompts x n per request", "prompt")
    return Parsed(tuple(Request(prompt=p, **params) for p in prompts), _model(body, served), stream, usage)
