"""BPO data building: templates, output parsing, filters, context, dedup, loaders, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from promptopt.cli.bpo_eval import build_data_command
from promptopt.errors import ConfigError, DataError, UnknownNameError
from promptopt.llm.base import LLMServerError
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.bpo.build import (
    MARKER,
    BuildConfig,
    attach_context,
    build_rewrite_data,
    config_path,
    dropped_path,
    judge_output,
    load_rewrite_pairs,
    pair_id,
    parse_builder_output,
    render_prompt,
)
from promptopt.optimizers.bpo.pairs import (
    PreferencePair,
    load_pairs,
    pairs_from_rows,
    parse_mapping,
    split_hh_transcript,
)


def reply(optimized: str, critique: str = "The good response is more accurate.") -> str:
    return f"Detailed Comparison Result: {critique}\n{MARKER} {optimized} [END]"


PAIR = PreferencePair("Tell me about cats", "Cats are small carnivores...", "idk")


# --------------------------------------------------------------------------- templates


def test_no_context_template_has_the_rules_and_both_responses_in_order() -> None:
    text = render_prompt(PAIR)
    assert 'instruction: "Tell me about cats"' in text
    assert text.index("bad response") < text.index("good response")
    assert "Cats are small carnivores" in text and '"idk"' in text
    assert "correctness" in text and "harmless" in text
    assert "Never answer the original instruction" in text
    assert "context:" not in text
    assert text.rstrip().endswith(f"{MARKER} xxx [END]")


def test_no_context_template_keeps_the_safety_rule() -> None:
    """The reference's rule 1 (without context): unsafe prompts are rewritten to be harmless."""
    text = render_prompt(PAIR)
    assert "1. If the instruction raises any safety issue, rewrite it to be completely harmless" in text
    assert "safe on the same topic" in text
    assert "safety issue" not in render_prompt(PreferencePair("Summarize", "g", "b", context="c"))


def test_context_template_shows_context_and_forbids_changing_it() -> None:
    text = render_prompt(PreferencePair("Summarize this", "good", "bad", context="The text."))
    assert 'context:\n"The text."' in text
    assert "Do not change the context" in text


def test_placeholders_in_user_text_are_not_expanded() -> None:
    pair = PreferencePair("Fill {good} and {context}", "uses {bad}", "b")
    text = render_prompt(pair)
    assert "Fill {good} and {context}" in text
    assert '"uses {bad}"' in text


# --------------------------------------------------------------------------- parsing and filters


def test_parse_takes_text_after_last_marker_until_end_and_unquotes() -> None:
    out = "Detailed Comparison Result: A is better.\nOptimized Instruction: xxx\n" + reply('"Explain cats."')
    parsed = parse_builder_output(out)
    assert parsed is not None
    assert parsed.optimized == "Explain cats."
    assert "A is better" in parsed.critique


def test_parse_accepts_markdown_marker_and_missing_end() -> None:
    parsed = parse_builder_output("**Optimized Instruction:** Describe cats in detail.")
    assert parsed is not None and parsed.optimized == "Describe cats in detail."


@pytest.mark.parametrize(
    "rest",
    [
        "\n```\nDescribe cats in detail.\n```",
        "\n```text\nDescribe cats in detail.\n```\n",
        " `Describe cats in detail.`",
        " **Describe cats in detail.**",
    ],
)
def test_parse_strips_a_code_fence_or_markdown_around_the_rewrite(rest: str) -> None:
    """Small models fence or bold the rewrite; the fence used to go into the training target."""
    parsed = parse_builder_output(f"Optimized Instruction:{rest}")
    assert parsed is not None and parsed.optimized == "Describe cats in detail."


def test_parse_without_marker_is_none() -> None:
    assert parse_builder_output("Cats are great pets.") is None


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("no marker here", "no_marker"),
        (reply(""), "empty"),
        (reply("xxx"), "placeholder"),
        (reply("Tell me about cats [PROTECTED] please"), "placeholder"),
        (reply("Cats?"), "too_short"),  # 4 words / 1 word > 2
        (reply(" ".join(["word"] * 25)), "too_long"),  # 25 / 4 > 6
    ],
)
def test_filters_drop_with_reason(output: str, reason: str) -> None:
    v = judge_output(PAIR, output)
    assert v.status == "dropped"
    assert v.reason == reason


