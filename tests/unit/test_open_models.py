"""open_models: a spec named twice is built once and closed once; every model is closed, also on errors."""

from __future__ import annotations

import pytest

from promptopt.llm import factory
from promptopt.llm.fake import FakeLLM


class _Closing(FakeLLM):
    def __init__(self, name: str, closed: list[str]) -> None:
        super().__init__(["x"])
        self.name, self._closed = name, closed

    async def aclose(self) -> None:
        self._closed.append(self.name)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    opened: list[str] = []
    closed: list[str] = []

    def fake_build(spec: str, **options: object) -> _Closing:
        opened.append(spec)
        return _Closing(spec, closed)

    monkeypatch.setattr(factory, "build_llm", fake_build)
    return opened, closed


def test_same_spec_is_one_model_closed_once(built: tuple[list[str], list[str]]) -> None:
    opened, closed = built
    with factory.open_models("fake:a", "fake:a", None) as (a, b, c):
        assert a is b and c is None
    assert opened == ["fake:a"] and closed == ["fake:a"]


def test_distinct_specs_are_all_closed_even_on_error(built: tuple[list[str], list[str]]) -> None:
    opened, closed = built
    with pytest.raises(RuntimeError), factory.open_models("fake:a", "fake:b") as (a, b):
        assert a is not b
        raise RuntimeError("boom")
    assert opened == ["fake:a", "fake:b"] and sorted(closed) == ["fake:a", "fake:b"]
