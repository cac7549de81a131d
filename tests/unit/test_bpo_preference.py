"""Preference data for rewriters (bpo build-prefs): sampling, answering, ranking, ties, resume.

Everything is scripted: a fake rewriter returns fixed samples, the target is the fake LLM, and
judges are fake LLMs (pairwise) or score functions (rubric), so each rule is pinned exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import ConfigError, DataError
from promptopt.llm.base import LLMServerError, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.bpo.build import config_path, dropped_path
from promptopt.optimizers.bpo.preference import (
    PairwiseRanker,
    PrefConfig,
    RubricRanker,
    as_ranker,
    build_preferences,
    pick_pair,
    prompt_id,
)
from promptopt.optimizers.bpo.rewriter import RewriteSettings
from promptopt.optimizers.bpo.templates import RewriterConfig, SamplingDefaults


class ScriptedRewriter:
    """A rewriter stand-in: ``samples[prompt]`` are its raw samples; records every call."""

    name = "scripted-rewriter"

    def __init__(self, samples: dict[str, list[str]], temperature: float = 0.6) -> None:
        self.samples = samples
        self.config = RewriterConfig(
            family="causal", default=SamplingDefaults(temperature=temperature, top_p=0.9)
        )
        self.calls: list[dict[str, Any]] = []

    async def asample(self, prompts: Sequence[str], **options: Any) -> list[list[str]]:
        self.calls.append({"prompts": list(prompts), **options})
        return [list(self.samples[p])[: options["samples"]] for p in prompts]


def answer(request: Request, _i: int) -> str:
    return f"answer to {request_text(request)}"


def length_judge() -> Any:
    """A rubric judge scoring an answer by its length (longer is better)."""

    class Judge:
        name = "length"
        calls = 0

        async def ascore(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float | None]:
            Judge.calls += 1
            return [float(len(a)) for a in answers]

    return Judge()


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


CFG = PrefConfig(rewrite=RewriteSettings(n=3), concurrency=2)


def test_best_and_worst_rewrites_become_chosen_and_rejected(tmp_path: Path) -> None:
    rw = ScriptedRewriter({"cats": ["cats?", "tell me all about cats please", "cats pls"]})
    target = FakeLLM(fn=answer)
    out = tmp_path / "prefs.jsonl"
    report = build_preferences(["cats"], rw, target, length_judge(), out, config=CFG)
    assert (report.kept, report.dropped) == (1, {})
    [row] = read(out)
    assert row["prompt"] == "cats"
    assert row["chosen"] == "tell me all about cats please" and row["rejected"] == "cats?"
    assert row["chosen_score"] > row["rejected_score"]
    assert [c["answer"] for c in row["candidates"]] == [f"answer to {c}" for c in rw.samples["cats"]]
    assert rw.calls[0]["samples"] == 3 and rw.calls[0]["mode"] == "default"
    assert all(r.temperature == 0.0 for r in target.calls)  # answers are deterministic
    assert json.loads(config_path(out).read_text())["judge"] == "rubric:length"


def test_ties_and_too_few_candidates_are_dropped_with_a_reason(tmp_path: Path) -> None:
    rw = ScriptedRewriter(
        {
            "same": ["aaa", "bbb", "ccc"],  # equal lengths: best and worst tie
            "one": ["only one", "only one", ""],  # one distinct non-empty candidate
            "ok": ["x", "xxxxxxxx", "xxx"],
        }
    )
    out = tmp_path / "p.jsonl"
    report = build_preferences(["same", "one", "ok"], rw, FakeLLM(fn=answer), length_judge(), out, config=CFG)
    assert report.kept == 1 and report.dropped == {"tie": 1, "too_few_candidates": 1}
    dropped = {r["prompt"]: r for r in read(dropped_path(out))}
    assert dropped["same"]["reason"] == "tie" and len(dropped["same"]["candidates"]) == 3
    assert dropped["one"]["reason"] == "too_few_candidates"


def test_pick_pair_rules() -> None:
    assert pick_pair([1.0, 3.0, 0.0]) == (1, 2)
    assert pick_pair([2.0, 2.0, 1.0, 1.0]) == (0, 2)  # earliest on equal scores
    assert pick_pair([None, 1.0, None, 0.5]) == (1, 3)  # unscored answers are left out
    assert pick_pair([1.0, 1.0]) is None
    assert pick_pair([None, 2.0]) is None


def test_pairwise_judge_ranks_by_round_robin_in_both_orders(tmp_path: Path) -> None:
    """The judge prefers the answer mentioning GOOD, in either position; BAD loses to all."""

    def verdict(request: Request, _i: int) -> str:
        text = request_text(request)
        a = re.search(r"Assistant A's Answer\]\n(.*?)\n\[The End", text, re.S).group(1)  # type: ignore[union-attr]
        b = re.search(r"Assistant B's Answer\]\n(.*?)\n\[The End", text, re.S).group(1)  # type: ignore[union-attr]
        rank = {"GOOD": 2, "MID": 1, "BAD": 0}
        ra = next(v for k, v in rank.items() if k in a)
        rb = next(v for k, v in rank.items() if k in b)
        return "[[A]]" if ra > rb else "[[B]]" if rb > ra else "[[C]]"

    rw = ScriptedRewriter({"q": ["say MID", "say BAD", "say GOOD"]})
    judge = FakeLLM(fn=verdict, name="judge")
    out = tmp_path / "p.jsonl"
    build_preferences(["q"], rw, FakeLLM(fn=answer), judge, out, config=CFG)
    [row] = read(out)
    assert (row["chosen"], row["rejected"]) == ("say GOOD", "say BAD")
    assert [c["score"] for c in row["candidates"]] == [1.0, 0.0, 2.0]
    assert len(judge.calls) == 6 and judge.batches == [6]  # 3 pairs x 2 orders, one batched call
    assert row["judge"] == "pairwise:judge"


def test_failed_target_and_judge_calls_are_retried_on_rerun(tmp_path: Path) -> None:
    rw = ScriptedRewriter({"a": ["a1", "a22", "a333"], "b": ["b1", "b22", "b333"]})
    flaky = FakeLLM(rules=[("^b1$", LLMServerError("boom"))], fn=answer)
    out = tmp_path / "p.jsonl"
    report = build_preferences(["a", "b"], rw, flaky, length_judge(), out, config=CFG)
    assert report.kept == 1 and report.dropped == {"llm_error": 1}
    report = build_preferences(["a", "b"], rw, FakeLLM(fn=answer), length_judge(), out, config=CFG)
    assert report.kept == 2 and report.resumed == 1 and report.processed == 1
    assert report.dropped == {}

    class Failing:
        name = "f"

        async def arank(self, prompts: Sequence[str], answers: Sequence[Sequence[str]]) -> list[Any]:
            return [[None] * len(a) for a in answers]

    out2 = tmp_path / "q.jsonl"
    report = build_preferences(["a"], rw, FakeLLM(fn=answer), Failing(), out2, config=CFG)
    assert report.dropped == {"judge_error": 1}


def test_resume_skips_decided_prompts_and_refuses_other_settings(tmp_path: Path) -> None:
    rw = ScriptedRewriter({p: [p, p * 2, p * 3] for p in ("a", "b", "c", "d")})
    out = tmp_path / "p.jsonl"
    judge = length_judge()
    stops = iter([False, True])  # stop after the first batch of 2
    r1 = build_preferences(
        "abcd", rw, FakeLLM(fn=answer), judge, out, config=CFG, should_stop=lambda: next(stops)
    )
    assert r1.stopped == "stop requested" and r1.processed == 2
    r2 = build_preferences("abcd", rw, FakeLLM(fn=answer), judge, out, config=CFG)
    assert (r2.resumed, r2.processed, r2.kept) == (2, 2, 4)
    assert sorted(r["id"] for r in read(out)) == sorted(prompt_id(p) for p in "abcd")
    other = PrefConfig(rewrite=RewriteSettings(n=4), concurrency=2)
    with pytest.raises(DataError, match="other settings"):
        build_preferences("abcd", rw, FakeLLM(fn=answer), judge, out, config=other)


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="--n must be >= 2"):
        PrefConfig(rewrite=RewriteSettings(n=1))
    greedy = ScriptedRewriter({"a": ["x", "y"]}, temperature=0.0)
    with pytest.raises(ConfigError, match="temperature > 0"):
        build_preferences(["a"], greedy, FakeLLM(fn=answer), length_judge(), "/nonexistent/p.jsonl")
    with pytest.raises(ConfigError, match="cannot rank"):
        as_ranker(object())
    assert isinstance(as_ranker(FakeLLM()), PairwiseRanker)
    assert isinstance(as_ranker(length_judge()), RubricRanker)


def test_rubric_judge_scores_answers_and_a_failed_call_is_a_judge_error(tmp_path: Path) -> None:
    RubricJudge = getattr(pytest.importorskip("promptopt.evaluators.judge"), "RubricJudge", None)
    if RubricJudge is None:
        pytest.skip("the rubric judge (issue 13, part 1) is not in this tree")

    def score(request: Request, _i: int) -> str | BaseException:
        text = request_text(request)
        if "answer to boom" in text:
            return LLMServerError("judge down")
        return f"Fine. Score: {min(5, text.count('!'))}"

    rw = ScriptedRewriter({"q": ["hi", "hi!!!", "hi!"], "z": ["boom", "zz", "zzz"]})
    out = tmp_path / "p.jsonl"
    judge = RubricJudge(FakeLLM(fn=score, name="rubric-judge"))
    report = build_preferences(["q", "z"], rw, FakeLLM(fn=answer), judge, out, config=CFG)
    assert report.kept == 1 and report.dropped == {"judge_error": 1}
    [row] = read(out)
    assert (row["chosen"], row["rejected"]) == ("hi!!!", "hi")
    assert row["judge"] == "rubric:rubric-judge"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--judge", "vibes"], "unknown --judge 'vibes'"),
        (["--n", "1"], "--n must be >= 2"),
        (["--prompts", "/nonexistent/p.jsonl"], "unknown test set"),
    ],
)
def test_build_prefs_cli_bad_input_is_one_line(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptopt.cli import main

    args = [
        "bpo",
        "build-prefs",
        "--prompts",
        "vicuna",
        "--rewriter",
        "r",
        "--out",
        str(tmp_path / "p.jsonl"),
    ]
    with pytest.raises(SystemExit) as exc:
        main([*args, *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("promptopt: error:") and message in err and "\n" not in err
    assert not (tmp_path / "p.jsonl").exists()