def test_length_limits_are_inclusive_at_the_paper_ratios() -> None:
    # 4-word prompt: 2 words is exactly 2x shorter (kept), 24 words exactly 6x longer (kept).
    assert judge_output(PAIR, reply("Describe cats")).status == "kept"
    assert judge_output(PAIR, reply(" ".join(["w"] * 24))).status == "kept"
    assert judge_output(PAIR, reply(" ".join(["w"] * 25))).reason == "too_long"


def test_shrink_limit_is_two_not_three() -> None:
    five = PreferencePair("one two three four five", "g", "b")
    assert judge_output(five, reply("alpha beta")).reason == "too_short"  # 2.5x shorter
    assert judge_output(five, reply("alpha beta gamma")).status == "kept"  # 1.67x


def test_pairs_with_context_are_not_length_filtered_like_the_reference() -> None:
    """The reference (process_ctx) keeps context pairs whatever the length ratio."""
    ctx = PreferencePair("Summarize the text below now", "g", "b", context="Cats sleep.")
    no_ctx = PreferencePair("Summarize the text below now", "g", "b")
    long = " ".join(["word"] * 40)  # 8x longer
    assert judge_output(no_ctx, reply(long)).reason == "too_long"
    assert judge_output(ctx, reply(long)).status == "kept"
    assert judge_output(no_ctx, reply("Summarize")).reason == "too_short"  # 5x shorter
    kept = judge_output(ctx, reply("Summarize"))
    assert kept.status == "kept" and kept.optimized_prompt == "Summarize\nCats sleep."
    assert judge_output(ctx, reply("Summarize [protected] it")).reason == "placeholder"  # still dropped


def test_context_reattached_on_both_sides() -> None:
    pair = PreferencePair("Summarize the text", "g", "b", context="Cats sleep a lot.")
    v = judge_output(pair, reply("Summarize the text in one clear sentence"))
    assert v.status == "kept"
    assert v.prompt == "Summarize the text\nCats sleep a lot."
    assert v.optimized_prompt == "Summarize the text in one clear sentence\nCats sleep a lot."


def test_context_not_duplicated_when_rewrite_quotes_it() -> None:
    p, o = attach_context("Summarize", "Summarize briefly: cats sleep a lot.", "Cats sleep a lot.")
    assert p == "Summarize\nCats sleep a lot."
    assert o == "Summarize briefly: cats sleep a lot."


@pytest.mark.parametrize(
    ("optimized", "context"),
    [
        ("Classify the sentiment of the review as good or bad.", "good"),
        ("Add the numbers and give the sum, for example 4 + 5.", "4"),
        ("Translate the greeting into French, keeping its tone.", "greeting"),
    ],
)
def test_context_reattached_when_the_rewrite_only_happens_to_contain_it(optimized: str, context: str) -> None:
    """A short context ("good") inside a word run of the rewrite is not the rewrite quoting it:
    the context used to be dropped from the optimized prompt (kept on the prompt side only)."""
    p, o = attach_context("Do it.", optimized, context)
    assert p == f"Do it.\n{context}"
    assert o == f"{optimized}\n{context}"


@pytest.mark.parametrize(
    "optimized",
    [
        "Translate the following English text into French: Hello",
        "Translate the following English text into French:\nHello\nKeep the tone.",
        'Translate "Hello" into French.',
        "Translate into French: hello.",
    ],
)
def test_context_quoted_as_a_block_is_not_attached_again(optimized: str) -> None:
    assert attach_context("Translate.", optimized, "Hello")[1] == optimized


def test_length_ratio_uses_instruction_not_context() -> None:
    pair = PreferencePair("Summarize", "g", "b", context=" ".join(["ctx"] * 50))
    assert judge_output(pair, reply("Summarize the passage in two sentences")).status == "kept"


