"""AlignedLLM: a deployed LLM whose every call is rewritten (BPO) or instructed (OPRO).

The deployed model is the scripted FakeLLM; the rewriter is a recording stub with
``Rewriter.rewrite``'s signature (the real tiny rewriter is covered in test_bpo_rewriter.py and
the integration test).
"""

from __future__ import annotations

import pytest

from promptopt.aligned import AlignedLLM, instruct, user_text
from promptopt.errors import ConfigError
from promptopt.llm.base import LLM, Completion, LLMServerError, Message, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.bpo.rewriter import RewriteSettings


class StubRewriter:
    name = "/models/my-rewriter"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict]] = []

    def rewrite(self, prompts, settings):
        self.calls.append((list(prompts), settings))
        return [f"Please answer in detail: {p}" if p else p for p in prompts]


def echo_llm() -> FakeLLM:
    return FakeLLM(fn=lambda req, i: f"ANSWER TO <{request_text(req)}>")


def test_every_call_rewrites_the_last_user_message_in_one_batch() -> None:
    inner, rw = echo_llm(), StubRewriter()
    llm = AlignedLLM(inner, rewriter=rw, mode="aggressive", rounds=2, seed=5)
    assert isinstance(llm, LLM)
    chat = Request(
        messages=(
            Message("system", "be nice"),
            Message("user", "first question"),
            Message("assistant", "first answer"),
            Message("user", "what is BPO?"),
        ),
        temperature=0.3,
    )
    plain = Request(prompt="2+2?")
    out = llm.generate([chat, plain])
    assert len(rw.calls) == 1  # one batched rewrite for the whole request list
    prompts, settings = rw.calls[0]
    assert prompts == ["what is BPO?", "2+2?"]
    assert settings == RewriteSettings(mode="aggressive", n=1, rounds=2, seed=5)
    assert settings.judge is None
    sent = inner.calls
    assert sent[0].messages[:3] == chat.messages[:3]  # history and system untouched
    assert sent[0].messages[3] == Message("user", "Please answer in detail: what is BPO?")
    assert sent[0].temperature == 0.3
    assert sent[1].prompt == "Please answer in detail: 2+2?"
    assert out[1].text == "ANSWER TO <Please answer in detail: 2+2?>"


def test_returns_the_rewritten_prompt_alongside_the_answer() -> None:
    llm = AlignedLLM(echo_llm(), rewriter=StubRewriter())
    [res] = llm.generate_aligned([Request.chat("hello")])
    assert res.original == "hello"
    assert res.rewritten == "Please answer in detail: hello"
    assert res.text == "ANSWER TO <Please answer in detail: hello>"
    assert llm.complete("hi") == "ANSWER TO <Please answer in detail: hi>"


def test_failures_of_the_deployed_model_stay_in_place() -> None:
    inner = FakeLLM(rules=[("boom", LLMServerError("503"))], default="fine")
    llm = AlignedLLM(inner, rewriter=StubRewriter())
    res = llm.generate_aligned([Request.chat("boom"), Request.chat("ok")], return_exceptions=True)
    assert isinstance(res[0].completion, LLMServerError) and res[0].text == ""
    assert isinstance(res[1].completion, Completion) and res[1].text == "fine"
    with pytest.raises(LLMServerError):
        llm.generate([Request.chat("boom")])


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        ("Q_begin", "Think step by step.\n\nWhat is 3*4?"),
        ("Q_end", "What is 3*4?\n\nThink step by step."),
        ("A_begin", "Q: What is 3*4?\n\nA: Think step by step."),
    ],
)
def test_instruction_at_each_position(position: str, expected: str) -> None:
    inner = echo_llm()
    llm = AlignedLLM(inner, instruction="Think step by step.", position=position)
    llm.generate([Request.chat("What is 3*4?", system="sys")])
    assert inner.calls[0].messages == (Message("system", "sys"), Message("user", expected))
    llm.generate([Request(prompt="What is 3*4?")])
    assert inner.calls[1].prompt == expected  # a plain prompt stays plain


