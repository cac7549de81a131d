"""Judge metrics (promptopt.evaluators.metrics.judge): the rubric judge as score / 5, the pairwise
judge against the answer without any instruction (hard rule and soft scores from the verdict
token's log-probabilities), failures, one batch per call, the factory; and the small log-probability
plumbing they need (Request.top_logprobs, FakeLLM scripted logprobs, the cache, the OpenAI wire)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from promptopt.errors import ConfigError
from promptopt.evaluators.metrics.base import Metric, MetricError, MetricItem, ascore_items
from promptopt.evaluators.metrics.judge import (
    FEEDBACK_CHARS,
    REFERENCE_NOTE,
    PairwiseMetric,
    RubricMetric,
    judge_question,
    make_judge_metric,
    verdict_probs,
)
from promptopt.evaluators.rubric import FOLLOW_UP_PROMPT, SCORE_CONSTRAINT
from promptopt.evaluators.verdicts import verdict_span
from promptopt.llm import openai_wire
from promptopt.llm.base import (
    BudgetExceededError,
    Choice,
    LLMConnectionError,
    LLMServerError,
    Request,
    TokenLogprob,
)
from promptopt.llm.cache import CachedLLM, RequestCache
from promptopt.llm.fake import FakeLLM, request_text


@dataclass(frozen=True)
class Ex:
    id: str
    input: str
    target: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def fields(self) -> dict[str, Any]:
        return {"input": self.input, "target": self.target}


def item(
    answer: str, *, q: str = "What is 6 x 7?", target: str | None = None, baseline: str | None = None
) -> MetricItem:
    return MetricItem(Ex(q[:10], q, target), answer, baseline)


# --------------------------------------------------------------------------- rubric


async def test_rubric_value_is_the_score_over_five_with_the_reasoning_as_feedback() -> None:
    llm = FakeLLM(default="The response answers directly and correctly.\n**Score: 4**")
    metric = RubricMetric(llm)
    assert isinstance(metric, Metric) and not metric.needs_gold and not metric.needs_baseline
    assert metric.name == "judge:rubric"
    (s,) = await ascore_items(metric, [item("42")])
    assert s.value == pytest.approx(0.8) and s.error is None and s.prediction == "4"
    assert s.feedback == "rubric 4/5: The response answers directly and correctly."
    (req,) = llm.calls
    assert req.temperature == 0.0 and req.top_logprobs == 0  # cacheable, no logprobs asked
    assert "User: What is 6 x 7?" in request_text(req) and "<response>42</response>" in request_text(req)


async def test_rubric_feedback_is_trimmed() -> None:
    llm = FakeLLM(default="word " * 300 + "Score: 5")
    (s,) = await RubricMetric(llm).ascore([item("42")])
    assert s.value == 1.0 and s.feedback is not None
    assert s.feedback.startswith("rubric 5/5: word word")
    assert len(s.feedback) <= len("rubric 5/5: ") + FEEDBACK_CHARS and s.feedback.endswith("…")


def follow_up_fake(first: str, second: str | Exception) -> FakeLLM:
    """The first turn says ``first``; the follow-up turn (ending with FOLLOW_UP_PROMPT) ``second``."""

    def fn(req: Request, i: int) -> Any:
        if req.messages and req.messages[-1].content == FOLLOW_UP_PROMPT:
            return second
        return first

    return FakeLLM(fn=fn, structured_output="gbnf")


async def test_rubric_missing_score_line_gets_the_constrained_follow_up() -> None:
    llm = follow_up_fake("Relevant and complete, but long-winded.", "Score: 3")
    (s,) = await RubricMetric(llm).ascore([item("42")])
    assert s.value == pytest.approx(0.6) and s.error is None
    assert s.feedback == "rubric 3/5: Relevant and complete, but long-winded."
    assert llm.batches == [1, 1]
    assert llm.calls[1].constraint == SCORE_CONSTRAINT


async def test_rubric_without_a_score_even_after_the_follow_up_is_a_zero_with_feedback() -> None:
    llm = follow_up_fake("I cannot decide.", "Somewhere between 3 and 4.")
    llm.honour_constraints = False  # a server that drops the constraint, and a judge that ignores it
    (s,) = await RubricMetric(llm).ascore([item("42")])
    assert s.value == 0.0 and s.error is None
    assert s.feedback is not None and s.feedback.startswith("rubric: judge gave no score")


async def test_rubric_failed_follow_up_is_an_error_not_a_zero() -> None:
    llm = follow_up_fake("Good answer.", LLMServerError("follow-up down"))
    (s,) = await RubricMetric(llm).ascore([item("42")])
    assert (
        s.error is not None and s.error.startswith("judge: LLMServerError:") and "follow-up down" in s.error
    )


async def test_rubric_shows_the_reference_answer_only_when_the_example_has_one() -> None:
    llm = FakeLLM(default="Fine. Score: 5")
    items = [item("a", target="42"), item("b", target=None), item("c", target="   ")]
    await RubricMetric(llm).ascore(items)
    texts = {
        re.search(r"<response>(.)</response>", request_text(r)).group(1): request_text(r) for r in llm.calls
    }  # type: ignore[union-attr]
    assert f"What is 6 x 7?\n\n{REFERENCE_NOTE}42\n<response>a" in texts["a"]
    assert REFERENCE_NOTE not in texts["b"] and REFERENCE_NOTE not in texts["c"]
    assert judge_question(Ex("x", "q", "")) == "q"


async def test_rubric_llm_error_is_a_failed_item_and_the_rest_are_scored() -> None:
    llm = FakeLLM(
        fn=lambda r, i: LLMServerError("boom") if "<response>bad" in request_text(r) else "Score: 2"
    )
    good, bad = await RubricMetric(llm).ascore([item("good"), item("bad")])
    assert good.value == pytest.approx(0.4) and good.error is None
    assert bad.value == 0.0 and bad.error is not None and bad.error.startswith("judge: LLMServerError: ")
    assert "boom" in bad.error


async def test_rubric_budget_and_unreachable_server_propagate() -> None:
    with pytest.raises(BudgetExceededError):
        await RubricMetric(FakeLLM(default=BudgetExceededError("spent"))).ascore([item("a")])  # type: ignore[arg-type]
    with pytest.raises(LLMConnectionError):
        await RubricMetric(FakeLLM(default=LLMConnectionError("refused"))).ascore([item("a"), item("b")])  # type: ignore[arg-type]


async def test_rubric_sends_all_judgements_in_one_batch() -> None:
    llm = FakeLLM(default="Score: 3")
    scores = await RubricMetric(llm).ascore([item(f"answer {k}") for k in range(6)])
    assert [s.value for s in scores] == [pytest.approx(0.6)] * 6
    assert llm.batches == [6]
    assert await RubricMetric(llm).ascore([]) == [] and llm.batches == [6]


# --------------------------------------------------------------------------- pairwise

_SLOT_RE = re.compile(r"\[The Start of Assistant (A|B)'s Answer\]\n(.*?)\n\[The End", re.S)


def slots(req: Request) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _SLOT_RE.finditer(request_text(req))}


def pair_fake(verdict: Any) -> FakeLLM:
    """A judge whose reply is ``verdict(slots)`` — slots maps "A"/"B" to the answers shown."""
    return FakeLLM(fn=lambda req, i: verdict(slots(req)))


def prefer(word: str) -> Any:
    return lambda s: "Explanation. [[A]]" if word in s["A"] else "Explanation. [[B]]"


async def test_pairwise_win_loss_and_position_tie_with_the_hard_rule() -> None:
    metric = PairwiseMetric(pair_fake(prefer("CAND")))
    assert isinstance(metric, Metric) and metric.needs_baseline and not metric.needs_gold
    assert metric.name == "judge:pairwise"
    (win,) = await metric.ascore([item("CAND answer", baseline="plain answer")])
    assert (win.value, win.prediction) == (1.0, "win")
    assert win.feedback == "pairwise vs no instruction: win (candidate preferred in both orders)"
    (loss,) = await PairwiseMetric(pair_fake(prefer("plain"))).ascore(
        [item("CAND answer", baseline="plain answer")]
    )
    assert (loss.value, loss.prediction) == (0.0, "loss")
    (tie,) = await PairwiseMetric(pair_fake(lambda s: "Both fine. [[A]]")).ascore(
        [item("CAND answer", baseline="plain answer")]
    )
    assert (tie.value, tie.prediction) == (0.5, "tie")
    assert tie.feedback == "pairwise vs no instruction: tie (orders disagree: A then A)"
    (called,) = await PairwiseMetric(pair_fake(lambda s: "Equal. [[C]]")).ascore([item("x", baseline="y")])
    assert called.value == 0.5 and called.feedback == "pairwise vs no instruction: tie (verdicts C then C)"
    (mute,) = await PairwiseMetric(pair_fake(lambda s: "I like both.")).ascore([item("x", baseline="y")])
    assert mute.value == 0.5 and mute.feedback is not None and "none then none" in mute.feedback


async def test_pairwise_shows_both_orders_with_the_baseline_first_as_a() -> None:
    llm = pair_fake(prefer("CAND"))
    await PairwiseMetric(llm).ascore([item("CAND", baseline="BASE", target="42")])
    first, second = llm.calls
    assert slots(first) == {"A": "BASE", "B": "CAND"} and slots(second) == {"A": "CAND", "B": "BASE"}
    assert f"{REFERENCE_NOTE}42" in request_text(first)
    assert all(r.temperature == 0.0 and r.top_logprobs == 5 for r in llm.calls)


async def test_pairwise_identical_answer_is_half_without_calling_the_judge() -> None:
    llm = pair_fake(prefer("x"))
    (s,) = await PairwiseMetric(llm).ascore([item(" same answer\n", baseline="same answer")])
    assert s.value == 0.5 and s.error is None and s.prediction == "tie"
    assert llm.calls == [] and llm.batches == []


def verdict_choice(letter: str, probs: dict[str, float], *, explanation: str = "Both answer it. ") -> Choice:
    """A judgement ending in [[letter]] whose verdict token lists ``probs`` (tokens "A"/"B"/"C")."""
    text = f"{explanation}[[{letter}]]"
    top = tuple((tok, math.log(p)) for tok, p in probs.items())
    tokens = (
        TokenLogprob(explanation, -0.1),
        TokenLogprob("[[", -0.01),
        TokenLogprob(letter, math.log(probs[letter]), top),
        TokenLogprob("]]", -0.01),
    )
    return Choice(text, "stop", tokens)


async def test_pairwise_soft_score_from_the_verdict_tokens_log_probabilities() -> None:
    # order 1 (baseline is A): p(A)=.7 p(B)=.2 p(C)=.1 → p(candidate better)+tie/2 = .25
    # order 2 (candidate is A): p(A)=.8 p(B)=.1 p(C)=.1 → .85; mean .55 (the hard rule says .5)
    first = verdict_choice("A", {"A": 0.7, "B": 0.2, "C": 0.1})
    second = verdict_choice("A", {"A": 0.8, "B": 0.1, "C": 0.1})
    llm = FakeLLM(fn=lambda req, i: first if slots(req)["A"] == "BASE" else second)
    (s,) = await PairwiseMetric(llm).ascore([item("CAND", baseline="BASE")])
    assert s.value == pytest.approx(0.55) and s.prediction == "tie"
    assert s.feedback == "pairwise vs no instruction: tie (orders disagree: A then A), p(better)=0.55"
    # the same script, log-probabilities not asked for: the hard rule
    (hard,) = await PairwiseMetric(llm, top_logprobs=0).ascore([item("CAND", baseline="BASE")])
    assert hard.value == 0.5 and hard.feedback is not None and "p(better)" not in hard.feedback


async def test_pairwise_falls_back_to_the_hard_rule_when_an_order_has_no_logprobs() -> None:
    soft = verdict_choice("B", {"A": 0.3, "B": 0.7})
    llm = FakeLLM(fn=lambda req, i: soft if slots(req)["A"] == "BASE" else "Explanation. [[A]]")
    (s,) = await PairwiseMetric(llm).ascore([item("CAND", baseline="BASE")])
    assert s.value == 1.0 and s.prediction == "win"  # both orders prefer the candidate; no p(better)
    assert s.feedback is not None and "p(better)" not in s.feedback


def test_verdict_probs_reads_the_last_stated_verdict_token() -> None:
    c = verdict_choice("B", {"A": 0.25, "B": 0.5, "C": 0.125, "Assistant": 0.125})
    got = verdict_probs(c.text, c.logprobs)
    assert got is not None  # "Assistant" is no verdict: normalised over A, B and C
    assert (got["A"], got["B"], got["tie"]) == pytest.approx((0.25 / 0.875, 0.5 / 0.875, 0.125 / 0.875))
    # a token holding the brackets too: alternatives are read after the same text
    merged = (
        TokenLogprob("Fine. ", -0.1),
        TokenLogprob("[[A", math.log(0.6), (("[[A", math.log(0.6)), ("[[B", math.log(0.3)), ("[[", -3.0))),
        TokenLogprob("]]", 0.0),
    )
    got = verdict_probs("Fine. [[A]]", merged)
    assert got is not None and got["A"] == pytest.approx(2 / 3) and got["tie"] == 0.0
    assert verdict_probs(c.text, None) is None
    assert verdict_probs("My verdict: A", (TokenLogprob("My verdict: A", 0.0),)) is None  # in words
    assert verdict_probs("other text [[A]]", c.logprobs) is None  # tokens do not spell the text
    assert verdict_span("not [[A]], so [[B]]") == (16, 17)  # the denied token is skipped
    assert verdict_span("not [[A]]") is None and verdict_span("[[tie]]") == (2, 5)


async def test_pairwise_llm_error_is_a_failed_item() -> None:
    def fn(req: Request, i: int) -> Any:
        s = slots(req)
        return LLMServerError("judge down") if "bad" in s["A"] else "Explanation. [[A]]"

    llm = FakeLLM(fn=fn)
    ok, bad = await PairwiseMetric(llm).ascore([item("fine", baseline="base"), item("bad", baseline="base")])
    assert ok.error is None and ok.value == 0.5
    assert bad.value == 0.0 and bad.error is not None and bad.error.startswith("judge: LLMServerError: ")
    assert "judge down" in bad.error


async def test_pairwise_budget_and_unreachable_server_propagate() -> None:
    with pytest.raises(BudgetExceededError):
        await PairwiseMetric(FakeLLM(default=BudgetExceededError("spent"))).ascore([item("a", baseline="b")])  # type: ignore[arg-type]
    with pytest.raises(LLMConnectionError):
        await PairwiseMetric(FakeLLM(default=LLMConnectionError("refused"))).ascore([item("a", baseline="b")])  # type: ignore[arg-type]


async def test_pairwise_sends_every_judgement_of_a_call_in_one_batch() -> None:
    llm = pair_fake(prefer("CAND"))
    items = [item(f"CAND {k}", baseline=f"base {k}") for k in range(3)] + [item("same", baseline="same")]
    scores = await PairwiseMetric(llm).ascore(items)
    assert [s.value for s in scores] == [1.0, 1.0, 1.0, 0.5]
    assert llm.batches == [6]


async def test_pairwise_without_a_baseline_is_a_metric_error() -> None:
    with pytest.raises(MetricError, match="baseline"):
        await PairwiseMetric(FakeLLM(default="[[A]]")).ascore([item("a")])


# --------------------------------------------------------------------------- factory


def test_make_judge_metric_modes() -> None:
    llm = FakeLLM(default="Score: 1")
    assert isinstance(make_judge_metric(None, llm=llm), RubricMetric)
    rubric = make_judge_metric("rubric", llm=llm, max_tokens=64)
    assert isinstance(rubric, RubricMetric) and rubric.judge.max_tokens == 64
    pairwise = make_judge_metric("pairwise", llm=llm)
    assert isinstance(pairwise, PairwiseMetric) and pairwise.judge.max_tokens == 512
    with pytest.raises(ConfigError, match="pairwise, responsive, rubric"):
        make_judge_metric("elo", llm=llm)
    with pytest.raises(ConfigError, match="max_tokens"):
        make_judge_metric("rubric", llm=llm, max_tokens=0)


# --------------------------------------------------------------------------- log-probability plumbing


def test_top_logprobs_is_out_of_the_cache_key_unless_asked_for() -> None:
    plain = Request.chat("q")
    assert "top_logprobs" not in plain.canonical()  # every existing cache entry stays valid
    assert plain.with_(top_logprobs=5).canonical()["top_logprobs"] == 5
    with pytest.raises(ValueError):
        Request.chat("q", top_logprobs=-1)


async def test_fake_returns_scripted_logprobs_only_when_asked() -> None:
    scripted = verdict_choice("A", {"A": 0.9, "B": 0.1})
    llm = FakeLLM(default=scripted)
    asked, plain = await llm.agenerate([Request.chat("q", top_logprobs=3), Request.chat("q")])
    assert asked.text == scripted.text and asked.choices[0].logprobs == scripted.logprobs
    assert plain.text == scripted.text and plain.choices[0].logprobs is None


async def test_the_cache_does_not_keep_a_choice_with_logprobs(tmp_path: Path) -> None:
    inner = FakeLLM(default=verdict_choice("A", {"A": 0.9, "B": 0.1}))
    llm = CachedLLM(inner, RequestCache(tmp_path / "c.sqlite"))
    soft, plain = Request.chat("q", top_logprobs=5), Request.chat("q")
    for _ in range(2):
        (got,) = await llm.agenerate([soft])
        assert got.choices[0].logprobs is not None and not got.cached
        await llm.agenerate([plain])
    assert len(inner.calls) == 3  # the soft request twice, the plain one once (then a hit)


def test_openai_wire_asks_for_and_reads_chat_logprobs() -> None:
    kw = dict(
        model="m", n=1, seed=None, token_limit_param="max_tokens", extra_body=None, structured_output="none"
    )
    params, _ = openai_wire.request_params(Request.chat("q", top_logprobs=5), **kw)  # type: ignore[arg-type]
    assert params["logprobs"] is True and params["top_logprobs"] == 5
    assert "logprobs" not in openai_wire.request_params(Request.chat("q"), **kw)[0]  # type: ignore[arg-type]
    assert "logprobs" not in openai_wire.completions_params(dict(params), "max_tokens")
    top = [SimpleNamespace(token="A", logprob=-0.2), SimpleNamespace(token="B", logprob=-1.8)]
    content = [
        SimpleNamespace(token="[[", logprob=0.0, top_logprobs=[]),
        SimpleNamespace(token="A", logprob=-0.2, top_logprobs=top),
    ]
    choice = SimpleNamespace(
        index=0,
        message=SimpleNamespace(content="[[A"),
        finish_reason="stop",
        logprobs=SimpleNamespace(content=content),
    )
    response = SimpleNamespace(choices=[choice], usage=None)
    (c,) = openai_wire.parse_response(response, chat=True, name="m").choices
    assert c.logprobs == (TokenLogprob("[[", 0.0), TokenLogprob("A", -0.2, (("A", -0.2), ("B", -1.8))))
    bare = SimpleNamespace(index=0, message=SimpleNamespace(content="x"), finish_reason="stop", logprobs=None)
    assert (
        openai_wire.parse_response(SimpleNamespace(choices=[bare]), chat=True, name="m").choices[0].logprobs
        is None
    )
