"""`promptopt bpo build-data` and `promptopt bpo eval`: parse flags, call the library, print.

Plain functions with typer defaults in their signatures; ``promptopt.cli.bpo`` registers them on
the ``bpo`` sub-app. No logic beyond choosing inputs and printing lives here.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from promptopt.cli.common import (
    DEFAULT_MODEL,
    build_progress,
    console,
    counts_table,
    err_console,
    print_stopped,
)
from promptopt.evaluators.pairwise_eval import EvalConfig, EvalJob, EvalSummary, run_eval
from promptopt.optimizers.bpo.build import BuildConfig, BuildDataJob, BuildReport, run_build_data
from promptopt.optimizers.bpo.pairs import PAIR_PRESETS, LoadedPairs, parse_mapping
from promptopt.optimizers.bpo.testsets import TESTSETS
from promptopt.runs import StopFlag

TRACK_HELP = (
    "Experiment tracking: mlflow[:TRACKING_URI] (the `track` extra), e.g. mlflow:sqlite:///mlflow.db; "
    "a rerun into the same output continues the tracked run."
)


def _fmt(x: float) -> str:
    return "nan" if x != x else f"{x:+.1f}"


# --------------------------------------------------------------------------- build-data


def build_data_command(
    input_: str = typer.Option(
        ..., "--input", "-i", help="Preference pairs: a JSON/JSONL file, a dataset folder or a HF dataset id."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output JSONL of kept records (dropped ones and the settings go beside it)."
    ),
    preset: str = typer.Option("auto", "--preset", help=f"Column layout: auto, {', '.join(PAIR_PRESETS)}."),
    map_: list[str] = typer.Option(
        [], "--map", help="Override a column: KEY=COLUMN with KEY in instruction, context, good, bad."
    ),
    split: str = typer.Option("train", "--split", help="Split of a HF dataset."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model spec of the data builder LLM."),
    limit: int | None = typer.Option(None, "--limit", help="Use the first N usable pairs."),
    concurrency: int = typer.Option(8, "--concurrency", help="Pairs sent to the model at once."),
    temperature: float = typer.Option(
        0.9, "--temperature", help="Sampling temperature (default 0.9 as in BPO; 0: deterministic, cached)."
    ),
    max_tokens: int = typer.Option(768, "--max-tokens", help="Token limit of each critique + rewrite."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (per item, order-independent)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the request cache."),
    track: str | None = typer.Option(None, "--track", help=TRACK_HELP),
) -> None:
    """Build (prompt, optimized prompt) training data from preference pairs with an LLM (resumable)."""
    job = BuildDataJob(
        input=input_,
        out=out,
        model=model,
        preset=preset,
        mapping=parse_mapping(map_),
        split=split,
        limit=limit,
        config=BuildConfig(
            concurrency=concurrency, temperature=temperature, max_tokens=max_tokens, seed=seed
        ),
        cache=not no_cache,
    )
    err = err_console()

    def loaded(lp: LoadedPairs) -> None:
        skipped = sum(lp.skipped.values())
        extra = f", {skipped} rows skipped: {lp.skipped}" if skipped else ""
        err.print(f"{len(lp.pairs)} pairs from {input_} (preset {lp.preset}){extra}", soft_wrap=True)

    progress = build_progress(err)

    stop = StopFlag()
    with stop.handle_sigint():
        result = run_build_data(
            job, on_loaded=loaded, progress=progress, should_stop=stop.is_set, track=track
        )
    _print_build(result.report, result.loaded, out)


def _print_build(report: BuildReport, loaded: LoadedPairs, out: Path) -> None:
    table = counts_table(f"build-data → {out}", report)
    for reason, n in sorted(loaded.skipped.items()):
        table.add_row(f"input skipped: {reason}", str(n))
    table.add_row("total decided", str(report.total))
    con = console()
    con.print(table)
    con.print(
        f"{report.processed} sent to the model this run, {report.resumed} already done; "
        f"{report.seconds:.1f} s. Dropped records (with the raw model output): {report.dropped_out}"
    )
    print_stopped(con, report.stopped)


# --------------------------------------------------------------------------- eval


def eval_command(
    testset: list[str] = typer.Option(
        ..., "--testset", "-t", help=f"{', '.join(TESTSETS)}, or a JSON/JSONL file (repeatable)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (per-item JSONL, summary, chart)."),
    rewriter: str | None = typer.Option(None, "--rewriter", help="Trained rewriter folder or HF id."),
    rewritten_field: str | None = typer.Option(
        None, "--rewritten-field", help="Take rewritten prompts from this field (bpo-test: optimized_prompt)."
    ),
    mode: str = typer.Option("default", "--mode", help="Rewriter mode: default or aggressive."),
    target_model: str = typer.Option(DEFAULT_MODEL, "--target-model", help="Model spec that answers."),
    judge_model: str = typer.Option(DEFAULT_MODEL, "--judge-model", help="Model spec of the judge."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="BPO data folder (else $PROMPTOPT_BPO_DATA_DIR)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="First N prompts of each test set."),
    concurrency: int = typer.Option(8, "--concurrency", help="Items processed at once."),
    target_temperature: float = typer.Option(
        0.7,
        "--target-temperature",
        help="Sampling temperature of the target's answers (default 0.7 as in BPO). Above 0 the "
        "answers are not cached and a rerun of finished items is not reproducible; 0 for cached answers.",
    ),
    max_tokens: int = typer.Option(
        2048,
        "--target-max-tokens",
        "--max-tokens",
        help="Token limit of the target's answers (default 2048 as in BPO; lower it for small local models).",
    ),
    judge_max_tokens: int = typer.Option(512, "--judge-max-tokens", help="Token limit of each judgement."),
    judge: str = typer.Option(
        "pairwise",
        "--judge",
        help="pairwise: MT-bench judge, both orders; rubric: each answer scored 0-5 (Self-Rewarding LMs "
        "additive rubric), win when the rewritten prompt's answer scores higher.",
    ),
    judge_temperature: float = typer.Option(
        0.0, "--judge-temperature", help="Judge sampling temperature (above 0 rubric scores are averaged)."
    ),
    judge_samples: int | None = typer.Option(
        None, "--judge-samples", help="Rubric judgements averaged per answer above temperature 0 (default 3)."
    ),
    bootstrap: int = typer.Option(10_000, "--bootstrap", help="Bootstrap replicates for the CI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the models and the bootstrap."),
    track: str | None = typer.Option(None, "--track", help=TRACK_HELP),
) -> None:
    """Judge a target model's answers to original vs rewritten prompts; print win/tie/loss and ΔWR."""
    config = EvalConfig(
        concurrency=concurrency,
        max_tokens=max_tokens,
        seed=seed,
        n_boot=bootstrap,
        target_temperature=target_temperature,
    )
    job = EvalJob(
        testsets=tuple(testset),
        out=out,
        rewriter=rewriter,
        rewritten_field=rewritten_field,
        mode=mode,
        target_model=target_model,
        judge_model=judge_model,
        data_dir=data_dir,
        limit=limit,
        judge_max_tokens=judge_max_tokens,
        config=config,
        judge=judge,
        judge_temperature=judge_temperature,
        judge_samples=judge_samples,
    )
    err = err_console()
    stop = StopFlag()
    with stop.handle_sigint():
        summary = run_eval(
            job,
            progress=lambda name, d, t: err.print(f"  {name}: {d}/{t}"),
            should_stop=stop.is_set,
            track=track,
        )
    _print_eval(summary, out)


def _print_eval(summary: EvalSummary, out: Path) -> None:
    table = Table(title="BPO evaluation (rewritten vs original)")
    for col in ("test set", "n", "win", "tie", "loss", "ΔWR", "95% CI"):
        table.add_column(col, justify="left" if col == "test set" else "right")
    for r in summary.results:
        s = r.stats
        table.add_row(
            r.testset,
            str(s.n),
            f"{s.win_pct:.1f}%",
            f"{s.tie_pct:.1f}%",
            f"{s.loss_pct:.1f}%",
            _fmt(s.delta_wr),
            f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]",
        )
    con = console()
    con.print(table)
    con.print(f"Rule: {summary.rule}.")
    for r in summary.results:
        notes = []
        if r.unparsed_verdicts:
            notes.append(f"{r.unparsed_verdicts} unparseable verdicts or scores (counted as ties)")
        if r.identical_answers:
            notes.append(f"{r.identical_answers} identical answer pairs (ties, not judged)")
        if r.errors:
            notes.append(f"{r.errors} items failed (rerun to retry)")
        if notes:
            con.print(f"{r.testset}: " + "; ".join(notes))
    con.print(f"Per-item records, summary.json, summary.md and winrate.png in {out}")
    print_stopped(con, summary.stopped)
