"""Pairwise judge: verdict parsing, both-order rule, failures, best-of-K, ΔWR arithmetic and CI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from promptopt.evaluators.judge import (
    MT_BENCH_PAIR,
    JudgeItem,
    PairwiseJudge,
    ascore_rewrites,
    combine,
    parse_verdict,
    pick_best,
    score_rewrites,
    win_rate,
)
from promptopt.llm.base import BudgetExceededError, LLMServerError, Request
from promptopt.llm.fake import FakeLLM, request_text

# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "verdict", "parsed"),
    [
        ("A is more detailed. [[A]]", "A", True),
        ("Explanation...\n\n[[B]]", "B", True),
        ("Both fine. [[C]]", "tie", True),
        ("[[tie]]", "tie", True),
        ("[[ b ]]", "B", True),
        ("Final verdict: B", "B", True),
        ("My verdict is **A**", "A", True),
        ("I cannot decide.", "tie", False),
        ("", "tie", False),
        ("[A] maybe", "tie", False),
    ],
)
def test_parse_verdict(text: str, verdict: str, parsed: bool) -> None:
    got = parse_verdict(text)
    assert (got.verdict, got.parsed) == (verdict, parsed)


def test_last_token_wins_and_is_flagged_ambiguous() -> None:
    got = parse_verdict("First I thought [[A]].\n\nHaving compared them again: [[B]]")
    assert got.verdict == "B" and got.ambiguous
    assert not parse_verdict("[[A]] ... [[A]]").ambiguous
    restated = parse_verdict('Format: "[[A]]" if A... Having compared them: [[B]]')
    assert restated.verdict == "B" and not restated.ambiguous  # the restated format is no verdict


@pytest.mark.parametrize(
    ("text", "verdict", "parsed"),
    [
        # issue 8, bug 5: the article "a" is no verdict
        ("My final verdict is a tie.", "tie", True),
        ("My final verdict is a draw", "tie", True),
        ("Final verdict: it's a tie", "tie", True),
        ("The verdict is a close call.", "tie", False),
        # denied tokens
        ("not [[A]]", "tie", False),
        ("The answer is clearly not [[A]].", "tie", False),
        ("I would not give [[A]] here. [[C]]", "tie", True),
        ("The verdict is not [[A]]; it is [[B]].", "B", True),
        ("[[B]], rather than [[A]]", "B", True),
        ("My final verdict is not A.", "tie", False),
        # quoted options, questions and alternatives
        ("[[A]] or [[B]]?", "tie", False),
        ("Should it be [[A]]?", "tie", False),
        ("Should it be [[A]]? No. [[B]]", "B", True),
        ('The format is "[[A]]" if A is better.', "tie", False),
        ('I must output "[[A]]", "[[B]]" or "[[C]]".', "tie", False),
        ('Choosing "[[A]]" would reward length. Verdict: B', "B", True),
        ('Final verdict: "[[B]]"', "B", True),
        ('"[[A]]"', "A", True),
        ("[[A]]/[[B]] are the options. [[C]]", "tie", True),
        # names of the assistants are no verdicts
        ("Assistant A's answer is longer, but B is accurate. [[B]]", "B", True),
        ("Verdict: Assistant A's answer", "tie", False),
        ("My final verdict is that Assistant B is better.", "B", True),
        ("A detailed comparison follows. A is verbose.", "tie", False),
    ],
)
def test_parse_verdict_never_guesses(text: str, verdict: str, parsed: bool) -> None:
    got = parse_verdict(text)
    assert (got.verdict, got.parsed) == (verdict, parsed)


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        ("B", "A", "win"),  # both orders prefer the candidate
        ("A", "B", "loss"),  # both orders prefer the baseline
        ("A", "A", "tie"),  # position bias: always the first answer
        ("B", "B", "tie"),
        ("tie", "A", "tie"),
        ("B", "tie", "tie"),
        ("tie", "tie", "tie"),
    ],
)
def test_both_orders_rule(first: str, second: str, outcome: str) -> None:
    assert combine(first, second) == outcome  # type: ignore[arg-type]


# --------------------------------------------------------------------------- judging


def answer_in_slot(request: Request, slot: str) -> str:
    text = request_text(request)
    start = text.index(f"[The Start of Assistant {slot}'s Answer]\n") + len(
        f"[The Start of Assistant {slot}'s Answer]\n"
    )
    return text[start : text.index(f"\n[The End of Assistant {slot}'s Answer]")]


def prefers(word: str) -> FakeLLM:
    """A fair judge: picks the answer containing ``word`` wherever it is shown."""

    def fn(request: Request, _i: int) -> str:
        a, b = answer_in_slot(request, "A"), answer_in_slot(request, "B")
        if (word in a) == (word in b):
            return "Equal. [[C]]"
        return "Reasoning. [[A]]" if word in a else "Reasoning. [[B]]"

    return FakeLLM(fn=fn)


async def test_judge_shows_both_orders_and_combines() -> None:
    llm = prefers("GOOD")
    judge = PairwiseJudge(llm, max_tokens=77, seed=3)
    items = [
        JudgeItem("q1", "plain", "GOOD answer"),  # win
        JudgeItem("q2", "GOOD answer", "plain"),  # loss
        JudgeItem("q3", "plain", "plain too"),  # tie
    ]
    got = await judge.acompare(items)
    assert [g.outcome for g in got] == ["win", "loss", "tie"]
    assert len(llm.calls) == 6
    first, second = llm.calls[0], llm.calls[1]
    assert answer_in_slot(first, "A") == "plain" and answer_in_slot(first, "B") == "GOOD answer"
    assert answer_in_slot(second, "A") == "GOOD answer" and answer_in_slot(second, "B") == "plain"
    assert first.messages[0].role == "system" and "[[C]]" in first.messages[0].content
    assert "[User Question]\nq1" in request_text(first)
    assert {r.max_tokens for r in llm.calls} == {77} and {r.seed for r in llm.calls} == {3}
    assert {r.temperature for r in llm.calls} == {0.0}
    assert (got[0].first_verdict, got[0].second_verdict) == ("B", "A")


async def test_position_biased_judge_gives_ties() -> None:
    judge = PairwiseJudge(FakeLLM(default="[[A]]"))
    got = await judge.acompare([JudgeItem("q", "x", "y"), JudgeItem("q", "y", "x")])
    assert [g.outcome for g in got] == ["tie", "tie"]


async def test_unparseable_verdicts_are_ties_and_counted() -> None:
    judge = PairwiseJudge(FakeLLM(replies=["no idea", "[[A]]"]))
    (got,) = await judge.acompare([JudgeItem("q", "x", "y")])
    assert got.outcome == "tie" and got.unparsed == 1


async def test_template_is_not_expanded_by_answers() -> None:
    llm = FakeLLM(default="[[C]]")
    await PairwiseJudge(llm).acompare([JudgeItem("q {answer_b}", "uses {question}", "y")])
    text = request_text(llm.calls[0])
    assert "q {answer_b}" in text and "uses {question}" in text


async def test_failed_call_is_an_error_not_a_verdict() -> None:
    llm = FakeLLM(replies=["[[B]]", LLMServerError("boom"), "[[B]]", "[[A]]"])
    llm.max_concurrency = 1
    got = await PairwiseJudge(llm).acompare([JudgeItem("q", "x", "y"), JudgeItem("q", "x", "y")])
    assert got[0].outcome is None and "boom" in (got[0].error or "")
    assert got[1].outcome == "win"


async def test_budget_refusal_is_raised() -> None:
    llm = FakeLLM(replies=[BudgetExceededError("over budget")], default="[[A]]")
    llm.max_concurrency = 1
    with pytest.raises(BudgetExceededError):
        await PairwiseJudge(llm).acompare([JudgeItem("q", "x", "y")])


# --------------------------------------------------------------------------- best of K


def prompt_judge_prefers_longer() -> FakeLLM:
    def fn(request: Request, _i: int) -> str:
        text = request_text(request)
        a = text.split("[The Start of Rewrite A]\n")[1].split("\n[The End")[0]
        b = text.split("[The Start of Rewrite B]\n")[1].split("\n[The End")[0]
        return "[[A]]" if len(a) > len(b) else "[[B]]" if len(b) > len(a) else "[[C]]"

    return FakeLLM(fn=fn)


async def test_score_rewrites_round_robin_on_prompts() -> None:
    llm = prompt_judge_prefers_longer()
    judge = PairwiseJudge(llm)
    scores = await ascore_rewrites(judge, ["orig"], [["short", "the longest one", "medium x"]])
    assert scores == [[0.0, 2.0, 1.0]]
    assert len(llm.calls) == 6  # 3 pairs x 2 orders
    assert "[Original Request]\norig" in request_text(llm.calls[0])


def test_pick_best_with_target_answers_and_identical_candidates() -> None:
    target = FakeLLM(fn=lambda r, i: "GOOD answer" if "detail" in request_text(r) else "meh")
    judge = PairwiseJudge(prefers("GOOD"))
    best = pick_best(judge, ["q", "q2"], [["a", "a in detail", "b"], ["same", "same"]], target=target)
    assert best == [1, 0]  # identical candidates: tie without a call, lowest index wins
    assert len(target.calls) == 5
    assert score_rewrites(judge, ["q"], [["a", "a in detail"]], target=target) == [[0.0, 1.0]]


# --------------------------------------------------------------------------- statistics


def test_win_rate_arithmetic() -> None:
    s = win_rate(["win"] * 5 + ["tie"] * 3 + ["loss"] * 2)
    assert (s.n, s.win, s.tie, s.loss) == (10, 5, 3, 2)
    assert (s.win_pct, s.tie_pct, s.loss_pct) == (50.0, 30.0, 20.0)
    assert s.delta_wr == pytest.approx(30.0)
    assert s.ci_low < s.delta_wr < s.ci_high


def test_ci_is_seeded_and_matches_normal_approximation() -> None:
    outcomes = ["win"] * 40 + ["tie"] * 40 + ["loss"] * 20
    a, b = win_rate(outcomes, seed=1), win_rate(outcomes, seed=1)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    c, d = win_rate(outcomes, seed=2, n_boot=201), win_rate(outcomes, seed=3, n_boot=201)
    assert (c.ci_low, c.ci_high) != (d.ci_low, d.ci_high)  # the seed is really used
    x = np.array([1.0] * 40 + [0.0] * 40 + [-1.0] * 20)
    se = x.std() / math.sqrt(len(x)) * 100  # bootstrap SE of the mean is the plug-in SE
    assert a.ci_low == pytest.approx(20.0 - 1.96 * se, abs=1.5)
    assert a.ci_high == pytest.approx(20.0 + 1.96 * se, abs=1.5)


def test_ci_degenerate_and_empty_cases() -> None:
    s = win_rate(["win"] * 7)
    assert (s.delta_wr, s.ci_low, s.ci_high) == (100.0, 100.0, 100.0)
    e = win_rate([])
    assert e.n == 0 and math.isnan(e.delta_wr) and math.isnan(e.ci_low)
    assert e.to_json()["delta_wr"] is None and e.to_json()["n"] == 0
    with pytest.raises(ValueError):
        win_rate(["won"])
    with pytest.raises(ValueError):
        win_rate(["win"], confidence=1.0)


# MT-bench's "pair-v2" judge prompt, word for word, from FastChat
# fastchat/llm_judge/data/judge_prompts.jsonl (BPO's src/evaluation/gpt4_score.py uses the same).
REFERENCE_PAIR_V2_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. You should choose the assistant that follows "
    "the user's instructions and answers the user's question better. Your evaluation should consider "
    "factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of "
    "their responses. Begin your evaluation by comparing the two responses and provide a short "
    "explanation. Avoid any position biases and ensure that the order in which the responses were "
    "presented does not influence your decision. Do not allow the length of the responses to "
    "influence your evaluation. Do not favor certain names of the assistants. Be as objective as "
    "possible. After providing your explanation, output your final verdict by strictly following "
    'this format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" '
    "for a tie."
)
REFERENCE_PAIR_V2_USER = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)


def test_default_template_is_mt_bench_pair_v2_word_for_word() -> None:
    assert MT_BENCH_PAIR.system == REFERENCE_PAIR_V2_SYSTEM
    assert MT_BENCH_PAIR.user == REFERENCE_PAIR_V2_USER
    assert PairwiseJudge(FakeLLM()).template == MT_BENCH_PAIR


async def test_the_judge_sends_the_reference_prompt_including_the_length_rule() -> None:
    """What reaches the judge model, not just the constant: removing the length sentence (or any
    other word) from the system prompt the judge sends fails here."""
    llm = FakeLLM(default="[[C]]")
    await PairwiseJudge(llm).acompare([JudgeItem("Why is the sky blue?", "short", "long answer")])
    for request in llm.calls:
        assert request.messages is not None
        system, user = request.messages
        assert (system.role, user.role) == ("system", "user")
        assert system.content == REFERENCE_PAIR_V2_SYSTEM
        assert "Do not allow the length of the responses to influence your evaluation." in system.content


async def test_the_judge_judges_both_orders_of_every_item() -> None:
    """Each item: one request with the baseline as A, one with the candidate as A, same question.
    A judge that always prefers whatever is shown first must give ties, never wins."""
    llm = FakeLLM(default="Whatever is first is best. [[A]]")
    items = [JudgeItem(f"q{i}", f"base {i}", f"cand {i}") for i in range(3)]
    got = await PairwiseJudge(llm).acompare(items)
    assert len(llm.calls) == 2 * len(items)
    shown = sorted((answer_in_slot(r, "A"), answer_in_slot(r, "B")) for r in llm.calls)
    expected = [(f"base {i}", f"cand {i}") for i in range(3)] + [(f"cand {i}", f"base {i}") for i in range(3)]
    assert shown == sorted(expected)
    assert [g.outcome for g in got] == ["tie"] * 3
    assert all((g.first_verdict, g.second_verdict) == ("A", "A") for g in got)
