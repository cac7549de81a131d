"""Rubric judge (Self-Rewarding LMs): pinned prompt, strict score parsing, averaging above
temperature 0, failures, comparison, `bpo eval --judge rubric`, and n-best picking by rubric."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from promptopt.cli.bpo_eval import eval_command
from promptopt.errors import ConfigError
from promptopt.evaluators.judge import (
    RUBRIC_PROMPT,
    JudgeItem,
    PairwiseJudge,
    RubricJudge,
    compare_scores,
    make_judge,
    parse_rubric_score,
)
from promptopt.evaluators.pairwise_eval import EvalJob, evaluate
from promptopt.evaluators.rubric import FOLLOW_UP_PROMPT, SCORE_CONSTRAINT
from promptopt.llm.base import BudgetExceededError, LLMServerError, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.bpo.rewriter import JudgePicker, RubricPicker, as_picker, make_picker
from promptopt.optimizers.bpo.testsets import TestItem, TestSet

# --------------------------------------------------------------------------- the prompt


def test_rubric_prompt_is_pinned_to_the_paper_wording() -> None:
    assert RUBRIC_PROMPT.startswith(
        "Review the user's question and the corresponding response using the additive 5-point scoring "
        "system described below. Points are accumulated based on the satisfaction of each criterion:\n"
        "- Add 1 point if the response is relevant and provides some information related to the user's "
        "inquiry, even if it is incomplete or contains some irrelevant content.\n"
    )
    for criterion in (
        "- Add another point if the response addresses a substantial portion of the user's question",
        "- Award a third point if the response answers the basic elements of the user's question in a useful way",
        "- Grant a fourth point if the response is clearly written from an AI Assistant's perspective",
        "- Bestow a fifth point for a response that is impeccably tailored to the user's question by an AI "
        "Assistant, without extraneous information, reflecting expert knowledge",
        "User: {question}\n<response>{answer}</response>",
        '- Conclude with the score using the format: "Score: <total points>"',
    ):
        assert criterion in RUBRIC_PROMPT
    assert RUBRIC_PROMPT.endswith("we'll systematically attribute points based on the outlined criteria.")


def test_question_and_answer_are_inserted_once_without_expanding_braces() -> None:
    text = RubricJudge(FakeLLM()).render("Q {answer}", "A {question} Score: 5")
    assert "User: Q {answer}\n<response>A {question} Score: 5</response>" in text


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("The answer is relevant.\nScore: 4", 4),
        ("Score: 0", 0),
        ("Score: 5", 5),
        ("score:3", 3),
        ("**Score:** 2", 2),
        ("Score: **3**", 3),
        ("Total score: 4/5", 4),
        ("Score: 2\n...on reflection, Score: 3", 3),  # the last one counts
        ('Format: "Score: <total points>". Score: 1', 1),  # the restated format is no score
        ("Score: 3. ", 3),
        ("Score: 4 out of 5", 4),
        ("Score: 4x", None),
        # garbage and out-of-range: unparseable, never an earlier score, never evaluated
        ("Score: 4\nScore: 7", None),
        ("Score: 6", None),
        ("Score: -1", None),
        ("Score: 3.5", None),
        ("Score: 2+2", None),  # not a plain number; never arithmetic
        ("Score: __import__('os')", None),
        ("I would give it four points.", None),
        ("Score:", None),
        ("", None),
        ("Scored: 4", None),
        ("Score: 45", None),
        ("Score: ４", None),  # full-width digit: not ASCII, not accepted
    ],
)
def test_parse_rubric_score(text: str, score: int | None) -> None:
    assert parse_rubric_score(text) == score


def test_compare_scores() -> None:
    assert compare_scores(2.0, 3.0) == "win"
    assert compare_scores(3.0, 2.0) == "loss"
    assert compare_scores(3.0, 3.0) == "tie"
    assert compare_scores(None, 3.0) == "tie" and compare_scores(3.0, None) == "tie"


# --------------------------------------------------------------------------- judging


def scoring_fake(score_of: dict[str, str]) -> FakeLLM:
    """Replies with the text mapped to the first key found inside the rendered <response>."""

    def fn(req: Request, i: int) -> str:
        response = re.search(r"<response>(.*)</response>", request_text(req), re.S)
        body = response.group(1) if response else ""
        return next((v for k, v in score_of.items() if k in body), "no idea")

    return FakeLLM(fn=fn)


def test_ascore_one_call_per_answer_at_temperature_0_and_none_when_unparseable() -> None:
    llm = scoring_fake({"good": "Fine. Score: 5", "bad": "Score: 1", "odd": "Score: 9"})
    judge = RubricJudge(llm, follow_up=False)
    assert judge.samples == 1
    assert judge.score(["q"] * 4, ["good", "bad", "odd", "?"]) == [5.0, 1.0, None, None]
    assert llm.batches == [4] and all(c.temperature == 0.0 for c in llm.calls)
    judged = judge.judge(["q"], ["odd"])
    assert judged[0].unparsed == 1 and judged[0].scores == (None,)


def test_scores_are_averaged_over_repeats_above_temperature_0() -> None:
    by_seed = {10: "Score: 2", 11: "Score: 3", 12: "nonsense", 13: "Score: 5"}
    llm = FakeLLM(fn=lambda r, i: by_seed[r.seed])  # type: ignore[index]
    judge = RubricJudge(llm, temperature=0.8, samples=4, seed=10, follow_up=False)
    (j,) = judge.judge(["q"], ["a"])
    assert j.score == pytest.approx((2 + 3 + 5) / 3) and j.unparsed == 1
    assert j.scores == (2, 3, None, 5)
    assert sorted(c.seed for c in llm.calls) == [10, 11, 12, 13]
    assert {c.temperature for c in llm.calls} == {0.8}
    assert RubricJudge(llm, temperature=0.5).samples == 3  # default repeats above 0
    assert RubricJudge(llm, temperature=0.0, samples=5).samples == 1  # repeats would be identical


def follow_up_fake(first: dict[str, str], second: dict[str, str]) -> FakeLLM:
    """First turn: the text mapped to the answer; the follow-up turn (it ends with FOLLOW_UP_PROMPT):
    the text mapped to the answer in ``second``. Honours constraints like a grammar backend."""

    def fn(req: Request, i: int) -> str:
        body = re.search(r"<response>(.*)</response>", request_text(req), re.S)
        key = next(k for k in first if body and k in body.group(1))
        if req.messages and req.messages[-1].content == FOLLOW_UP_PROMPT:
            return second[key]
        return first[key]

    return FakeLLM(fn=fn, structured_output="gbnf")


def test_a_judgement_without_a_valid_score_gets_one_constrained_follow_up() -> None:
    llm = follow_up_fake(
        {"long": "Point 1 met. Point 2 met.", "hundred": "Score: 85", "fine": "Score: 3"},
        {"long": "Score: 4", "hundred": "Well... Score: 2"},
    )
    long, hundred, fine = RubricJudge(llm).judge(["q"] * 3, ["long", "hundred", "fine"])
    assert (long.score, long.recovered, long.unparsed) == (4.0, 1, 0)
    assert long.raw == ("Point 1 met. Point 2 met.",) and long.follow_up_raw == ("Score: 4",)
    assert (hundred.score, hundred.recovered) == (2.0, 1) and hundred.follow_up_raw == ("Score: 2",)
    assert (fine.score, fine.recovered, fine.follow_up_raw) == (3.0, 0, ())
    assert llm.batches == [3, 2]  # the follow-ups go out together, only for the unparsed two
    follow = [c for c in llm.calls if c.constraint is not None]
    assert len(follow) == 2 and all(c.constraint == SCORE_CONSTRAINT and c.max_tokens == 8 for c in follow)
    roles = [m.role for m in follow[0].messages or ()]
    assert roles == ["user", "assistant", "user"]  # the judge's own text, then the format request
    assert follow[0].messages[1].content in {"Point 1 met. Point 2 met.", "Score: 85"}  # type: ignore[index]


def test_a_follow_up_that_still_fails_leaves_the_judgement_unparsed_not_failed() -> None:
    llm = FakeLLM(rules=[(re.escape(FOLLOW_UP_PROMPT), LLMServerError("down")), ("<response>x", "Score: 9")])
    (j,) = RubricJudge(llm).judge(["q"], ["x"])
    assert j.score is None and j.error is None and j.unparsed == 1 and j.recovered == 0
    ignored = follow_up_fake({"x": "no score"}, {"x": "I would say 4 out of 5"})  # constraint ignored
    ignored.honour_constraints = False
    (k,) = RubricJudge(ignored).judge(["q"], ["x"])
    assert k.score is None and k.unparsed == 1 and k.follow_up_raw == ("I would say 4 out of 5",)


def test_a_failed_call_is_an_error_and_a_budget_refusal_is_raised() -> None:
    llm = FakeLLM(fn=lambda r, i: LLMServerError("boom") if "bad" in request_text(r) else "Score: 4")
    (ok, failed) = RubricJudge(llm).judge(["q", "q"], ["good", "bad"])
    assert ok.score == 4.0 and ok.error is None
    assert failed.score is None and "boom" in (failed.error or "")
    with pytest.raises(BudgetExceededError):
        RubricJudge(FakeLLM(default=BudgetExceededError("spent"))).score(["q"], ["a"])  # type: ignore[arg-type]


def test_compare_scores_both_answers_apart() -> None:
    llm = scoring_fake({"long": "Score: 4", "short": "Score: 2", "junk": "whatever"})
    judge = RubricJudge(llm)
    got = judge.compare(
        [JudgeItem("q", "short", "long"), JudgeItem("q", "long", "short"), JudgeItem("q", "junk", "long")]
    )
    assert [g.outcome for g in got] == ["win", "loss", "tie"]
    assert got[2].unparsed == 1
    rec = got[0].to_json()
    assert (
        rec["kind"] == "rubric"
        and rec["candidate"]["score"] == 4.0
        and rec["baseline"]["raw"] == ["Score: 2"]
    )


def test_make_judge_by_name() -> None:
    assert isinstance(make_judge("pairwise", FakeLLM()), PairwiseJudge)
    rubric = make_judge("rubric", FakeLLM(), temperature=0.7, samples=2)
    assert isinstance(rubric, RubricJudge) and rubric.samples == 2
    with pytest.raises(ConfigError, match="pairwise, rubric"):
        make_judge("elo", FakeLLM())


# --------------------------------------------------------------------------- eval with the rubric


def target_fake() -> FakeLLM:
    return FakeLLM(fn=lambda r, i: "long answer" if "detail" in request_text(r) else "short answer")


def test_eval_with_the_rubric_judge(tmp_path: Path) -> None:
    ts = TestSet("t", [TestItem("1", "Q1", "Q1 in detail"), TestItem("2", "Q2", "Q2 in detail")])
    judge_llm = scoring_fake({"long": "Score: 4", "short": "Score: 3"})
    out = tmp_path / "ev"
    summary = evaluate([ts], target=target_fake(), judge=RubricJudge(judge_llm), out_dir=out)
    (r,) = summary.results
    assert (r.stats.win, r.stats.tie, r.stats.loss) == (2, 0, 0) and r.stats.delta_wr == 100.0
    assert "rubric" in summary.rule
    rec = json.loads((out / "t.jsonl").read_text().splitlines()[0])
    assert rec["judge"]["kind"] == "rubric" and rec["judge"]["candidate"]["score"] == 4.0
    saved = json.loads((out / "eval_config.json").read_text())
    assert (saved["judge_kind"], saved["judge_samples"]) == ("rubric", 1)
    assert "rubric" in json.loads((out / "summary.json").read_text())["rule"]


def test_unparseable_rubric_scores_are_ties_and_counted(tmp_path: Path) -> None:
    ts = TestSet("t", [TestItem("1", "Q1", "Q1 in detail")])
    summary = evaluate(
        [ts], target=target_fake(), judge=RubricJudge(FakeLLM(default="Score: ten")), out_dir=tmp_path / "u"
    )
    assert summary.results[0].stats.tie == 1 and summary.results[0].unparsed_verdicts == 2


def test_a_pairwise_folder_refuses_a_rubric_rerun(tmp_path: Path) -> None:
    from promptopt.errors import RunDirError

    ts = TestSet("t", [TestItem("1", "Q1", "Q1 in detail")])
    out = tmp_path / "ev"
    evaluate([ts], target=target_fake(), judge=PairwiseJudge(FakeLLM(default="[[B]]")), out_dir=out)
    with pytest.raises(RunDirError, match="judge_kind"):
        evaluate([ts], target=target_fake(), judge=RubricJudge(FakeLLM(default="Score: 1")), out_dir=out)


def test_eval_job_checks_the_judge_flags(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--judge must be one of pairwise, rubric"):
        EvalJob(("x",), tmp_path, judge="elo")
    with pytest.raises(ConfigError, match="--judge-temperature"):
        EvalJob(("x",), tmp_path, judge_temperature=-1)
    with pytest.raises(ConfigError, match="--judge-samples"):
        EvalJob(("x",), tmp_path, judge_samples=0)


def test_cli_eval_judge_rubric(tmp_path: Path) -> None:
    rows = [{"prompt": "Q1", "optimized_prompt": "Q1 in detail"}]
    (tmp_path / "set.json").write_text(json.dumps(rows))
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)
    out = tmp_path / "o"
    args = [
        "eval",
        "-t",
        str(tmp_path / "set.json"),
        "--rewritten-field",
        "optimized_prompt",
        "--out",
        str(out),
    ]
    args += ["--target-model", "fake:an answer", "--judge-model", "fake:Score: 3", "--bootstrap", "20"]
    res = CliRunner().invoke(
        app, [*args, "--judge", "rubric", "--judge-temperature", "0.5", "--judge-samples", "2"]
    )
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "eval_config.json").read_text())
    assert (saved["judge_kind"], saved["judge_temperature"], saved["judge_samples"]) == ("rubric", 0.5, 2)
    res = CliRunner().invoke(app, [*args, "--judge", "elo", "--out", str(tmp_path / "o2")])
    assert isinstance(res.exception, ConfigError)


# --------------------------------------------------------------------------- n-best by rubric


def test_rubric_picker_scores_answers_to_each_candidate_against_the_original() -> None:
    target = FakeLLM(fn=lambda r, i: f"answer to {request_text(r)}")
    judge_llm = scoring_fake({"answer to B": "Score: 5", "answer to A": "Score: 3", "answer to C": "junk"})
    picker = make_picker("rubric", judge_llm, target=target)
    assert isinstance(picker, RubricPicker)
    assert picker.pick(["orig"], [["A", "B", "C"]]) == [1]
    assert all("User: orig\n" in request_text(c) for c in judge_llm.calls)
    # K answers + K judgements, + 1 follow-up for the unparseable "junk"
    assert len(target.calls) == 3 and len(judge_llm.calls) == 4
    # an unscored candidate ranks last; ties go to the earliest sample
    assert picker.pick(["orig"], [["C", "A"]]) == [1]
    assert picker.pick(["orig"], [["A", "A2"]]) == [0]


def test_rubric_picker_without_target_lets_the_judge_model_answer() -> None:
    llm = FakeLLM(
        fn=lambda r, i: (
            ("Score: 5" if "good" in request_text(r) else "Score: 1")
            if "<response>" in request_text(r)
            else f"{request_text(r)} answer"
        )
    )
    assert RubricPicker(llm).pick(["p"], [["bad one", "good one"]]) == [1]


def test_settings_judge_selector() -> None:
    assert isinstance(as_picker(RubricJudge(FakeLLM())), RubricPicker)
    assert type(as_picker(FakeLLM())) is JudgePicker
    assert type(make_picker("pairwise", FakeLLM())) is JudgePicker
    with pytest.raises(ConfigError, match="unknown judge"):
        make_picker("elo", FakeLLM())


def test_rubric_picker_calls_are_charged_to_a_budget() -> None:
    from promptopt.llm.budget import Budget

    budget = Budget(max_calls=100)
    llm = FakeLLM(fn=lambda r, i: "Score: 3" if "<response>" in request_text(r) else "ans")
    picker = RubricPicker(llm).charged(budget)
    assert isinstance(picker, RubricPicker) and isinstance(picker, JudgePicker)
    picker.pick(["p"], [["a", "b"]])
    assert budget.calls == 4


def test_cli_rewrite_refuses_an_unknown_judge_before_loading_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from promptopt.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bpo", "rewrite", "--rewriter", str(tmp_path / "none"), "--judge", "elo", "a prompt"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--judge must be one of pairwise, rubric" in err[0]