# --------------------------------------------------------------------------- builder


def pairs(n: int) -> list[PreferencePair]:
    return [PreferencePair(f"Question number {i} about topic", f"good {i}", f"bad {i}") for i in range(n)]


def by_question(mapping: dict[int, str]) -> FakeLLM:
    """A fake builder whose reply depends on which pair it sees."""

    def fn(request, _i):  # type: ignore[no-untyped-def]
        text = request_text(request)
        for k, v in mapping.items():
            if f"Question number {k} about" in text:
                return v
        return reply("Please answer question carefully and accurately")

    return FakeLLM(fn=fn)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_build_counts_kept_and_dropped_per_reason(tmp_path: Path) -> None:
    llm = by_question({1: "garbage", 2: reply("x"), 3: reply("Question number 3 about topic [protected]")})
    out = tmp_path / "data.jsonl"
    report = build_rewrite_data(pairs(5), llm, out, config=BuildConfig(concurrency=2))
    assert report.kept == 2
    assert report.dropped == {"no_marker": 1, "too_short": 1, "placeholder": 1}
    kept = read(out)
    assert [r["status"] for r in kept] == ["kept", "kept"]
    assert kept[0]["prompt"] == "Question number 0 about topic"
    assert kept[0]["optimized_prompt"] == "Please answer question carefully and accurately"
    assert kept[0]["critique"] == "The good response is more accurate."
    assert kept[0]["source"]["good_res"] == "good 0"
    dropped = read(dropped_path(out))
    assert {r["reason"] for r in dropped} == {"no_marker", "too_short", "placeholder"}
    assert all("raw_output" in r for r in dropped)
    assert load_rewrite_pairs(out) == [(r["prompt"], r["optimized_prompt"]) for r in kept]


def test_output_cut_off_by_the_token_limit_is_dropped_as_truncated(tmp_path: Path) -> None:
    """The [END] stop is cut from the text, so a rewrite cut off mid-sentence by max_tokens used
    to read as a whole one and go into the training data."""
    full = "Please answer question number 0 about the topic carefully, in detail, with examples"
    llm = FakeLLM(default=f"Detailed Comparison Result: ok\n{MARKER} {full} [END]")
    out = tmp_path / "t.jsonl"
    report = build_rewrite_data(pairs(1), llm, out, config=BuildConfig(max_tokens=12))
    assert report.kept == 0 and report.dropped == {"truncated": 1}
    (rec,) = read(dropped_path(out))
    assert rec["reason"] == "truncated" and rec["raw_output"].endswith(
        "Please answer question number 0 about"
    )
    assert (
        build_rewrite_data(pairs(1), llm, tmp_path / "w.jsonl", config=BuildConfig(max_tokens=40)).kept == 1
    )


def test_duplicate_prompts_keep_the_first(tmp_path: Path) -> None:
    same = [PreferencePair("Same question here", f"g{i}", f"b{i}") for i in range(3)]
    llm = FakeLLM(default=reply("Answer the same question here well"))
    report = build_rewrite_data(same, llm, tmp_path / "o.jsonl", config=BuildConfig(concurrency=1))
    assert report.kept == 1 and report.dropped == {"duplicate": 2}


def test_exact_duplicate_input_pairs_are_built_once(tmp_path: Path) -> None:
    llm = FakeLLM(default=reply("Answer the same question here well"))
    report = build_rewrite_data([PAIR, PAIR], llm, tmp_path / "o.jsonl")
    assert len(llm.calls) == 1 and report.kept == 1


def test_default_temperature_is_the_references_0_9(tmp_path: Path) -> None:
    llm = FakeLLM(default=reply("Please answer question carefully and accurately"))
    build_rewrite_data(pairs(2), llm, tmp_path / "a.jsonl")
    assert {r.temperature for r in llm.calls} == {0.9}


