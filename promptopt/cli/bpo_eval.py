"""`promptopt bpo build-data` and `promptopt bpo eval`: parse flags, call the library, print.

Plain functions with typer defaults in their signatures; ``promptopt.cli.bpo`` registers them on
the ``bpo`` sub-app. No logic beyond choosing inputs and printing lives here.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from promptopt.optimizers.bpo.testsets import TESTSETS, TestSet, load_testset
from promptopt.optimizers.bpo.pairs import PAIR_PRESETS, load_pairs, parse_mapping
from promptopt.cli.common import DEFAULT_MODEL, console, err_console, open_model, positive
from promptopt.errors import ConfigError
from promptopt.evaluators.pairwise_eval import EvalConfig, RewriteFn, evaluate
from promptopt.evaluators.judge import PairwiseJudge
from promptopt.llm.base import LLM, run_sync
from promptopt.optimizers.bpo.build import BuildConfig, BuildReport, build_rewrite_data
from promptopt.runs import StopFlag


def _fmt(x: float) -> str:
    return "nan" if x != x else f"{x:+.1f}"


def _close(*llms: LLM) -> None:
    seen: set[int] = set()
    for llm in llms:
        if id(llm) not in seen:
            seen.add(id(llm))
            run_sync(llm.aclose())


def build_data_command(
    input_: str = typer.Option(
        ..., "--input", "-i", help="Preference pairs: a JSON/JSONL file, a dataset folder or a HF dataset id."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output JSONL of kept records (dropped ones go beside it)."
    ),
    preset: str = typer.Option("auto", "--preset", help=f"Column layout: auto, {', '.join(PAIR_PRESETS)}."),
    map_: list[str] = typer.Option(
        [], "--map", help="Override a column: KEY=COLUMN with KEY in instruction, context, good, bad."
    ),
    split: str = typer.Option("train", "--split", help="Split of a HF dataset."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model spec of the data builder LLM."),
    limit: int | None = typer.Option(None, "--limit", help="Use the first N usable pairs."),
    concurrency: int = typer.Option(8, "--concurrency", help="Pairs sent to the model at once."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature (paper: 0.9)."),
    max_tokens: int = typer.Option(768, "--max-tokens", help="Token limit of each critique + rewrite."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (per item, order-independent)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the request cache."),
) -> None:
    """Build (prompt, optimized prompt) training data from preference pairs with an LLM (resumable)."""
    positive("--limit", limit)
    config = BuildConfig(concurrency=concurrency, temperature=temperature, max_tokens=max_tokens, seed=seed)
    loaded = load_pairs(input_, preset=preset, mapping=parse_mapping(map_), split=split, limit=limit)
    err = err_console()
    skipped = sum(loaded.skipped.values())
    err.print(
        f"{len(loaded.pairs)} pairs from {input_} (preset {loaded.preset})"
        + (f", {skipped} rows skipped: {loaded.skipped}" if skipped else "")
    )
    llm = open_model(model, cache_policy="off" if no_cache else "deterministic")
    stop = StopFlag()

    def progress(done: int, total: int, r: BuildReport) -> None:
        err.print(f"  {done}/{total} processed, kept {r.kept}, dropped {sum(r.dropped.values())}")

    try:
        with stop.handle_sigint():
            report = build_rewrite_data(
                loaded.pairs, llm, out, config=config, progress=progress, should_stop=stop.is_set
            )
    finally:
        _close(llm)
    table = Table(title=f"build-data → {out}")
    table.add_column("status / reason")
    table.add_column("count", justify="right")
    table.add_row("kept", str(report.kept))
    for reason, n in sorted(report.dropped.items()):
        table.add_row(f"dropped: {reason}", str(n))
    for reason, n in sorted(loaded.skipped.items()):
        table.add_row(f"input skipped: {reason}", str(n))
    table.add_row("total decided", str(report.total))
    con = console()
    con.print(table)
    con.print(
        f"{report.processed} sent to the model this run, {report.resumed} already done; "
        f"{report.seconds:.1f} s. Dropped records: {report.dropped_out}"
    )
    if report.stopped:
        con.print(f"stopped early ({report.stopped}); rerun the same command to continue")


def _rewriter_fn(path: str, mode: str, seed: int) -> RewriteFn:
    from promptopt.optimizers.bpo.rewriter import Rewriter  # heavy (torch); only when asked for

    rewriter = Rewriter.load(path)

    def rewrite(prompts: list[str]) -> list[str]:
        return list(rewriter.rewrite(prompts, mode=mode, seed=seed))

    return rewrite


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
    max_tokens: int = typer.Option(512, "--max-tokens", help="Token limit of the target's answers."),
    judge_max_tokens: int = typer.Option(512, "--judge-max-tokens", help="Token limit of each judgement."),
    bootstrap: int = typer.Option(10_000, "--bootstrap", help="Bootstrap replicates for the CI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the models and the bootstrap."),
) -> None:
    """Judge a target model's answers to original vs rewritten prompts; print win/tie/loss and ΔWR."""
    positive("--limit", limit)
    positive("--bootstrap", bootstrap)
    if rewriter is not None and rewritten_field is not None:
        raise ConfigError("pass either --rewriter or --rewritten-field, not both")
    if mode not in ("default", "aggressive"):
        raise ConfigError(f"--mode must be default or aggressive, got {mode!r}")
    sets: list[TestSet] = []
    for name in testset:
        ts = load_testset(name, data_dir=data_dir, rewritten_field=rewritten_field, limit=limit)
        if rewritten_field is None and rewriter is None:
            if ts.default_rewritten_field is None:
                raise ConfigError(
                    f"test set {ts.name!r} has no precomputed rewrites: pass --rewriter DIR or --rewritten-field"
                )
            ts = load_testset(
                name, data_dir=data_dir, rewritten_field=ts.default_rewritten_field, limit=limit
            )
        sets.append(ts)
    config = EvalConfig(concurrency=concurrency, max_tokens=max_tokens, seed=seed, n_boot=bootstrap)
    rewrite = _rewriter_fn(rewriter, mode, seed) if rewriter is not None else None
    target = open_model(target_model)
    judge_llm = target if judge_model == target_model else open_model(judge_model)
    judge = PairwiseJudge(judge_llm, max_tokens=judge_max_tokens, seed=seed)
    err = err_console()
    stop = StopFlag()
    settings = {
        "rewriter": rewriter,
        "mode": mode if rewriter else None,
        "rewritten_field": rewritten_field,
        "judge_max_tokens": judge_max_tokens,
    }
    try:
        with stop.handle_sigint():
            summary = evaluate(
                sets,
                target=target,
                judge=judge,
                out_dir=out,
                rewrite=rewrite,
                settings=settings,
                config=config,
                progress=lambda name, d, t: err.print(f"  {name}: {d}/{t}"),
                should_stop=stop.is_set,
            )
    finally:
        _close(target, judge_llm)
    table = Table(title="BPO evaluation (rewritten vs original)")
    for col, just in (
        ("test set", "left"),
        ("n", "right"),
        ("win", "right"),
        ("tie", "right"),
        ("loss", "right"),
        ("ΔWR", "right"),
        ("95% CI", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
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
            notes.append(f"{r.unparsed_verdicts} unparseable verdicts (counted as ties)")
        if r.identical_answers:
            notes.append(f"{r.identical_answers} identical answer pairs (ties, not judged)")
        if r.errors:
            notes.append(f"{r.errors} items failed (rerun to retry)")
        if notes:
            con.print(f"{r.testset}: " + "; ".join(notes))
    con.print(f"Per-item records, summary.json, summary.md and winrate.png in {out}")
    if summary.stopped:
        con.print(f"stopped early ({summary.stopped}); rerun the same command to continue")
