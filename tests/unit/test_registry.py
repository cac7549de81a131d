"""Spec strings resolve through the registry; unknown ones fail clearly."""

from __future__ import annotations

import pytest

from promptopt.errors import UnknownNameError
from promptopt.llm.fake import FakeLLM
from promptopt.llm.registry import ModelSpec, create_backend, known_schemes
from promptopt.tasks.base import get_task_entry, task_names


def test_parse_keeps_everything_after_first_colon() -> None:
    s = ModelSpec.parse("openai:gpt-4o-mini@http://127.0.0.1:8000/v1")
    assert s.scheme == "openai" and s.rest == "gpt-4o-mini@http://127.0.0.1:8000/v1"
    assert ModelSpec.parse("local") == ModelSpec("local", "")


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_backend("gpt4:turbo")
    msg = str(info.value)
    assert "gpt4" in msg and "openai" in msg and "\n" not in msg


def test_no_substring_guessing() -> None:
    # 'openai-ish' contains 'openai' but is not the openai scheme
    with pytest.raises(UnknownNameError):
        create_backend("openaiish:model")


def test_empty_spec() -> None:
    with pytest.raises(UnknownNameError):
        create_backend("  ")


def test_fake_scheme_builds() -> None:
    llm = create_backend("fake:hello")
    assert isinstance(llm, FakeLLM) and llm.complete("hi") == "hello"


def test_known_schemes_lists_builtins() -> None:
    assert {"local", "openai", "vllm", "hf", "fake"} <= set(known_schemes())


def test_unknown_task() -> None:
    with pytest.raises(UnknownNameError, match="known tasks"):
        get_task_entry("no-such-task")
    assert {"linear-regression", "tsp", "instructions"} <= set(task_names())
