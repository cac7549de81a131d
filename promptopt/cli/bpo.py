"""`promptopt bpo`: train a prompt rewriter, rewrite prompts, build data, evaluate.

Parsing and printing only: training lives in ``promptopt.optimizers.bpo.train``, rewriting in
``promptopt.optimizers.bpo.rewriter``; ``build-data`` and ``eval`` come from ``cli/bpo_eval.py``.
Heavy libraries (torch, transformers) are imported only when a command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from promptopt.cli.bpo_eval import build_data_command, eval_command
from promptopt.cli.common import console, err_console, open_model, positive
from promptopt.errors import ConfigError, DataError

app = typer.Typer(
    help="BPO: train a prompt rewriter from data, rewrite prompts, build data, evaluate.",
    no_args_is_help=True,
)
app.command("build-data")(build_data_command)
app.command("eval")(eval_command)


@app.command("train")
def train_command(
    data: str = typer.Option(..., "--data", help="Rewrite pairs: JSON/JSONL file or HF dataset id."),
    base_model: str = typer.Option(..., "--base-model", help="Checkpoint to fine-tune (folder or HF id)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (model, tokenizer, bpo_rewriter.json)."),
    val_data: str | None = typer.Option(None, "--val-data", help="Validation pairs (else a held-out split)."),
    val_ratio: float = typer.Option(
        0.05, "--val-ratio", help="Held-out share of --data for validation loss."
    ),
    epochs: float = typer.Option(3.0, "--epochs", help="Training epochs (paper: 3)."),
    max_steps: int = typer.Option(-1, "--max-steps", help="Stop after this many steps (overrides epochs)."),
    lr: float = typer.Option(2e-5, "--lr", help="Peak learning rate (paper: 2e-5)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Per-device batch size."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Gradient accumulation steps."),
    max_length: int = typer.Option(512, "--max-length", help="Max tokens per example (paper: 512)."),
    max_target_length: int | None = typer.Option(
        None, "--max-target-length", help="Seq2seq: max target tokens (default: --max-length)."
    ),
    warmup_ratio: float = typer.Option(
        0.1, "--warmup-ratio", help="Linear warmup share of steps (paper: 0.1)."
    ),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW weight decay (paper: 0.01)."),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="Gradient clipping (paper: 1.0)."),
    seed: int = typer.Option(42, "--seed", help="Seed of initialisation, shuffling and the split."),
    bf16: bool = typer.Option(False, "--bf16", help="bfloat16 weights and mixed precision."),
    template: str | None = typer.Option(
        None, "--template", help="Rewriter template with one {} for the prompt (default: BPO's)."
    ),
    chat_template: bool = typer.Option(
        False, "--chat-template", help="Wrap the filled template in the tokenizer's chat template."
    ),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (merged into the saved model)."),
    lora_r: int = typer.Option(8, "--lora-r", help="LoRA rank."),
    lora_alpha: int = typer.Option(16, "--lora-alpha", help="LoRA alpha."),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout", help="LoRA dropout."),
    lora_target: str = typer.Option("all-linear", "--lora-target", help="Comma-separated module names."),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing", help="Save memory."),
    logging_steps: int = typer.Option(10, "--logging-steps", help="Log the loss every N steps."),
    save_steps: int = typer.Option(500, "--save-steps", help="Checkpoint every N steps."),
    eval_steps: int | None = typer.Option(
        None, "--eval-steps", help="Validate every N steps (else per epoch)."
    ),
    save_total_limit: int = typer.Option(2, "--save-total-limit", help="Checkpoints kept."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Train into a non-empty --out anyway."),
    deepspeed: str | None = typer.Option(
        None, "--deepspeed", help="DeepSpeed config JSON (accelerate launch)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N pairs."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Fine-tune a seq2seq or decoder-only model into a BPO prompt rewriter."""
    from promptopt.optimizers.bpo.templates import BPO_TEMPLATE
    from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter

    positive("--limit", limit)
    for name, value in (("--logging-steps", logging_steps), ("--save-steps", save_steps)):
        positive(name, value)
    positive("--eval-steps", eval_steps)
    cfg = TrainConfig(
        data=data,
        base_model=base_model,
        out_dir=str(out),
        val_data=val_data,
        val_ratio=val_ratio,
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        max_target_length=max_target_length,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
        seed=seed,
        bf16=bf16,
        template=BPO_TEMPLATE if template is None else template.replace("\\n", "\n"),
        use_chat_template=chat_template,
        lora=lora,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_target=lora_target,
        gradient_checkpointing=gradient_checkpointing,
        logging_steps=logging_steps,
        save_steps=save_steps,
        eval_steps=eval_steps,
        save_total_limit=save_total_limit,
        resume=resume,
        overwrite=overwrite,
        deepspeed=deepspeed,
        progress=not quiet,
        limit=limit,
    )
    report = train_rewriter(cfg)
    table = Table(title=f"bpo train → {out}")
    table.add_column("")
    table.add_column("value", justify="right")

    def fmt(x: float | None, spec: str = ".4f") -> str:
        return "—" if x is None else format(x, spec)

    rows = [
        ("family", report.family),
        ("train / validation pairs", f"{report.train_examples} / {report.val_examples}"),
        ("steps", str(report.steps)),
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
        try:
            text = Path(input_).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"input file {input_} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {input_}: {exc}") from None
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
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source} is not valid JSON ({exc.msg})") from None
        where = "item"
    elif (input_ is not None and input_.suffix.lower() == ".jsonl") or lines[0].lstrip().startswith("{"):
        items = []
        for i, ln in enumerate(lines, 1):
            try:
                items.append(json.loads(ln))
            except json.JSONDecodeError as exc:
                raise DataError(f"{source}: line {i} is not valid JSON ({exc.msg})") from None
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
    rounds: int = typer.Option(1, "--rounds", help="Rewrite the rewrite this many times (paper: up to 4)."),
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
    from promptopt.optimizers.bpo.rewriter import Rewriter, RewriteSettings

    positive("--n", n)
    positive("--rounds", rounds)
    positive("--batch-size", batch_size)
    positive("--max-new-tokens", max_new_tokens)
    if format_ not in ("auto", "text", "jsonl"):
        raise ConfigError(f"--format must be auto, text or jsonl, got {format_!r}")
    if n > 1 and judge_model is None:
        raise ConfigError("--n > 1 needs --judge-model to pick the best candidate")
    prompts, rows = read_prompts(prompt, input_, field)
    settings = RewriteSettings(
        mode="aggressive" if aggressive else "default",
        n=n,
        rounds=rounds,
        seed=seed,
        device=device,
        max_new_tokens=max_new_tokens,
    )
    rw = Rewriter.load(rewriter, settings.device, backend=backend, batch_size=batch_size)
    judge_llm = open_model(judge_model) if judge_model is not None else None
    try:
        rewrites = rw.rewrite(prompts, settings, judge=judge_llm)
    finally:
        from promptopt.llm.base import run_sync

        if judge_llm is not None:
            run_sync(judge_llm.aclose())
        rw.close()
    fmt = format_ if format_ != "auto" else ("text" if len(prompts) == 1 and rows is None else "jsonl")
    if fmt == "text":
        text = "\n".join(rewrites) + "\n"
    else:
        base = rows if rows is not None else [{field: p} for p in prompts]
        text = "".join(
            json.dumps({**row, "optimized_prompt": r}, ensure_ascii=False) + "\n"
            for row, r in zip(base, rewrites, strict=True)
        )
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        output.write_text(text, encoding="utf-8")
        err_console().print(f"{len(rewrites)} rewrites → {output}")
