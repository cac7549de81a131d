"""`promptopt bpo`: train a prompt rewriter, rewrite prompts, build data, evaluate.

Parsing and printing only: training lives in ``promptopt.optimizers.bpo.train``, rewriting in
``promptopt.optimizers.bpo.rewriter``; ``build-data`` and ``eval`` come from ``cli/bpo_eval.py``.
Heavy libraries (torch, transformers) are imported only when a command runs.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from promptopt.cli.bpo_eval import build_data_command, eval_command
from promptopt.cli.bpo_pairs import build_pairs_command
from promptopt.cli.bpo_prefs import build_prefs_command
from promptopt.cli.common import console, err_console, open_model, positive
from promptopt.errors import ConfigError, DataError
from promptopt.records import parse_json, parse_jsonl, read_text

app = typer.Typer(
    help="BPO: train a prompt rewriter from data, rewrite prompts, build data, evaluate.",
    no_args_is_help=True,
)
app.command("build-data")(build_data_command)
app.command("eval")(eval_command)
app.command("build-prefs")(build_prefs_command)
app.command("build-pairs")(build_pairs_command)


# --------------------------------------------------------------------------- train


def _train_parameters() -> list[inspect.Parameter]:
    """``bpo train``'s options: ``--config FILE`` and one option per :class:`TrainConfig` field,
    its flag, help and default read from the field, so the CLI cannot drift from the config."""
    from promptopt.optimizers.bpo.train_config import TrainConfig

    kw = inspect.Parameter.KEYWORD_ONLY
    config_help = "JSON (or YAML) file of training options, keys as in TrainConfig; flags override it."
    params = [
        inspect.Parameter("ctx", kw, annotation=typer.Context),
        inspect.Parameter(
            "config", kw, default=typer.Option(None, "--config", help=config_help), annotation=Path | None
        ),
    ]
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        repeated = f.name == "training_args"  # KEY=VALUE, once per trainer argument
        default = None if repeated or f.default is dataclasses.MISSING else f.default
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        option = typer.Option(
            default,
            *meta["flags"],
            help=meta["help"] + (" Required, here or in --config." if required else ""),
            show_default=meta["show_default"],
            metavar="KEY=VALUE" if repeated else None,
        )
        annotation = list[str] | None if repeated else hints[f.name]
        params.append(inspect.Parameter(f.name, kw, default=option, annotation=annotation))
    return params


def _train_config(ctx: typer.Context, config: Path | None, options: dict[str, Any]) -> Any:
    """The run's TrainConfig: dataclass defaults < ``--config`` file < flags given on the line."""
    from promptopt.optimizers.bpo.train_config import TrainConfig, parse_training_args, read_config_file

    given: dict[str, Any] = {}
    for name, value in options.items():
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            given[name] = value
    if "template" in given:
        given["template"] = given["template"].replace("\\n", "\n")
    file_values = read_config_file(config) if config is not None else {}
    if "training_args" in given:  # merged key by key with the file's
        given["training_args"] = {
            **(file_values.get("training_args") or {}),
            **parse_training_args(given["training_args"]),
        }
    source_name = str(config) if config is not None else "bpo train"
    return TrainConfig.from_mapping({**file_values, **given}, source=source_name)


def train_command(ctx: typer.Context, config: Path | None = None, **options: Any) -> None:
    """Fine-tune a seq2seq or decoder-only model into a BPO prompt rewriter.

    Defaults are the BPO reference recipe (5 epochs, 32 sequences per step, lr 2e-5, 10 % warmup).
    """
    from promptopt.optimizers.bpo.train import train_rewriter

    cfg = _train_config(ctx, config, options)
    report = train_rewriter(cfg)
    if os.environ.get("RANK", "0") != "0":  # under torchrun / accelerate launch: one table
        return
    table = Table(title=f"bpo train → {cfg.out_dir}")
    table.add_column("")
    table.add_column("value", justify="right")

    def fmt(x: float | None, spec: str = ".4f") -> str:
        return "—" if x is None else format(x, spec)

    rows = [
        ("family", report.family),
        ("train / validation pairs", f"{report.train_examples} / {report.val_examples}"),
        ("steps", str(report.steps)),
        ("sequences per step", str(report.effective_batch_size)),
        ("train loss", fmt(report.train_loss)),
        ("validation loss", fmt(report.eval_loss)),
        ("steps/s", fmt(report.steps_per_second, ".2f")),
        ("seconds", f"{report.train_seconds:.1f}"),
    ]
    if report.resumed_from:
        rows.append(("resumed from", report.resumed_from))
    for k, v in rows:
        table.add_row(k, v)
    console().print(table)


train_command.__signature__ = inspect.Signature(_train_parameters())  # type: ignore[attr-defined]
app.command("train")(train_command)


# --------------------------------------------------------------------------- rewrite


def read_prompts(
    prompt: str | None, input_: Path | None, field: str
) -> tuple[list[str], list[dict[str, Any]] | None]:
    """Prompts from the argument, a file (JSONL rows or text lines) or stdin.

    Returns the prompts and, for JSONL input, the rows (so outputs keep their other fields).
    """
    given = [x is not None for x in (prompt, input_)]
    if sum(given) > 1:
        raise ConfigError("give a prompt argument or --input, not both")
    if prompt is not None:
        if not prompt.strip():
            raise ConfigError("the prompt is empty")
        return [prompt], None
    if input_ is not None:
        text = read_text(input_, what="input file")
        source = str(input_)
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise ConfigError("no prompts: give a prompt argument, --input FILE, or pipe prompts on stdin")
        text = sys.stdin.read()
        source = "stdin"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{source} holds no prompts")
    if lines[0].lstrip().startswith("["):  # a JSON array (BPO's test sets are stored so)
        items = parse_json(text, where=source)
        where = "item"
    elif (input_ is not None and input_.suffix.lower() == ".jsonl") or lines[0].lstrip().startswith("{"):
        items = parse_jsonl(text, where=source)
        where = "line"
    else:
        return [ln.strip() for ln in lines], None
    rows: list[dict[str, Any]] = []
    for i, row in enumerate(items, 1):
        if not isinstance(row, dict) or not isinstance(row.get(field), str):
            raise DataError(f"{source}: {where} {i} has no text field {field!r} (choose one with --field)")
        rows.append(row)
    if not rows:
        raise DataError(f"{source} holds no prompts")
    return [r[field] for r in rows], rows


