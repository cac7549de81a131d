"""`promptopt bpo build-prefs`: parse flags, call the preference builder, print.

The library is :mod:`promptopt.optimizers.bpo.preference`; this module only opens the models
(rewriter, target, judge), loads the prompts and prints the counts. ``promptopt.cli.bpo``
registers :func:`build_prefs_command` on the ``bpo`` sub-app.
"""

from __future__ import annotations

from pathlib import Path

import typer

from promptopt.cli.common import (
    DEFAULT_MODEL,
    build_progress,
    console,
    counts_table,
    err_console,
    positive,
    print_stopped,
)
from promptopt.errors import ConfigError
from promptopt.optimizers.bpo.build import BuildReport


def build_prefs_command(
    prompts: str = typer.Option(
        ..., "--prompts", "-i", help="Training prompts: a JSON/JSONL file or a test-set name (as bpo eval)."
    ),
    rewriter: str = typer.Option(
        ..., "--rewriter", "-r", help="Rewriter folder or HF id that samples the rewrites (e.g. the SFT one)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output JSONL of (prompt, chosen, rejected) rows; dropped ones go beside it."
    ),
    target_model: str = typer.Option(DEFAULT_MODEL, "--target-model", help="Model spec that answers."),
    judge_model: str = typer.Option(DEFAULT_MODEL, "--judge-model", help="Model spec of the judge."),
    judge: str = typer.Option(
        "pairwise",
        "--judge",
        help="pairwise: every pair of answers in both orders (K(K-1) calls); rubric: each answer "
        "scored 0-5 on its own (K calls).",
    ),
    n: int = typer.Option(4, "--n", help="Rewrites sampled per prompt (>= 2)."),
    aggressive: bool = typer.Option(
        False, "--aggressive", help="Sample in the rewriter's aggressive mode (temperature 0.9, first line)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the rewriter's sampling and the models."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Token limit of a rewrite."),
    answer_max_tokens: int = typer.Option(512, "--answer-max-tokens", help="Token limit of each answer."),
    judge_max_tokens: int = typer.Option(512, "--judge-max-tokens", help="Token limit of each judgement."),
    concurrency: int = typer.Option(8, "--concurrency", help="Prompts processed at once."),
    limit: int | None = typer.Option(None, "--limit", help="Use the first N prompts."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="BPO data folder for named test sets (else $PROMPTOPT_BPO_DATA_DIR)."
    ),
    device: str | None = typer.Option(
        None, "--device", help="Rewriter device: cpu, cuda, ... (default auto)."
    ),
    backend: str = typer.Option("auto", "--backend", help="Rewriter backend: auto, transformers, vllm."),
) -> None:
    """Build preference rows for bpo train --method dpo|orpo: the rewriter samples --n rewrites
    per prompt, the target answers each, the judge ranks the answers; best and worst rewrite
    become chosen and rejected (ties dropped). Resumable: rerun the same command to continue."""
    from promptopt.evaluators.judge import JUDGE_KINDS
    from promptopt.llm.factory import open_models
    from promptopt.optimizers.bpo.preference import PrefConfig, build_preferences
    from promptopt.optimizers.bpo.rewriter import Rewriter, RewriteSettings
    from promptopt.optimizers.bpo.testsets import load_testset
    from promptopt.runs import StopFlag

    positive("--n", n)
    positive("--max-new-tokens", max_new_tokens)
    if judge not in JUDGE_KINDS:
        raise ConfigError(f"unknown --judge {judge!r}; choose {', '.join(JUDGE_KINDS)}")
    config = PrefConfig(
        rewrite=RewriteSettings(
            mode="aggressive" if aggressive else "default", n=n, seed=seed, max_new_tokens=max_new_tokens
        ),
        concurrency=concurrency,
        answer_max_tokens=answer_max_tokens,
    )
    items = load_testset(prompts, data_dir=data_dir, limit=limit).items
    err = err_console()
    err.print(f"{len(items)} prompts from {prompts}")
    rw = Rewriter.load(rewriter, device, backend=backend)
    progress = build_progress(err)
    stop = StopFlag()
    try:
        with open_models(target_model, judge_model) as (target, judge_llm):
            assert target is not None and judge_llm is not None
            judge_obj = JUDGE_KINDS[judge](
                judge_llm, max_tokens=judge_max_tokens, temperature=0.0, samples=None, seed=seed
            )
            with stop.handle_sigint():
                report = build_preferences(
                    [it.prompt for it in items],
                    rw,
                    target,
                    judge_obj,
                    out,
                    config=config,
                    progress=progress,
                    should_stop=stop.is_set,
                )
    finally:
        rw.close()
    _print(report, out)


def _print(report: BuildReport, out: Path) -> None:
    table = counts_table(f"build-prefs → {out}", report, kept_label="kept (preference rows)")
    con = console()
    con.print(table)
    con.print(
        f"{report.processed} prompts processed this run, {report.resumed} already done; "
        f"{report.seconds:.1f} s. Dropped prompts (with candidates, answers, scores): {report.dropped_out}"
    )
    print_stopped(con, report.stopped)