def test_system_position_and_plain_prompts() -> None:
    req = instruct(Request(prompt="q", max_tokens=7, seed=1), "Be brief.", "system")
    assert req.messages == (Message("system", "Be brief."), Message("user", "q"))
    assert req.max_tokens == 7 and req.seed == 1
    assert user_text(req) == "q"
    assert user_text(Request(messages=(Message("system", "s"),))) == ""


def test_names_separate_cache_entries_and_specs_work() -> None:
    a = AlignedLLM(FakeLLM(name="m"), instruction="one")
    b = AlignedLLM(FakeLLM(name="m"), instruction="two")
    c = AlignedLLM(FakeLLM(name="m"), rewriter=StubRewriter())
    assert len({a.name, b.name, c.name, "m"}) == 4
    assert "my-rewriter" in c.name
    assert AlignedLLM("fake:hello", instruction="x").complete("q") == "hello"


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="or both"):
        AlignedLLM(FakeLLM())
    with pytest.raises(ConfigError, match="string"):
        AlignedLLM(FakeLLM(), instruction=["x"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="position"):
        AlignedLLM(FakeLLM(), instruction="x", position="middle")
    with pytest.raises(ConfigError, match="judge"):
        AlignedLLM(FakeLLM(), rewriter=StubRewriter(), n=3)
    with pytest.raises(ConfigError, match="mode"):
        AlignedLLM(FakeLLM(), rewriter=StubRewriter(), mode="wild")
    with pytest.raises(ConfigError, match="unexpected keyword"):
        AlignedLLM(FakeLLM(), rewriter=StubRewriter(), modes="aggressive")
    with pytest.raises(ConfigError, match="rewriter="):
        AlignedLLM(FakeLLM(), instruction="x", mode="aggressive")


def test_settings_object_and_keywords_agree() -> None:
    rw = StubRewriter()
    base = RewriteSettings(mode="aggressive", seed=3)
    llm = AlignedLLM(FakeLLM(name="m"), rewriter=rw, settings=base, rounds=2)
    assert llm.settings == RewriteSettings(mode="aggressive", seed=3, rounds=2)
    assert llm.name.endswith("bpo:my-rewriter:aggressive:n1:r2:s3")


class AsyncStubRewriter(StubRewriter):
    """A rewriter with the async door: AlignedLLM awaits it instead of using a thread."""

    async def arewrite(self, prompts, settings):
        return ["async: " + p for p in self.rewrite(prompts, settings)]


def test_async_rewriter_door_is_used() -> None:
    llm = AlignedLLM(echo_llm(), rewriter=AsyncStubRewriter())
    [res] = llm.generate_aligned([Request.chat("hi")])
    assert res.rewritten == "async: Please answer in detail: hi"


def test_rewriter_and_instruction_together_rewrite_first_then_instruct() -> None:
    """BPO and OPRO compose: the rewrite is what the instruction goes around (the order an
    instruction searched with ``--rewriter`` was scored in), and the rewriter never sees it."""
    inner, rw = echo_llm(), StubRewriter()
    llm = AlignedLLM(inner, rewriter=rw, instruction="Think first.", position="Q_end")
    [res] = llm.generate_aligned([Request.chat("what is 2+2?", system="be brief")])
    assert rw.calls[0][0] == ["what is 2+2?"]
    assert inner.calls[0].messages == (
        Message("system", "be brief"),
        Message("user", "Please answer in detail: what is 2+2?\n\nThink first."),
    )
    assert res.original == "what is 2+2?"
    assert res.rewritten == "Please answer in detail: what is 2+2?\n\nThink first."
    sys_llm = AlignedLLM(echo_llm(), rewriter=StubRewriter(), instruction="Be exact.", position="system")
    [plain] = sys_llm.generate_aligned([Request(prompt="q")])
    assert plain.request.messages == (
        Message("system", "Be exact."),
        Message("user", "Please answer in detail: q"),
    )
    assert "+bpo:my-rewriter:" in llm.name and llm.name.endswith("@Q_end")
    only_rw = AlignedLLM(FakeLLM(name="m"), rewriter=StubRewriter())
    only_ins = AlignedLLM(FakeLLM(name="m"), instruction="Think first.", position="Q_end")
    assert len({llm.name, only_rw.name, only_ins.name}) == 3
