"""BPO evaluation pipeline: test-set loading, answering + judging, resume, summary files, CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from promptopt.cli.bpo_eval import eval_command
from promptopt.errors import ConfigError, DataError, RunDirError, UnknownNameError
from promptopt.evaluators.judge import PairwiseJudge
from promptopt.evaluators.pairwise_eval import EvalConfig, EvalJob, evaluate
from promptopt.llm.base import LLMServerError, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.bpo.testsets import DATA_DIR_ENV, TestItem, TestSet, load_testset

# --------------------------------------------------------------------------- data fixtures


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A miniature BPO data folder with the real layouts of the four test sets."""
    d = tmp_path / "bpo" / "testset"
    d.mkdir(parents=True)
    (d / "vicuna_eval.jsonl").write_text(
        "\n".join(
            json.dumps({"question_id": i + 1, "text": f"Vicuna question {i}?", "category": "generic"})
            for i in range(5)
        )
    )
    (d / "self_instruct_eval.json").write_text(
        json.dumps(
            [
                {
                    "id": "t0",
                    "category": "c",
                    "instruction": "Rewrite it.",
                    "context": "Some text.",
                    "output": "o",
                }
            ]
        )
    )
    (d / "dolly_eval.json").write_text(
        json.dumps([{"instruction": "Who?", "context": "", "response": "r", "category": "qa", "idx": 0}])
    )
    (d / "bpo_test.json").write_text(
        json.dumps(
            [
                {
                    "prompt": f"P{i}",
                    "optimized_prompt": f"P{i}, explained in detail",
                    "good_res": "g",
                    "bad_res": "b",
                }
                for i in range(3)
            ]
        )
    )
    return tmp_path / "bpo"


def test_named_testsets_build_prompts_like_the_reference(data_dir: Path) -> None:
    v = load_testset("vicuna", data_dir=data_dir, limit=2)
    assert [(i.id, i.prompt) for i in v.items] == [("1", "Vicuna question 0?"), ("2", "Vicuna question 1?")]
    assert v.default_rewritten_field is None
    si = load_testset("self-instruct", data_dir=data_dir)
    assert si.items[0].prompt == "Rewrite it.\nSome text." and si.items[0].id == "t0"
    assert load_testset("dolly", data_dir=data_dir).items[0].prompt == "Who?"
    b = load_testset("bpo-test", data_dir=data_dir, rewritten_field="optimized_prompt")
    assert b.default_rewritten_field == "optimized_prompt"
    assert b.items[1] == TestItem("1", "P1", "P1, explained in detail", None)


def test_data_dir_from_environment(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    assert len(load_testset("vicuna").items) == 5
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir / "nope"))
    with pytest.raises(DataError, match=DATA_DIR_ENV):
        load_testset("vicuna")


