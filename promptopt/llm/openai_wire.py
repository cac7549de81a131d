"""A :class:`Request` → the OpenAI client's call arguments, and the client's answer → a :class:`Completion`.

Why pure functions apart from the backend: what goes on the wire (and what comes back) is the
part that differs between the OpenAI API, vLLM and llama.cpp, and it can be read and tested
without a connection, a retry or a concurrency slot. The constraint's own wire format per server
kind lives in :mod:`promptopt.llm.structured`; this module only places it in the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from promptopt.llm import structured
from promptopt.llm.base import Choice, Completion, LLMResponseError, Request, TokenLogprob, Usage


def request_params(
    request: Request,
    *,
    model: str,
    n: int,
    seed: int | None,
    token_limit_param: str,
    extra_body: dict[str, Any] | None,
    structured_output: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the arguments of either endpoint, the chat endpoint's own top-level arguments that ask for
    the request's constraint); ``extra_body`` entries for the constraint are already merged in."""
    params: dict[str, Any] = {
        "model": model,
        "n": n,
        "temperature": request.temperature,
        "top_p": request.top_p,
        token_limit_param: request.max_tokens,
    }
    if request.stop:
        params["stop"] = list(request.stop)
    if seed is not None:
        params["seed"] = seed
    if request.top_logprobs:
        params["logprobs"] = True
        params["top_logprobs"] = request.top_logprobs
    shaped, extra = structured.request_params(structured_output, request.constraint)
    if extra_body or extra:
        params["extra_body"] = {**(extra_body or {}), **extra}
    return params, shaped


def completions_params(params: dict[str, Any], token_limit_param: str) -> dict[str, Any]:
    """``params`` for the plain-prompt ``/completions`` endpoint, which takes ``max_tokens`` only
    (and logprobs in another shape: they are not asked for there, the caller goes without)."""
    params.pop("logprobs", None)
    params.pop("top_logprobs", None)
    if token_limit_param != "max_tokens":
        params["max_tokens"] = params.pop(token_limit_param)
    return params


def parse_response(response: Any, *, chat: bool, name: str) -> Completion:
    """Turn the client's object into a Completion, refusing anything that is not a real answer."""
    raw_choices = getattr(response, "choices", None)
    if not isinstance(raw_choices, list) or not raw_choices:
        raise LLMResponseError(f"{name}: the server answered with no choices")
    choices: list[Choice] = []
    for c in sorted(raw_choices, key=lambda c: getattr(c, "index", 0) or 0):
        if chat:
            message = getattr(c, "message", None)
            if message is None:
                raise LLMResponseError(f"{name}: a choice in the answer has no message")
            text = getattr(message, "content", None)
        else:
            text = getattr(c, "text", None)
        if text is not None and not isinstance(text, str):
            raise LLMResponseError(f"{name}: a choice's text is not a string")
        finish = str(getattr(c, "finish_reason", None) or "stop")
        choices.append(Choice(text or "", finish, chat_logprobs(c) if chat else None))
    u = getattr(response, "usage", None)
    usage = Usage(
        prompt_tokens=int(getattr(u, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(u, "completion_tokens", 0) or 0),
        calls=1,
    )
    return Completion(tuple(choices), usage, model=name)


def chat_logprobs(choice: Any) -> tuple[TokenLogprob, ...] | None:
    """A chat choice's ``logprobs.content`` (OpenAI shape: token, logprob, top_logprobs), or None
    when absent or malformed: log-probabilities are an optional extra, never a reason to refuse
    an answer that has its text."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not isinstance(content, list) or not content:
        return None
    out: list[TokenLogprob] = []
    try:
        for t in content:
            top = tuple(
                (str(getattr(a, "token", "")), float(getattr(a, "logprob", 0.0)))
                for a in (getattr(t, "top_logprobs", None) or ())
            )
            out.append(TokenLogprob(str(getattr(t, "token", "")), float(getattr(t, "logprob", 0.0)), top))
    except (TypeError, ValueError):
        return None
    return tuple(out)


def unwrapped(completion: Completion, request: Request, structured_output: str) -> Completion:
    """Each choice as the request's constraint describes it (see ``structured.unwrap``)."""
    if request.constraint is None or structured_output != "openai":
        return completion
    choices = tuple(
        Choice(structured.unwrap(structured_output, request.constraint, c.text), c.finish_reason)
        for c in completion.choices
    )
    return Completion(choices, completion.usage, model=completion.model)


def sample_seed(seed: int | None, index: int) -> int | None:
    """Sample ``index``'s seed when samples are drawn one call each (``None`` stays ``None``)."""
    return None if seed is None else seed + index


def merge(parts: Sequence[Completion], n: int, model: str) -> Completion:
    """Join the completions of the calls that served one request: first ``n`` choices, summed usage."""
    choices = tuple(c for p in parts for c in p.choices)[:n]
    usage = Usage()
    for p in parts:
        usage = usage + p.usage
    return Completion(choices, usage, model=model)
