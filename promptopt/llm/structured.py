"""A :class:`~promptopt.llm.base.Constraint` in each server's wire format (pure functions).

Why the mechanism is declared, never guessed: the same ``/v1/chat/completions`` URL may be the
OpenAI API, a llama.cpp server or vLLM, and each ignores the others' fields without an error
(vLLM >= 0.12 even answers HTTP 200 to the removed ``guided_json``). So an OpenAI-compatible
backend is told its mechanism (``structured_output`` option; default ``none``), the run records it,
and callers still validate every output.

- ``openai``: ``response_format`` ``json_schema`` in strict mode. Strict mode wants an object at
  the root, so a schema of another type (a ``[w, b]`` array) is wrapped as ``{"value": ...}`` and
  the answer unwrapped again; an answer that is not such an object is passed on untouched (the
  caller's parser then rejects it).
- ``llama-cpp`` (llama.cpp server, also ``python -m llama_cpp.server``): ``grammar`` (GBNF), else
  ``response_format`` ``json_object`` with ``schema``.
- ``vllm`` (``vllm serve`` >= 0.12): ``structured_outputs`` ``json``, else ``grammar``.
"""

from __future__ import annotations

import json
from typing import Any

from promptopt.errors import ConfigError
from promptopt.llm.base import STRUCTURED_OUTPUTS, Constraint

#: The mechanisms an OpenAI-compatible server may be declared to have (``gbnf`` is in-process only).
SERVER_MECHANISMS: tuple[str, ...] = ("none", "openai", "llama-cpp", "vllm")
#: The key a non-object schema is wrapped under for OpenAI's strict mode.
WRAP_KEY = "value"


def check_server_mechanism(value: Any) -> str:
    """A declared ``structured_output`` for an OpenAI-compatible server, or a one-line ConfigError."""
    if value not in SERVER_MECHANISMS:
        raise ConfigError(
            f"structured_output must be one of {', '.join(SERVER_MECHANISMS)} "
            f"(how the server decodes under a constraint), got {value!r}"
        )
    return str(value)


def _openai_schema(constraint: Constraint) -> tuple[dict[str, Any], bool]:
    """(the strict-mode schema, whether it wraps the constraint's schema under ``value``)."""
    schema = constraint.schema() or {}
    if schema.get("type") == "object":
        return schema, False
    wrapped = {
        "type": "object",
        "properties": {WRAP_KEY: schema},
        "required": [WRAP_KEY],
        "additionalProperties": False,
    }
    return wrapped, True


def request_params(mechanism: str, constraint: Constraint | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(top-level chat-completion arguments, ``extra_body`` entries) that ask a server with
    ``mechanism`` to decode under ``constraint``; both empty when it cannot."""
    if constraint is None or mechanism not in STRUCTURED_OUTPUTS:
        return {}, {}
    form = constraint.form_for(mechanism)
    if form is None:
        return {}, {}
    if mechanism == "openai":
        schema, _ = _openai_schema(constraint)
        fmt = {"type": "json_schema", "json_schema": {"name": "output", "strict": True, "schema": schema}}
        return {"response_format": fmt}, {}
    if mechanism == "llama-cpp":
        if form == "gbnf":
            return {}, {"grammar": constraint.gbnf}
        return {"response_format": {"type": "json_object", "schema": constraint.schema()}}, {}
    if mechanism == "vllm":
        if form == "json_schema":
            return {}, {"structured_outputs": {"json": constraint.schema()}}
        return {}, {"structured_outputs": {"grammar": constraint.gbnf}}
    return {}, {}


def unwrap(mechanism: str, constraint: Constraint | None, text: str) -> str:
    """The answer as the constraint describes it: undoes the ``{"value": ...}`` wrapping that
    OpenAI's strict mode needed; any other text is returned unchanged (the caller validates)."""
    if mechanism != "openai" or constraint is None or constraint.form_for(mechanism) is None:
        return text
    _, wrapped = _openai_schema(constraint)
    if not wrapped:
        return text
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    if not isinstance(obj, dict) or set(obj) != {WRAP_KEY}:
        return text
    return json.dumps(obj[WRAP_KEY], ensure_ascii=False, separators=(", ", ": "))