def test_dropped_records_keep_the_raw_output_redacted(tmp_path: Path) -> None:
    raw = "I refuse. See http://admin:hunter2@internal.example/x for why."
    build_rewrite_data(pairs(1), FakeLLM(default=raw), tmp_path / "d.jsonl")
    (rec,) = read(dropped_path(tmp_path / "d.jsonl"))
    assert rec["reason"] == "no_marker"
    assert rec["raw_output"] == "I refuse. See http://internal.example/x for why."


def test_a_rerun_with_other_settings_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    build_rewrite_data(pairs(2), by_question({}), out, config=BuildConfig(concurrency=1))
    settings = config_path(out)
    assert json.loads(settings.read_text())["temperature"] == 0.9
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for cfg in (BuildConfig(temperature=0.0), BuildConfig(max_tokens=5), BuildConfig(seed=1)):
        with pytest.raises(DataError, match="other settings"):
            build_rewrite_data(pairs(3), by_question({}), out, config=cfg)
    with pytest.raises(DataError, match="model"):
        build_rewrite_data(pairs(3), FakeLLM(default="x", name="other"), out)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    more = by_question({})
    report = build_rewrite_data(
        pairs(3), more, out, config=BuildConfig(concurrency=3)
    )  # concurrency may change
    assert len(more.calls) == 1 and report.kept == 3


