"""`promptopt bpo build-pairs`: preference pairs from prompts alone (RLCD); parse flags, call the
library (``promptopt.optimizers.bpo.rlcd``), print. ``promptopt.cli.bpo`` registers it."""

from __future__ import annotations

from pathlib import Path

import typer

from promptopt.cli.common import (
    DEFAULT_MODEL,
    build_progress,
    console,
    counts_table,
    err_console,
    print_stopped,
)
from promptopt.optimizers.bpo.rlcd import (
    CUE_PAIRS,
    BuildPairsJob,
    LoadedPrompts,
    PairsReport,
    RLCDConfig,
    run_build_pairs,
)
from promptopt.runs import StopFlag

_CUES_HELP = (
    "Cue pair: " + "; ".join(f"{k} = {v.positive} vs {v.negative}" for k, v in CUE_PAIRS.items()) + "."
)


def build_pairs_command(
    prompts: str = typer.Option(
        ...,
        "--prompts",
        "-p",
        help="Prompts: a JSON/JSONL file of objects, a .txt file (one per line), a dataset folder or a HF dataset id.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output JSONL of kept pairs (dropped ones and the settings go beside it)."
    ),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model spec that writes both answers."),
    cues: str = typer.Option("helpful", "--cues", help=_CUES_HELP),
    judge_model: str | None = typer.Option(
        None,
        "--judge-model",
        help="Keep a pair only when this judge prefers the positive answer in both orders (default: no filter).",
    ),
    field: str | None = typer.Option(
        None,
        "--field",
        help="JSON field holding the prompt (default: prompt, instruction, question or text).",
    ),
    context_field: str | None = typer.Option(
        None,
        "--context-field",
        help="JSON field holding input text kept beside the prompt (default: context or input).",
    ),
    split: str = typer.Option("train", "--split", help="Split of a HF dataset."),
    limit: int | None = typer.Option(None, "--limit", help="Use the first N usable prompts."),
    concurrency: int = typer.Option(8, "--concurrency", help="Prompts sent to the model at once."),
    temperature: float = typer.Option(0.7, "--temperature", help="Sampling temperature of the answers."),
    max_tokens: int = typer.Option(512, "--max-tokens", help="Token limit of each answer."),
    judge_max_tokens: int = typer.Option(512, "--judge-max-tokens", help="Token limit of each judgement."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (per prompt, order-independent)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the request cache."),
) -> None:
    """Make preference pairs without labels (RLCD): answer each prompt under a positive and a negative
    cue, label the positive answer preferred; the output feeds `bpo build-data` (resumable)."""
    job = BuildPairsJob(
        prompts=prompts,
        out=out,
        model=model,
        judge_model=judge_model,
        prompt_field=field,
        context_field=context_field,
        split=split,
        limit=limit,
        config=RLCDConfig(
            cues=cues,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            concurrency=concurrency,
            judge_max_tokens=judge_max_tokens,
        ),
        cache=not no_cache,
    )
    err = err_console()

    def loaded(lp: LoadedPrompts) -> None:
        skipped = sum(lp.skipped.values())
        extra = f", {skipped} rows skipped: {lp.skipped}" if skipped else ""
        ctx = f" + {lp.context_field}" if lp.context_field else ""
        err.print(
            f"{len(lp.items)} prompts from {prompts} (field {lp.prompt_field}{ctx}){extra}", soft_wrap=True
        )

    progress = build_progress(err)

    stop = StopFlag()
    with stop.handle_sigint():
        result = run_build_pairs(job, on_loaded=loaded, progress=progress, should_stop=stop.is_set)
    _print_pairs(result.report, out, judged=judge_model is not None)


def _print_pairs(report: PairsReport, out: Path, *, judged: bool) -> None:
    table = counts_table(f"build-pairs → {out}", report)
    table.add_row("total decided", str(report.total))
    con = console()
    con.print(table)
    if judged and report.agreement is not None:
        o = report.judge_outcomes
        con.print(
            f"judge agrees with the RLCD label on {100 * report.agreement:.1f}% of judged pairs "
            f"(both orders: {o.get('win', 0)} agree, {o.get('loss', 0)} disagree, {o.get('tie', 0)} undecided)"
        )
    con.print(
        f"{report.processed} sent to the model this run, {report.resumed} already done; {report.seconds:.1f} s. "
        f"Dropped pairs: {report.dropped_out}"
    )
    con.print(f"Next: promptopt bpo build-data --input {out} --preset bpo --out DATA.jsonl")
    print_stopped(con, report.stopped)