def test_bpo_test_falls_back_to_the_hub(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    calls = []

    def loader(source: str, **kw: object) -> list[dict]:
        calls.append((source, kw))
        return [{"prompt": "hub prompt", "optimized_prompt": "hub rewrite"}]

    ts = load_testset("bpo-test", data_dir=empty, rewritten_field="optimized_prompt", loader=loader)
    assert calls == [("THUDM/BPO", {"split": "train", "data_files": "test.json"})]
    assert ts.items[0].rewritten == "hub rewrite"
    with pytest.raises(DataError, match="--data-dir"):
        load_testset("vicuna", data_dir=empty, loader=loader)


def test_any_jsonl_file_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "mine.jsonl"
    f.write_text('{"question": "Q?", "better": "Q? Be precise."}\n{"question": "R?", "better": "R!"}\n')
    ts = load_testset(str(f), rewritten_field="better")
    assert ts.name == "mine" and [i.id for i in ts.items] == ["0", "1"]
    assert ts.items[0].rewritten == "Q? Be precise."
    with pytest.raises(DataError, match="no text in field 'nope'"):
        load_testset(str(f), rewritten_field="nope")
    with pytest.raises(UnknownNameError, match="vicuna"):
        load_testset("no-such-set")
    with pytest.raises(ConfigError):
        load_testset(str(f), limit=0)


# --------------------------------------------------------------------------- pipeline


def target_fake() -> FakeLLM:
    """Answers a prompt containing 'detail' well and anything else plainly."""
    return FakeLLM(fn=lambda r, i: "GOOD thorough answer" if "detail" in request_text(r) else "plain answer")


def judge_fake(word: str = "GOOD") -> FakeLLM:
    def fn(request: Request, _i: int) -> str:
        text = request_text(request)
        a = text.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
        b = text.split("[The Start of Assistant B's Answer]\n")[1].split("\n[The End")[0]
        if (word in a) == (word in b):
            return "[[C]]"
        return "[[A]]" if word in a else "[[B]]"

    return FakeLLM(fn=fn)


def mixed_set() -> TestSet:
    items = [
        TestItem("1", "Q1", "Q1 in detail"),  # rewritten answer better -> win
        TestItem("2", "Q2 in detail", "Q2"),  # original better -> loss
        TestItem("3", "Q3", "Q3 please"),  # same answers -> tie, not judged
        TestItem("4", "Q4", "Q4 with detail"),  # win
    ]
    return TestSet("mixed", items)


def test_evaluate_outcomes_records_and_summary_files(tmp_path: Path) -> None:
    target, judge_llm = target_fake(), judge_fake()
    summary = evaluate(
        [mixed_set()],
        target=target,
        judge=PairwiseJudge(judge_llm),
        out_dir=tmp_path / "ev",
        config=EvalConfig(concurrency=3, max_tokens=50, n_boot=500),
    )
    (r,) = summary.results
    assert (r.stats.win, r.stats.tie, r.stats.loss) == (2, 1, 1)
    assert r.stats.delta_wr == pytest.approx(25.0)
    assert r.identical_answers == 1 and r.errors == 0
    assert len(target.calls) == 8 and {c.max_tokens for c in target.calls} == {50}
    assert len(judge_llm.calls) == 6  # item 3 had identical answers
    # the judge sees the original prompt as the question
    assert all("[User Question]\nQ3" not in request_text(c) for c in judge_llm.calls)
    records = [json.loads(x) for x in (tmp_path / "ev" / "mixed.jsonl").read_text().splitlines()]
    assert [x["outcome"] for x in records] == ["win", "loss", "tie", "win"]
    assert records[0]["answer_rewritten"] == "GOOD thorough answer"
    assert records[0]["judge"]["first_verdict"] == "B"
    data = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert data["testsets"][0]["delta_wr"] == pytest.approx(25.0)
    assert "both judge orders" in data["rule"]
    md = (tmp_path / "ev" / "summary.md").read_text()
    assert "| mixed | 4 | 2 (50.0%)" in md and "winrate.png" in md
    assert (tmp_path / "ev" / "winrate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rewriter_function_is_used_for_items_without_rewrite(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def rewrite(prompts: list[str]) -> list[str]:
        seen.append(prompts)
        return [p + " in detail" for p in prompts]

    ts = TestSet("r", [TestItem("a", "Qa"), TestItem("b", "Qb", "Qb kept as is")])
    summary = evaluate(
        [ts], target=target_fake(), judge=PairwiseJudge(judge_fake()), out_dir=tmp_path / "o", rewrite=rewrite
    )
    assert seen == [["Qa"]]
    assert (summary.results[0].stats.win, summary.results[0].stats.tie) == (1, 1)


def test_missing_rewrites_without_rewriter_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--rewriter"):
        evaluate(
            [TestSet("x", [TestItem("a", "Q")])],
            target=target_fake(),
            judge=PairwiseJudge(judge_fake()),
            out_dir=tmp_path / "o",
        )


def test_resume_continues_and_retries_errors(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    flaky = FakeLLM(
        fn=lambda r, i: LLMServerError("down") if "Q2" in request_text(r) else target_fake()._fn(r, i)  # type: ignore[misc]
    )

    def one_batch_done() -> bool:
        log = out / "mixed.jsonl"
        return log.exists() and len(log.read_text().splitlines()) >= 2

    first = evaluate(
        [mixed_set()],
        target=flaky,
        judge=PairwiseJudge(judge_fake()),
        out_dir=out,
        config=EvalConfig(concurrency=2),
        should_stop=one_batch_done,
    )
    assert first.results[0].stats.n == 1 and first.results[0].errors == 1
    target = target_fake()
    second = evaluate(
        [mixed_set()],
        target=target,
        judge=PairwiseJudge(judge_fake()),
        out_dir=out,
        config=EvalConfig(concurrency=2),
    )
    (r,) = second.results
    assert len(target.calls) == 6  # items 2 (retried), 3 and 4; item 1 was done
    assert (r.stats.n, r.stats.win, r.stats.tie, r.stats.loss, r.errors) == (4, 2, 1, 1, 0)


def test_other_settings_in_same_folder_are_refused(tmp_path: Path) -> None:
    kwargs = dict(target=target_fake(), judge=PairwiseJudge(judge_fake()), out_dir=tmp_path / "ev")
    evaluate([mixed_set()], **kwargs)  # type: ignore[arg-type]
    other = FakeLLM(default="x", name="other-model")
    with pytest.raises(RunDirError, match="target"):
        evaluate([mixed_set()], **{**kwargs, "target": other})  # type: ignore[arg-type]


def test_unparsed_judge_output_counts_as_tie_and_is_reported(tmp_path: Path) -> None:
    summary = evaluate(
        [TestSet("u", [TestItem("1", "Q", "Q in detail")])],
        target=target_fake(),
        judge=PairwiseJudge(FakeLLM(default="I like both.")),
        out_dir=tmp_path / "u",
    )
    assert summary.results[0].stats.tie == 1 and summary.results[0].unparsed_verdicts == 2


# --------------------------------------------------------------------------- CLI


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("eval")(eval_command)

    @app.command("noop")
    def _noop() -> None:
        pass

    return app


def test_cli_eval_prints_table_with_ci(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["eval", "--testset", "bpo-test", "--data-dir", str(data_dir), "--out", str(out)]
    args += ["--target-model", "fake:same answer", "--judge-model", "fake:[[C]]", "--bootstrap", "200"]
    res = CliRunner().invoke(cli_app(), args)
    assert res.exit_code == 0, res.output
    assert "bpo-test" in res.output and "95% CI" in res.output and "ΔWR" in res.output
    assert "3 identical answer pairs" in res.output
    assert (out / "bpo-test.jsonl").exists() and (out / "summary.md").exists()


def test_cli_eval_needs_a_rewrite_source_for_vicuna(data_dir: Path, tmp_path: Path) -> None:
    args = ["eval", "-t", "vicuna", "--data-dir", str(data_dir), "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(cli_app(), [*args, "--target-model", "fake:", "--judge-model", "fake:"])
    assert isinstance(res.exception, ConfigError)
    assert "--rewriter" in str(res.exception)
    res = CliRunner().invoke(cli_app(), [*args, "--rewriter", "x", "--rewritten-field", "y"])
    assert isinstance(res.exception, ConfigError)


# --------------------------------------------------------------------------- sampling, budget, jobs


def test_target_answers_default_to_the_reference_sampling(tmp_path: Path) -> None:
    assert (EvalConfig().target_temperature, EvalConfig().max_tokens) == (0.7, 2048)
    target = target_fake()
    evaluate([mixed_set()], target=target, judge=PairwiseJudge(judge_fake()), out_dir=tmp_path / "a")
    assert {(c.temperature, c.max_tokens) for c in target.calls} == {(0.7, 2048)}
    saved = json.loads((tmp_path / "a" / "eval_config.json").read_text())
    assert (saved["target_temperature"], saved["max_tokens"]) == (0.7, 2048)
    target = target_fake()
    cfg = EvalConfig(target_temperature=0.0, max_tokens=64)
    evaluate(
        [mixed_set()], target=target, judge=PairwiseJudge(judge_fake()), out_dir=tmp_path / "b", config=cfg
    )
    assert {(c.temperature, c.max_tokens) for c in target.calls} == {(0.0, 64)}
    with pytest.raises(ConfigError, match="--target-temperature"):
        EvalConfig(target_temperature=3.0)


def test_a_folder_from_before_target_temperature_was_stored_continues_at_temperature_0(
    tmp_path: Path,
) -> None:
    out = tmp_path / "ev"
    kwargs = dict(target=target_fake(), judge=PairwiseJudge(judge_fake()), out_dir=out)
    evaluate([mixed_set()], **kwargs, config=EvalConfig(target_temperature=0.0))  # type: ignore[arg-type]
    saved = json.loads((out / "eval_config.json").read_text())
    del saved["target_temperature"]
    (out / "eval_config.json").write_text(json.dumps(saved))
    evaluate([mixed_set()], **kwargs, config=EvalConfig(target_temperature=0.0))  # type: ignore[arg-type]
    with pytest.raises(RunDirError, match="target_temperature"):
        evaluate([mixed_set()], **kwargs, config=EvalConfig(target_temperature=0.7))  # type: ignore[arg-type]


def test_a_spent_budget_records_the_batch_and_stops(tmp_path: Path) -> None:
    from promptopt.llm.base import BudgetExceededError

    target = FakeLLM(
        fn=lambda r, i: (
            BudgetExceededError("max_calls reached") if "Q2" in request_text(r) else "plain answer"
        )  # type: ignore[misc]
    )
    out = tmp_path / "ev"
    summary = evaluate(
        [mixed_set(), TestSet("later", [TestItem("x", "Qx", "Qx!")])],
        target=target,
        judge=PairwiseJudge(judge_fake()),
        out_dir=out,
        config=EvalConfig(concurrency=2),
    )
    assert summary.stopped == "budget" and [r.testset for r in summary.results] == ["mixed"]
    records = [json.loads(x) for x in (out / "mixed.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in records] == [("1", "ok"), ("2", "error")]
    assert "BudgetExceededError" in records[1]["error"]


def test_eval_job_checks_its_flags_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        EvalJob(("x",), tmp_path, rewriter="r", rewritten_field="f")
    with pytest.raises(ConfigError, match="--mode"):
        EvalJob(("x",), tmp_path, mode="wild")
    with pytest.raises(ConfigError, match="--limit"):
        EvalJob(("x",), tmp_path, limit=0)
    assert not any(tmp_path.iterdir())


def test_cli_eval_sampling_flags_and_the_old_max_tokens_alias(data_dir: Path, tmp_path: Path) -> None:
    base = ["eval", "-t", "bpo-test", "--data-dir", str(data_dir), "--bootstrap", "20"]
    base += ["--target-model", "fake:same answer", "--judge-model", "fake:[[C]]"]
    for extra, want in (
        ([], (0.7, 2048)),
        (["--target-temperature", "0", "--target-max-tokens", "99"], (0.0, 99)),
        (["--max-tokens", "77"], (0.7, 77)),
    ):
        out = tmp_path / str(len(extra))
        res = CliRunner().invoke(cli_app(), [*base, "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        saved = json.loads((out / "eval_config.json").read_text())
        assert (saved["target_temperature"], saved["max_tokens"]) == want


def test_cli_eval_against_a_closed_port_is_a_few_lines_and_one_error(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptopt.cli import main
    from promptopt.llm import openai_compat

    monkeypatch.setattr(openai_compat.Backoff, "__call__", lambda self, state: 0.0)  # no sleeps
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    closed = "openai:m@http://127.0.0.1:1/v1"
    argv = ["bpo", "eval", "-t", "vicuna", "--data-dir", str(data_dir), "--out", str(tmp_path / "o")]
    argv += ["--rewritten-field", "text", "--target-model", closed, "--judge-model", closed]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) <= 3, lines  # 10 requests x 5 attempts used to print 40 retry lines
    assert lines[-1].startswith("promptopt: error: ") and "127.0.0.1:1" in lines[-1]
    assert not (tmp_path / "o" / "vicuna.jsonl").read_text()  # nothing recorded for the batch


def test_items_failing_from_an_outage_are_reasked_then_the_summary_says_incomplete(tmp_path: Path) -> None:
    """Issue 23 item 1 for bpo eval: a failed call is asked again within the run; an item that still
    fails leaves the win rate explicitly incomplete (and the CLI exits 2 after saving everything)."""
    from rich.console import Console

    from promptopt.cli.common import print_stopped
    from promptopt.llm.base import LLMOutageError

    down = FakeLLM(
        fn=lambda r, i: LLMServerError("down") if "Q2" in request_text(r) else target_fake()._fn(r, i)
    )  # type: ignore[misc]
    summary = evaluate([mixed_set()], target=down, judge=PairwiseJudge(judge_fake()), out_dir=tmp_path / "ev")
    assert sum("Q2" in request_text(r) for r in down.calls) == 2 * 3  # both prompts, asked three times
    assert summary.stopped == "outage" and summary.results[0].errors == 1
    saved = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert saved["complete"] is False and saved["stopped"] == "outage"
    with pytest.raises(LLMOutageError, match="rerun the same command"):
        print_stopped(Console(file=io.StringIO()), summary.stopped)
    again = evaluate(
        [mixed_set()], target=target_fake(), judge=PairwiseJudge(judge_fake()), out_dir=tmp_path / "ev"
    )
    assert again.stopped is None and json.loads((tmp_path / "ev" / "summary.json").read_text())["complete"]
