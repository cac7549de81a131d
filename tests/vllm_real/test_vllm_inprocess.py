"""promptopt's in-process ``vllm:`` backend against a real vLLM engine (opt-in; see conftest.py).

One engine for the module (start-up is ~2 minutes on two CPU cores). What is checked is what the
stand-in engine of tests/unit/test_vllm_engine.py cannot: that vLLM itself accepts the parameters
promptopt hands it (chat as token ids, per-request SamplingParams, min_tokens, stop_token_ids,
bad_words, structured outputs) and answers as promptopt expects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from promptopt.llm.base import Constraint, Request
from promptopt.llm.hf import GenerationRequest


@pytest.fixture(scope="module")
def engine(model_dir: str) -> Iterator[Any]:
    from promptopt.llm.registry import create_backend

    llm = create_backend(f"vllm:{model_dir}", max_model_len=2048, dtype="bfloat16")  # no request cache
    yield llm
    llm.close()


def _generate(llm: Any, requests: list[Request]) -> list[Any]:
    from promptopt.llm.base import run_sync

    return run_sync(llm.agenerate(requests))


def test_batched_chat_and_plain_prompts_in_one_call(engine: Any) -> None:
    reqs = [Request.chat(f"What is {a} + {a}? Answer with the number only.", max_tokens=8) for a in (2, 3, 4)]
    reqs.append(Request(prompt="The capital of France is", max_tokens=4))
    out = _generate(engine, reqs)
    assert len(out) == 4
    assert [c.text.strip().rstrip(".") for c in out[:3]] == ["4", "6", "8"]
    assert "Paris" in out[3].text
    assert all(c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0 for c in out)


def test_n_samples_and_seeds_reproduce(engine: Any) -> None:
    req = Request.chat("Name a colour.", n=3, temperature=1.0, max_tokens=6, seed=7)
    first, again, other = _generate(engine, [req, req, req.with_(seed=8)])
    assert len(first.choices) == 3
    assert first.texts == again.texts  # the same seed samples the same texts
    assert first.texts != other.texts


def test_stop_strings_cut_the_output(engine: Any) -> None:
    req = Request.chat("Count from 1 to 10, one number per line.", max_tokens=40, stop=("\n",))
    (c,) = _generate(engine, [req])
    assert "\n" not in c.text and c.text.strip()
    assert c.choices[0].finish_reason == "stop"


def test_generation_request_min_tokens_and_bad_words(engine: Any) -> None:
    """The rewriter's aggressive options: no early newline/EOS, banned words never generated."""
    tok = engine._tokenizer_obj()
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Say hi."}], add_generation_prompt=True, tokenize=False
    )
    req = GenerationRequest(
        prompt="Say hi.",
        prompt_ids=tuple(tok.encode(ids, add_special_tokens=False)),
        max_tokens=24,
        stop=("\n",),
        min_new_tokens=12,
        bad_words=("Hi", "Hello"),
        temperature=0.0,
    )
    (c,) = _generate(engine, [req])
    assert c.usage.completion_tokens >= 12
    assert "Hi" not in c.text and "Hello" not in c.text


def test_structured_output_json_schema(engine: Any) -> None:
    assert engine.structured_output == "vllm"
    schema = {
        "type": "object",
        "properties": {"w": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["w", "b"],
        "additionalProperties": False,
    }
    req = Request.chat("Give two integers w and b.", max_tokens=40, constraint=Constraint(json_schema=schema))
    (c,) = _generate(engine, [req])
    value = json.loads(c.text)
    assert set(value) == {"w", "b"} and all(isinstance(v, int) for v in value.values())


def test_structured_output_grammar(engine: Any) -> None:
    req = Request.chat("Pick yes or no.", max_tokens=5, constraint=Constraint(gbnf='root ::= "yes" | "no"'))
    (c,) = _generate(engine, [req])
    assert c.text in ("yes", "no")


def test_rewriter_on_the_engine(engine: Any, model_dir: str) -> None:
    """A Rewriter generating through the vLLM engine (the converted chat model as a stand-in
    rewriter): default and aggressive modes, several prompts in one batch."""
    from transformers import AutoTokenizer

    from promptopt.optimizers.bpo.rewriter import Rewriter
    from promptopt.optimizers.bpo.templates import RewriterConfig

    config = RewriterConfig(
        family="causal",
        template="Rewrite this prompt so it is clearer and more detailed:\n{}",
        use_chat_template=True,
    )
    rw = Rewriter(engine, AutoTokenizer.from_pretrained(model_dir), config, backend="vllm")
    prompts = ["tell me about cats", "write a poem", "how do I sort a list in python"]
    default = rw.rewrite(prompts, max_new_tokens=48)
    assert len(default) == 3 and all(r.strip() for r in default)
    aggressive = rw.rewrite(prompts, mode="aggressive", max_new_tokens=48, seed=1)
    assert all("\n" not in r for r in aggressive)
    assert sum(len(r) > len(p) for r, p in zip(aggressive, prompts, strict=True)) >= 2