def test_output_from_before_settings_files_is_continued(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    build_rewrite_data(pairs(1), by_question({}), out)
    config_path(out).unlink()
    again = by_question({})
    assert build_rewrite_data(pairs(2), again, out).kept == 2 and len(again.calls) == 1
    assert config_path(out).exists()


def test_requests_use_config_and_stable_per_item_seeds(tmp_path: Path) -> None:
    llm = FakeLLM(default=reply("Please answer question carefully and accurately"))
    cfg = BuildConfig(concurrency=3, temperature=0.7, max_tokens=99, seed=5)
    build_rewrite_data(pairs(3), llm, tmp_path / "a.jsonl", config=cfg)
    assert {r.temperature for r in llm.calls} == {0.7}
    assert {r.max_tokens for r in llm.calls} == {99}
    assert {r.stop for r in llm.calls} == {("[END]",)}  # generation ends at the marked instruction
    seeds = [r.seed for r in llm.calls]
    assert len(set(seeds)) == 3
    again = FakeLLM(default=reply("Please answer question carefully and accurately"))
    build_rewrite_data(list(reversed(pairs(3))), again, tmp_path / "b.jsonl", config=cfg)
    assert sorted(r.seed for r in again.calls) == sorted(seeds)  # order-independent


def test_llm_errors_are_recorded_and_retried_on_rerun(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    failing = by_question({1: LLMServerError("503 from server")})  # type: ignore[dict-item]
    r1 = build_rewrite_data(pairs(3), failing, out)
    assert r1.kept == 2 and r1.dropped == {"llm_error": 1}
    assert read(dropped_path(out))[0]["error"].startswith("503")
    ok = by_question({})
    r2 = build_rewrite_data(pairs(3), ok, out)
    assert len(ok.calls) == 1  # only the failed one is asked again
    assert r2.kept == 3 and r2.dropped == {} and r2.resumed == 2


def test_resume_after_torn_last_line_skips_done_items(tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    first = by_question({})
    stop_after = iter([False, True])
    r1 = build_rewrite_data(
        pairs(6), first, out, config=BuildConfig(concurrency=2), should_stop=lambda: next(stop_after)
    )
    assert r1.kept == 2 and r1.stopped == "stop requested"
    with open(out, "a") as fh:  # a kill in the middle of writing a record
        fh.write('{"id": "torn", "status": "ke')
    second = by_question({})
    r2 = build_rewrite_data(pairs(6), second, out, config=BuildConfig(concurrency=2))
    assert len(second.calls) == 4
    assert r2.kept == 6 and r2.resumed == 2
    records = read(out)  # the torn line is gone, every line parses
    assert sorted(r["id"] for r in records) == sorted(pair_id(p) for p in pairs(6))


BUILD_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from promptopt.llm.fake import FakeLLM
    from promptopt.optimizers.bpo.build import BuildConfig, build_rewrite_data
    from promptopt.optimizers.bpo.pairs import PreferencePair

    def slow(request, i):
        time.sleep(0.15)
        return "Detailed Comparison Result: ok\\nOptimized Instruction: Please answer question carefully [END]"

    pairs = [PreferencePair(f"Question number {i} about topic", "g", "b") for i in range(40)]
    build_rewrite_data(pairs, FakeLLM(fn=slow, max_concurrency=1), sys.argv[1], config=BuildConfig(concurrency=1))
    """
)


def test_sigkilled_build_continues_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "killed.jsonl"
    script = tmp_path / "build.py"
    script.write_text(BUILD_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done_before = len({r["id"] for r in read(out)})
    assert 3 <= done_before < 40
    llm = FakeLLM(default=reply("Please answer question carefully"))
    all_pairs = [PreferencePair(f"Question number {i} about topic", "g", "b") for i in range(40)]
    report = build_rewrite_data(all_pairs, llm, out)
    assert len(llm.calls) == 40 - done_before
    assert report.kept == 40 and report.resumed == done_before
    assert len(read(out)) == 40


# --------------------------------------------------------------------------- loaders


def test_bpo_preset_and_auto_detection(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Q1", "context": "", "good_res": "g", "bad_res": "b", "source": "x"},
        {"instruction": "Q2", "context": "ctx", "good_res": "g", "bad_res": "b"},
        {"instruction": "", "context": "", "good_res": "g", "bad_res": "b"},
    ]
    f = tmp_path / "p.json"
    f.write_text(json.dumps(rows))
    loaded = load_pairs(f)
    assert loaded.preset == "bpo"
    assert [p.instruction for p in loaded.pairs] == ["Q1", "Q2"]
    assert loaded.pairs[1].context == "ctx"
    assert loaded.pairs[0].meta == {"source": "x"}
    assert loaded.skipped == {"empty_prompt": 1}


def test_bpo_preset_reads_prompt_column_of_bpo_test() -> None:
    got = pairs_from_rows([{"prompt": "P", "optimized_prompt": "O", "good_res": "g", "bad_res": "b"}])
    assert got.pairs[0].instruction == "P"


def test_hh_rlhf_preset_keeps_single_turn() -> None:
    single = {
        "chosen": "\n\nHuman: Hi there?\n\nAssistant: Hello!",
        "rejected": "\n\nHuman: Hi there?\n\nAssistant: Go away.",
    }
    multi = {
        "chosen": "\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: D",
        "rejected": "\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: E",
    }
    loaded = pairs_from_rows([single, multi], preset="hh-rlhf")
    assert loaded.pairs == [PreferencePair("Hi there?", "Hello!", "Go away.")]
    assert loaded.skipped == {"multi_turn": 1}
    assert pairs_from_rows([single]).preset == "hh-rlhf"


def test_split_hh_transcript() -> None:
    turns, last = split_hh_transcript("\n\nHuman: A\n\nAssistant: B\n\nHuman: C\n\nAssistant: D")  # type: ignore[misc]
    assert turns == [("user", "A"), ("assistant", "B"), ("user", "C")]
    assert last == "D"
    assert split_hh_transcript("\n\nHuman: only a question") is None


def test_chosen_rejected_message_lists() -> None:
    row = {
        "prompt": "What is 2+2?",
        "chosen": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
        "rejected": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "5"}],
    }
    loaded = pairs_from_rows([row])
    assert loaded.preset == "chosen-rejected"
    assert loaded.pairs == [PreferencePair("What is 2+2?", "4", "5")]


def test_map_overrides_columns() -> None:
    rows = [{"q": "Why?", "better": "Because.", "worse": "No."}]
    loaded = pairs_from_rows(
        rows, preset="columns", mapping=parse_mapping(["instruction=q", "good=better", "bad=worse"])
    )
    assert loaded.pairs == [PreferencePair("Why?", "Because.", "No.")]


@pytest.mark.parametrize("bad", ["instruction", "nokey=x", "=x", "good="])
def test_bad_map_is_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_mapping([bad])


def test_unknown_layout_and_missing_columns_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--preset"):
        pairs_from_rows([{"a": 1}])
    with pytest.raises(DataError, match="expects column"):
        pairs_from_rows([{"x": "q"}], preset="columns")
    with pytest.raises(UnknownNameError):
        pairs_from_rows([{"x": "q"}], preset="nope")
    with pytest.raises(DataError, match="does not exist"):
        load_pairs(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(DataError, match="line 2"):
        load_pairs(bad)


def test_dataset_folder_goes_through_datasets(tmp_path: Path) -> None:
    """The Hub path (datasets.load_dataset) exercised with a local folder."""
    folder = tmp_path / "hf"
    folder.mkdir()
    rows = [{"prompt": f"Q{i}", "chosen": "c", "rejected": "r"} for i in range(3)]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = load_pairs(str(folder), limit=2)
    assert [p.instruction for p in loaded.pairs] == ["Q0", "Q1"]


def test_hub_failure_is_a_one_line_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    seen = {}

    def offline(source, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(source=source, **kwargs)
        raise ConnectionError("Couldn't reach 'x/y' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="cannot load Hugging Face dataset 'owner/name'") as info:
        load_pairs("owner/name", split="test")
    assert "\n" not in str(info.value)
    assert seen["source"] == "owner/name" and seen["split"] == "test"
    with pytest.raises(DataError, match="neither an existing file"):
        load_pairs("not-a-hub-id")


# --------------------------------------------------------------------------- CLI


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("build-data")(build_data_command)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from flattening the app
        pass

    return app


def test_cli_build_data_prints_counts(tmp_path: Path) -> None:
    rows = [{"instruction": f"Question {i} about things", "good_res": "g", "bad_res": "b"} for i in range(3)]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out.jsonl"
    spec = "fake:Detailed Comparison Result: fine\nOptimized Instruction: Question about things, answered in detail [END]"
    res = CliRunner().invoke(
        cli_app(), ["build-data", "--input", str(src), "--out", str(out), "--model", spec, "--limit", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "kept" in res.output and "total decided" in res.output
    kept = read(out)
    assert [r["prompt"] for r in kept] == ["Question 0 about things", "Question 1 about things"]
    assert {r["optimized_prompt"] for r in kept} == {"Question about things, answered in detail"}


def test_cli_build_data_bad_input_is_a_promptopt_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli_app(), ["build-data", "--input", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o.jsonl")]
    )
    assert isinstance(res.exception, DataError)


def test_cli_build_data_defaults_to_temperature_0_9_and_keeps_the_flag(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"instruction": "Question about things", "good_res": "g", "bad_res": "b"}))
    spec = (
        "fake:Detailed Comparison Result: fine\nOptimized Instruction: Question about things, in detail [END]"
    )
    for temp, out in ((None, "a.jsonl"), ("0", "b.jsonl")):
        argv = ["build-data", "-i", str(src), "-o", str(tmp_path / out), "-m", spec, "--no-cache"]
        res = CliRunner().invoke(cli_app(), argv + (["--temperature", temp] if temp else []))
        assert res.exit_code == 0, res.output
        saved = json.loads(config_path(tmp_path / out).read_text())
        assert saved["temperature"] == (0.9 if temp is None else 0.0)


def test_cli_build_data_against_a_closed_port_is_a_few_lines_and_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptopt.cli import main
    from promptopt.llm import openai_compat

    monkeypatch.setattr(openai_compat.Backoff, "__call__", lambda self, state: 0.0)  # no sleeps
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    rows = [{"instruction": f"Question {i} about things", "good_res": "g", "bad_res": "b"} for i in range(8)]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    argv = ["bpo", "build-data", "-i", str(src), "-o", str(tmp_path / "o.jsonl")]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--model", "openai:m@http://127.0.0.1:1/v1", "--concurrency", "8"])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) <= 3, lines  # 8 requests x 5 attempts used to print 32 retry lines
    assert lines[-1].startswith("promptopt: error: ") and "127.0.0.1:1" in lines[-1]
    assert not (tmp_path / "o.jsonl").read_text()  # nothing recorded for the batch
