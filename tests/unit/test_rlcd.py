"""RLCD pairs (`bpo build-pairs`): cue prompts, pair labelling, the both-orders judge filter,
resume and retries, the settings file, prompt loading, and build-data reading the output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from promptopt.cli.bpo_pairs import build_pairs_command
from promptopt.errors import ConfigError, DataError, UnknownNameError
from promptopt.evaluators.judge import PAIR_USER, PairwiseJudge
from promptopt.llm.base import BudgetExceededError, LLMServerError, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.bpo.build import config_path, dropped_path
from promptopt.optimizers.bpo.pairs import load_pairs
from promptopt.optimizers.bpo.rlcd import (
    CUE_PAIRS,
    RLCD_SYSTEM,
    PromptItem,
    RLCDConfig,
    build_pairs,
    load_prompts,
    render_cue_prompt,
)
from promptopt.testing import write_jsonl

POS, NEG = CUE_PAIRS["helpful"].positive, CUE_PAIRS["helpful"].negative


def answerer(fail_on: str | None = None) -> FakeLLM:
    """Answers 'GOOD <prompt>' under the positive cue and 'BAD <prompt>' under the negative one."""

    def fn(req: Request, i: int) -> str | BaseException:
        text = request_text(req)
        prompt = re.search(r"Human: (.*?)\n\nAssistant", text, re.S)
        body = prompt.group(1) if prompt else "?"
        if fail_on is not None and fail_on in body:
            return LLMServerError("boom")
        for cue in CUE_PAIRS.values():
            if cue.positive in text:
                return f"GOOD {body}"
            if cue.negative in text:
                return f"BAD {body}"
        return "no cue"

    return FakeLLM(fn=fn)  # type: ignore[arg-type]


def judge_fake(rule: str = "agree") -> FakeLLM:
    """A judge: 'agree' prefers the GOOD answer in both orders, 'first' always says [[A]]."""

    def fn(req: Request, i: int) -> str:
        text = request_text(req)
        if rule == "first":
            return "[[A]]"
        a = text.split("[The Start of Assistant A's Answer]")[1]
        return "[[A]]" if a.lstrip().startswith("GOOD") else "[[B]]"

    return FakeLLM(fn=fn)


def items(*prompts: str) -> list[PromptItem]:
    return [PromptItem(p) for p in prompts]


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


# --------------------------------------------------------------------------- cue prompts


def test_cue_prompts_differ_only_in_the_description() -> None:
    for name, cue in CUE_PAIRS.items():
        item = PromptItem("Explain {cue} tides.", "Context text")
        pos, neg = render_cue_prompt(item, cue.positive), render_cue_prompt(item, cue.negative)
        assert pos.replace(cue.positive, "<cue>") == neg.replace(cue.negative, "<cue>"), name
        assert pos == f"Human: Explain {{cue}} tides.\n\nContext text\n\nAssistant {cue.positive}:"
        assert cue.positive.startswith("(") and cue.negative.endswith("response)")
    assert CUE_PAIRS["both"].positive == "(helpful, honest, and harmless response)"
    assert CUE_PAIRS["both"].negative == "(unhelpful, dishonest, and harmful response)"
    with pytest.raises(UnknownNameError, match="helpful, harmless, both"):
        RLCDConfig(cues="kind")


def test_requests_send_both_cues_with_one_seed_in_one_batch(tmp_path: Path) -> None:
    llm = answerer()
    build_pairs(items("P1", "P2"), llm, tmp_path / "p.jsonl", config=RLCDConfig(temperature=0.9, seed=3))
    assert llm.batches == [4]
    assert all(c.messages is not None and c.messages[0].content == RLCD_SYSTEM for c in llm.calls)
    by_prompt: dict[str, set[int | None]] = {}
    for c in llm.calls:
        by_prompt.setdefault(request_text(c).split("Human: ")[1][:2], set()).add(c.seed)
    assert all(len(s) == 1 for s in by_prompt.values())  # both sides of a prompt share its seed
    assert by_prompt["P1"] != by_prompt["P2"]
    assert {c.temperature for c in llm.calls} == {0.9}


# --------------------------------------------------------------------------- labelling


def test_the_positive_answer_is_labelled_preferred_in_build_data_layout(tmp_path: Path) -> None:
    out = tmp_path / "pairs.jsonl"
    report = build_pairs([PromptItem("P1"), PromptItem("P2", "ctx")], answerer(), out)
    assert report.kept == 2 and report.total == 2 and report.agreement is None
    kept = rows(out)
    assert [(r["instruction"], r["context"], r["good_res"], r["bad_res"]) for r in kept] == [
        ("P1", "", "GOOD P1", "BAD P1"),
        ("P2", "ctx", "GOOD P2\n\nctx", "BAD P2\n\nctx"),
    ]
    assert all(r["status"] == "kept" and r["cues"] == "helpful" for r in kept)
    loaded = load_pairs(out)  # build-data's reader, unchanged
    assert loaded.preset == "bpo" and not loaded.skipped
    assert [(p.instruction, p.context, p.good, p.bad) for p in loaded.pairs][0] == (
        "P1",
        "",
        "GOOD P1",
        "BAD P1",
    )
    assert loaded.pairs[1].context == "ctx"


def test_empty_and_identical_answers_are_dropped(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    llm = FakeLLM(
        fn=lambda r, i: "same" if "P1" in request_text(r) else ("   " if POS in request_text(r) else "x")
    )
    report = build_pairs(items("P1", "P2"), llm, out)
    assert report.kept == 0 and report.dropped == {"identical": 1, "empty": 1}
    assert not out.exists() or rows(out) == []
    assert {r["reason"] for r in rows(dropped_path(out))} == {"identical", "empty"}


# --------------------------------------------------------------------------- judge filter


def test_judge_filter_keeps_a_pair_only_when_both_orders_agree(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    jl = judge_fake("agree")
    report = build_pairs(items("P1", "P2"), answerer(), out, judge=PairwiseJudge(jl))
    assert report.kept == 2 and report.judge_outcomes == {"win": 2} and report.agreement == 1.0
    assert len(jl.calls) == 4 and jl.batches == [4]  # both orders of both pairs in one call
    shown = [request_text(c) for c in jl.calls if "P1" in request_text(c)]
    assert any(s.index("GOOD P1") < s.index("BAD P1") for s in shown)
    assert any(s.index("BAD P1") < s.index("GOOD P1") for s in shown)
    assert "[User Question]\nP1\n" in shown[0] and PAIR_USER.split("\n")[0] in shown[0]
    assert rows(out)[0]["judge"]["outcome"] == "win"

    out2 = tmp_path / "q.jsonl"
    report = build_pairs(items("P1", "P2"), answerer(), out2, judge=PairwiseJudge(judge_fake("first")))
    assert report.kept == 0 and report.dropped == {"judge_disagrees": 2} and report.agreement == 0.0
    assert report.judge_outcomes == {"tie": 2}  # one order each way is no agreement
    dropped = rows(dropped_path(out2))
    assert dropped[0]["judge"]["first_verdict"] == "A" and dropped[0]["good_res"] == "GOOD P1"


def test_a_failed_judge_call_is_retried_on_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    flaky = FakeLLM(fn=lambda r, i: LLMServerError("down") if "P2" in request_text(r) else "[[A]]")
    kwargs = dict(judge=PairwiseJudge(flaky))
    report = build_pairs(items("P1", "P2"), answerer(), out, **kwargs)  # type: ignore[arg-type]
    assert report.dropped.get("judge_error") == 1
    flaky._fn = judge_fake("agree")._fn  # the judge recovers
    again = build_pairs(items("P1", "P2"), answerer(), out, **kwargs)  # type: ignore[arg-type]
    assert again.processed == 1 and again.resumed == 1 and "judge_error" not in again.dropped


# --------------------------------------------------------------------------- resume and settings


def test_resume_skips_decided_prompts_and_retries_failed_calls(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    first = build_pairs(
        items("P1", "P2", "P3"), answerer(fail_on="P2"), out, config=RLCDConfig(concurrency=2)
    )
    assert first.kept == 2 and first.dropped == {"llm_error": 1}
    llm = answerer()
    again = build_pairs(items("P1", "P2", "P3"), llm, out, config=RLCDConfig(concurrency=2))
    assert (again.processed, again.resumed, again.kept, again.dropped) == (1, 2, 3, {})
    assert len(llm.calls) == 2
    assert [r["instruction"] for r in rows(out)] == ["P1", "P3", "P2"]
    third = build_pairs(items("P1", "P2", "P3"), answerer(), out)
    assert third.processed == 0


def test_a_rerun_with_other_settings_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    build_pairs(items("P1"), answerer(), out)
    saved = json.loads(config_path(out).read_text())
    assert (saved["method"], saved["cues"], saved["positive"], saved["judge"]) == (
        "rlcd",
        "helpful",
        POS,
        None,
    )
    for kwargs in (
        {"config": RLCDConfig(cues="harmless")},
        {"config": RLCDConfig(temperature=0.2)},
        {"judge": PairwiseJudge(judge_fake())},
    ):
        with pytest.raises(DataError, match="other settings"):
            build_pairs(items("P1"), answerer(), out, **kwargs)  # type: ignore[arg-type]
    build_pairs(items("P1"), answerer(), out, config=RLCDConfig(concurrency=3))  # concurrency may change


def test_a_spent_budget_stops_after_recording_the_batch(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    llm = FakeLLM(
        fn=lambda r, i: BudgetExceededError("spent") if "P2" in request_text(r) else "x " + str(r.seed)
    )
    report = build_pairs(items("P1", "P2", "P3", "P4"), llm, out, config=RLCDConfig(concurrency=2))
    assert report.stopped == "budget" and report.processed == 2


# --------------------------------------------------------------------------- prompt sources


def test_load_prompts_from_jsonl_json_txt_with_fields(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"prompt": "A1"}, {"prompt": ""}, {"prompt": "A2"}])
    got = load_prompts(tmp_path / "a.jsonl")
    assert [i.instruction for i in got.items] == ["A1", "A2"] and got.skipped == {"empty_prompt": 1}
    (tmp_path / "b.json").write_text(json.dumps([{"instruction": "B1", "context": "c"}]))
    got = load_prompts(tmp_path / "b.json")
    assert (got.prompt_field, got.context_field, got.items[0]) == (
        "instruction",
        "context",
        PromptItem("B1", "c"),
    )
    (tmp_path / "c.txt").write_text("one\n\ntwo\n")
    assert [i.instruction for i in load_prompts(tmp_path / "c.txt", limit=1).items] == ["one"]
    write_jsonl(tmp_path / "d.jsonl", [{"q": "D1", "text": "x"}])
    assert load_prompts(tmp_path / "d.jsonl", field_name="q").items == [PromptItem("D1")]
    with pytest.raises(DataError, match="--field"):
        load_prompts(tmp_path / "d.jsonl", field_name="nope")
    write_jsonl(tmp_path / "e.jsonl", [{"other": 1}])
    with pytest.raises(DataError, match="choose one with --field"):
        load_prompts(tmp_path / "e.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        load_prompts(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="--limit"):
        load_prompts(tmp_path / "a.jsonl", limit=0)


# --------------------------------------------------------------------------- CLI


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("build-pairs")(build_pairs_command)
    app.command("noop")(lambda: None)
    return app


def test_cli_build_pairs_writes_pairs_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.llm import factory

    models = {"m": answerer(), "j": judge_fake("agree")}
    monkeypatch.setattr(factory, "build_llm", lambda spec, **kw: models[spec])
    src = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "P1"}, {"prompt": "P2"}])
    out = tmp_path / "pairs.jsonl"
    args = ["build-pairs", "--prompts", str(src), "--out", str(out), "--model", "m", "--judge-model", "j"]
    res = CliRunner().invoke(cli_app(), [*args, "--cues", "both"])
    assert res.exit_code == 0, res.output
    assert "kept" in res.output and "agrees with the RLCD label on 100.0%" in res.output
    assert "bpo build-data --input" in res.output
    assert [r["cues"] for r in rows(out)] == ["both", "both"]
    res = CliRunner().invoke(cli_app(), [*args, "--cues", "nice"])
    assert isinstance(res.exception, UnknownNameError)
    res = CliRunner().invoke(cli_app(), [*args, "--concurrency", "0"])
    assert isinstance(res.exception, ConfigError)


def test_cli_build_pairs_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from promptopt.cli import main

    with pytest.raises(SystemExit) as exc:
        main(
            [
                "bpo",
                "build-pairs",
                "--prompts",
                str(tmp_path / "none.jsonl"),
                "--out",
                str(tmp_path / "o.jsonl"),
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