@app.command("rewrite")
def rewrite_command(
    prompt: str | None = typer.Argument(None, help="The prompt to rewrite (or use --input / stdin)."),
    rewriter: str = typer.Option(..., "--rewriter", "-r", help="Trained rewriter folder or HF id."),
    input_: Path | None = typer.Option(
        None, "--input", "-i", help="JSONL rows, a JSON array of objects, or one prompt per line."
    ),
    field: str = typer.Option("prompt", "--field", help="JSON field holding the prompt."),
    aggressive: bool = typer.Option(
        False, "--aggressive", help="Several samples at temperature 0.9, first line, longer than the input."
    ),
    n: int = typer.Option(1, "--n", help="Candidates per prompt; a judge (--judge-model) picks the best."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="Model spec of the judge for --n."),
    judge_kind: str = typer.Option(
        "pairwise",
        "--judge",
        help="How --n candidates are picked: pairwise (round robin, both orders) or rubric (the judge model "
        "answers each candidate, the answer is scored 0-5 against the original prompt).",
    ),
    rounds: int = typer.Option(1, "--rounds", help="Rewrite the rewrite this many times (paper: up to 4)."),
    guard_model: str | None = typer.Option(
        None,
        "--guard-model",
        help="Model spec of a judge asked, for every changed prompt, whether the rewrite keeps every "
        "requirement of the original; where it says no (or cannot tell, or fails) the original is output.",
    ),
    keep_original: bool = typer.Option(
        False,
        "--keep-original",
        help="Output the prompt followed by its rewrite (Rephrase and Respond), what `serve --keep-original` "
        "sends: no requirement of the prompt can be lost. After --guard-model; an unchanged or reverted "
        "prompt is output alone.",
    ),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Token limit of a rewrite."),
    batch_size: int = typer.Option(16, "--batch-size", help="Prompts per generate call."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: auto)."),
    backend: str = typer.Option("auto", "--backend", help="auto (vLLM when usable), transformers, vllm."),
    format_: str = typer.Option(
        "auto", "--format", help="text, jsonl, or auto (text for one prompt, jsonl otherwise)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Rewrite prompts with a trained BPO rewriter (batched)."""
    from promptopt.llm.base import run_sync
    from promptopt.optimizers.bpo.guard import RewriteGuard, arewrite_guarded
    from promptopt.optimizers.bpo.rewriter import PICKERS, Rewriter, RewriteSettings, make_picker

    positive("--n", n)
    positive("--rounds", rounds)
    positive("--batch-size", batch_size)
    positive("--max-new-tokens", max_new_tokens)
    if format_ not in ("auto", "text", "jsonl"):
        raise ConfigError(f"--format must be auto, text or jsonl, got {format_!r}")
    if n > 1 and judge_model is None:
        raise ConfigError("--n > 1 needs --judge-model to pick the best candidate")
    if judge_kind not in PICKERS:
        raise ConfigError(f"--judge must be one of {', '.join(PICKERS)}, got {judge_kind!r}")
    prompts, rows = read_prompts(prompt, input_, field)
    settings = RewriteSettings(
        mode="aggressive" if aggressive else "default",
        n=n,
        rounds=rounds,
        seed=seed,
        device=device,
        max_new_tokens=max_new_tokens,
        keep_original=keep_original,
    )
    # The guard's model first: a bad spec is one line before the rewriter is loaded.
    guard_llm = open_model(guard_model) if guard_model is not None else None
    try:
        rw = Rewriter.load(rewriter, settings.device, backend=backend, batch_size=batch_size)
        judge_llm = open_model(judge_model) if judge_model is not None else None
        try:
            picker = make_picker(judge_kind, judge_llm) if judge_llm is not None else None
            guard = RewriteGuard(guard_llm) if guard_llm is not None else None
            guarded = run_sync(
                arewrite_guarded(rw, prompts, dataclasses.replace(settings, judge=picker), guard)
            )
        finally:
            if judge_llm is not None:
                run_sync(judge_llm.aclose())
            rw.close()
    finally:
        if guard_llm is not None:
            run_sync(guard_llm.aclose())
    rewrites = guarded.prompts
    fmt = format_ if format_ != "auto" else ("text" if len(prompts) == 1 and rows is None else "jsonl")
    if fmt == "text":
        text = "\n".join(rewrites) + "\n"
    else:
        base = rows if rows is not None else [{field: p} for p in prompts]
        guards = guarded.statuses if guard_llm is not None else [None] * len(rewrites)
        text = "".join(
            json.dumps({**row, "optimized_prompt": r, **({"guard": g} if g else {})}, ensure_ascii=False)
            + "\n"
            for row, r, g in zip(base, rewrites, guards, strict=True)
        )
    if guard_llm is not None:
        err_console().print(guarded.summary(), markup=False, soft_wrap=True)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        output.write_text(text, encoding="utf-8")
        err_console().print(f"{len(rewrites)} rewrites → {output}")
