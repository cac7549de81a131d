"""Train a BPO prompt rewriter: (prompt, optimized_prompt) pairs → a ``save_pretrained`` directory.

Why the transformers Trainer and not a loop of our own: it already does progress bars,
checkpoints, resumption, mixed precision, LoRA models, and — under ``torchrun`` or ``accelerate
launch`` — DDP, DeepSpeed ZeRO and FSDP. This module only turns pairs into token ids, turns a
:class:`TrainConfig` into the trainer's arguments and picks the right model class and trainer.

Two families, picked from the checkpoint's config (``is_encoder_decoder``):
- seq2seq (T5, Flan-T5, BART): the filled template is the encoder input, the rewrite the target.
- causal (Llama, Qwen, Gemma as in the paper): template + prompt + rewrite + EOS in one sequence,
  loss on the rewrite and EOS only. When the pair is too long the longer of prompt and rewrite is
  cut first (as in the reference), but the template header is never cut.

The default recipe is the reference's (see :class:`TrainConfig`). Heavy libraries (torch,
transformers, accelerate, peft: the ``train`` extra) are imported inside the functions that use
them, so this module — and the CLI built from :class:`TrainConfig` — loads without them.
"""

from __future__ import annotations

import difflib
import logging
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from promptopt.errors import ConfigError, DataError
from promptopt.extras import require
from promptopt.optimizers.bpo.templates import (
    Family,
    PromptEncoder,
    RewriterConfig,
    detect_family,
)
from promptopt.optimizers.bpo.train_config import (
    TrainConfig,
    gradient_accumulation,
    read_config_file,
    world_size,
)

__all__ = [
    "CHECKPOINT_PREFIX",
    "Pair",
    "TrainConfig",
    "TrainReport",
    "detect_family",
    "encode_causal",
    "encode_seq2seq",
    "gradient_accumulation",
    "last_checkpoint",
    "load_pairs",
    "read_config_file",
    "split_pairs",
    "train_rewriter",
    "trainer_arguments",
    "world_size",
]

CHECKPOINT_PREFIX = "checkpoint-"

log = logging.getLogger(__name__)

T = TypeVar("T")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Pair:
    """One training example: the user's prompt and its improved version."""

    prompt: str
    optimized_prompt: str


def _rows_to_pairs(rows: Iterable[dict[str, Any]], source: str) -> list[Pair]:
    """Accept ``{prompt, optimized_prompt}`` rows (build-data's output: rows with a ``status``
    other than ``kept`` are skipped) and BPO's ``{paragraph: [{q, a}, ...]}`` rows."""
    pairs: list[Pair] = []
    for i, row in enumerate(rows):
        if row.get("status") not in (None, "kept"):  # build-data's dropped records, if mixed in
            continue
        if "prompt" in row and "optimized_prompt" in row:
            items = [(row["prompt"], row["optimized_prompt"])]
        elif isinstance(row.get("paragraph"), list):
            items = [(p.get("q"), p.get("a")) for p in row["paragraph"] if isinstance(p, dict)]
        else:
            keys = ", ".join(sorted(map(str, row))) or "none"
            raise DataError(
                f"{source}: row {i} has neither 'prompt'/'optimized_prompt' nor BPO's 'paragraph' "
                f"(its keys: {keys})"
            )
        for q, a in items:
            if isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
                pairs.append(Pair(q.strip(), a.strip()))
    return pairs


def load_pairs(source: str | Path, *, split: str = "train") -> list[Pair]:
    """Training pairs from a local JSON/JSONL file or a Hugging Face dataset id.

    Local files go through ``datasets.load_dataset("json", ...)`` like hub datasets do, so the
    same code path serves both. Rows with an empty prompt or rewrite are skipped.
    """
    import datasets

    src = str(source)
    path = Path(src).expanduser()
    try:
        if path.is_file():
            ds = datasets.load_dataset("json", data_files=str(path), split="train")
        elif path.suffix.lower() in (".json", ".jsonl") or src.startswith((".", "/", "~")):
            raise DataError(f"training data file {src} does not exist")
        else:
            ds = datasets.load_dataset(src, split=split)
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types for unreadable / unknown sources
        raise DataError(f"cannot load training data {src!r}: {exc.__class__.__name__}: {exc}") from None
    pairs = _rows_to_pairs(ds, src)
    if not pairs:
        raise DataError(f"{src}: no usable (prompt, optimized_prompt) pairs")
    return pairs


# --------------------------------------------------------------------------- tokenization


def encode_causal(encoder: PromptEncoder, pair: Pair, max_length: int) -> dict[str, list[int]]:
    """input_ids / attention_mask / labels for a decoder-only model, loss on rewrite + EOS."""
    tok = encoder.tokenizer
    if tok.eos_token_id is None:
        raise ConfigError("the tokenizer has no EOS token; a causal rewriter needs one to stop")
    p = encoder.prompt_ids(pair.prompt)
    t = list(tok(pair.optimized_prompt, add_special_tokens=False)["input_ids"])
    room = max_length - encoder.fixed_length - 1
    if room < 2:
        raise ConfigError(
            f"max length {max_length} is too small: the template alone takes {encoder.fixed_length} tokens"
        )
    np_, nt = len(p), len(t)
    if np_ + nt > room:  # cut the longer side first, never the template
        if nt >= np_:
            nt = max(room - np_, room // 2)
            np_ = room - nt
        else:
            np_ = max(room - nt, room // 2)
            nt = room - np_
    src = encoder.join(p[:np_])
    tgt = t[:nt] + [tok.eos_token_id]
    ids = src + tgt
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(src) + tgt}


def encode_seq2seq(
    encoder: PromptEncoder, pair: Pair, max_length: int, max_target_length: int
) -> dict[str, list[int]]:
    """Encoder input (template + prompt, prompt cut first) and target ids for a seq2seq model."""
    src = encoder.source(pair.prompt, max_length)
    tgt = list(
        encoder.tokenizer(text_target=pair.optimized_prompt, truncation=True, max_length=max_target_length)[
            "input_ids"
        ]
    )
    return {"input_ids": src, "attention_mask": [1] * len(src), "labels": tgt}


# --------------------------------------------------------------------------- report


@dataclass
class TrainReport:
    """What a training run produced (also stored under ``extra.training`` in bpo_rewriter.json)."""

    out_dir: str
    family: str
    train_examples: int
    val_examples: int
    steps: int
    train_loss: float | None
    eval_loss: float | None
    train_seconds: float
    steps_per_second: float | None
    resumed_from: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    effective_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- model


def _transformers_version() -> tuple[int, int]:
    """(major, minor) of the installed transformers: the trainer's arguments changed in 5.0."""
    transformers = require("transformers", "train")
    major, minor = (int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
    return major, minor


def _load_model(base_model: str, family: Family, bf16: bool, lora: bool) -> Any:
    """Trainable weights in float32 (``--bf16`` autocasts around them); a frozen LoRA base may
    stay in bfloat16 to halve its memory. Why not the checkpoint's own dtype: training pure bf16
    weights with AdamW loses small updates, and bf16 matmuls are slow on most CPUs."""
    torch = require("torch", "train")
    transformers = require("transformers", "train")

    auto = transformers.AutoModelForSeq2SeqLM if family == "seq2seq" else transformers.AutoModelForCausalLM
    dtype_key = "dtype" if _transformers_version() >= (4, 56) else "torch_dtype"  # renamed in 4.56
    kwargs: dict[str, Any] = {dtype_key: torch.bfloat16 if (bf16 and lora) else torch.float32}
    try:
        return auto.from_pretrained(base_model, **kwargs)
    except ValueError as exc:  # config of an architecture with no LM head of this kind
        raise ConfigError(f"{base_model!r} cannot be loaded as a {family} language model: {exc}") from None


def _load_tokenizer(base_model: str) -> Any:
    transformers = require("transformers", "train")

    try:
        tok = transformers.AutoTokenizer.from_pretrained(base_model)
    except Exception as exc:
        raise ConfigError(f"cannot load the tokenizer of {base_model!r}: {exc}") from None
    if tok.pad_token_id is None:
        if tok.eos_token is None:
            raise ConfigError(f"the tokenizer of {base_model!r} has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    return tok


def lora_config(cfg: TrainConfig, family: Family) -> Any:
    """The ``peft.LoraConfig`` of ``cfg`` (TRL's trainers take it as ``peft_config``)."""
    peft = require("peft", "train", what="--lora")
    task_type = peft.TaskType.SEQ_2_SEQ_LM if family == "seq2seq" else peft.TaskType.CAUSAL_LM
    target: str | list[str] = cfg.lora_target
    if target != "all-linear":
        target = [t.strip() for t in target.split(",") if t.strip()]
    lora = peft.LoraConfig(
        task_type=task_type,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=target,
    )
    return lora


def _apply_lora(model: Any, cfg: TrainConfig, family: Family) -> Any:
    peft = require("peft", "train", what="--lora")
    return peft.get_peft_model(model, lora_config(cfg, family))


def last_checkpoint(out_dir: str | Path) -> str | None:
    require("transformers", "train")
    from transformers.trainer_utils import get_last_checkpoint

    path = Path(out_dir)
    return get_last_checkpoint(str(path)) if path.is_dir() else None


# --------------------------------------------------------------------------- training


def split_pairs(pairs: Sequence[T], ratio: float, seed: int) -> tuple[list[T], list[T]]:
    """A seeded held-out split: at least one validation example when ratio > 0 and there are 2+.
    (SFT pairs and preference rows alike.)"""
    items = list(pairs)
    if ratio <= 0 or len(items) < 2:
        return items, []
    random.Random(seed).shuffle(items)
    n_val = min(len(items) - 1, max(1, round(len(items) * ratio)))
    return items[n_val:], items[:n_val]


def _tokenize(pairs: Sequence[Pair], encoder: PromptEncoder, family: Family, cfg: TrainConfig) -> Any:
    from datasets import Dataset

    max_target = cfg.max_target_length or cfg.max_length
    if family == "causal":
        rows = [encode_causal(encoder, p, cfg.max_length) for p in pairs]
    else:
        rows = [encode_seq2seq(encoder, p, cfg.max_length, max_target) for p in pairs]
    return Dataset.from_dict({k: [r[k] for r in rows] for k in ("input_ids", "attention_mask", "labels")})


def _warmup(ratio: float) -> dict[str, float]:
    """The warmup share of the steps in the installed transformers' terms.

    transformers 4.x: ``warmup_ratio``; ``warmup_steps`` is an int count (a float 0.1 there is
    0.1 steps: no warmup at all). 5.x: ``warmup_steps`` below 1 is the ratio and
    ``warmup_ratio`` is deprecated (removed in 5.2)."""
    return {"warmup_steps": ratio} if _transformers_version() >= (5, 0) else {"warmup_ratio": ratio}


def trainer_arguments(
    cfg: TrainConfig,
    family: Family,
    has_eval: bool,
    *,
    processes: int | None = None,
    cls: Any = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """The ``(Seq2Seq)TrainingArguments`` of ``cfg``: its own fields, then ``cfg.training_args``.

    ``processes`` (default: ``WORLD_SIZE``) sizes the gradient accumulation (see TrainConfig).
    ``cls`` (a TrainingArguments subclass such as TRL's ``DPOConfig``) and ``extra`` (its own
    fields, set before ``cfg.training_args``) serve the preference trainers (``train_pref``).
    """
    transformers = require("transformers", "train")
    if cls is None:
        cls = transformers.Seq2SeqTrainingArguments if family == "seq2seq" else transformers.TrainingArguments
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(cfg.training_args) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"training_args: {', '.join(unknown)} is not a {cls.__name__} field{hint}")
    eval_strategy = "no"
    if has_eval:
        eval_strategy = "steps" if cfg.eval_steps else "epoch"
    kwargs: dict[str, Any] = dict(
        output_dir=cfg.out_dir,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=gradient_accumulation(cfg, processes),
        **_warmup(cfg.warmup_ratio),
        lr_scheduler_type="linear",
        optim="adamw_torch",
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=cfg.bf16,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy=eval_strategy,
        eval_steps=cfg.eval_steps,
        report_to="none",
        disable_tqdm=not cfg.progress,
        deepspeed=cfg.deepspeed,
        remove_unused_columns=False,
        dataloader_pin_memory=_has_cuda(),
    )
    if cfg.gradient_checkpointing:
        kwargs["gradient_checkpointing"] = True
    kwargs.update(launcher_defaults(cfg, processes=world_size(), cuda=_has_cuda()))
    kwargs.update(extra or {})
    kwargs.update(cfg.training_args)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # the trainer's own consistency checks
        raise ConfigError(f"invalid trainer arguments: {' '.join(str(exc).split())}") from None


def _has_cuda() -> bool:
    return bool(require("torch", "train").cuda.is_available())


def launcher_defaults(cfg: TrainConfig, *, processes: int, cuda: bool) -> dict[str, Any]:
    """Trainer arguments that make ``torchrun`` on a machine without CUDA real DDP over gloo.

    Why: under ``torchrun`` without CUDA, transformers does not switch to distributed mode unless
    ``use_cpu`` is set, so every rank trained on all the data alone and every rank wrote the
    output folder. With ``use_cpu=True`` and ``ddp_backend="gloo"`` the ranks share the data and
    only rank 0 writes. Arguments the user gave in ``training_args`` win (they are applied after);
    ``accelerate launch --cpu`` sets ``ACCELERATE_USE_CPU`` itself and needs nothing from here.
    """
    if processes < 2 or cuda:
        return {}
    given = set(cfg.training_args)
    defaults = {k: v for k, v in (("use_cpu", True), ("ddp_backend", "gloo")) if k not in given}
    if defaults and os.environ.get("RANK", "0") == "0":
        log.info(
            "%d processes and no CUDA: training with DDP on CPU over gloo (%s)",
            processes,
            ", ".join(f"{k}={v!r}" for k, v in defaults.items()),
        )
    return defaults


def _check_out_dir(cfg: TrainConfig) -> str | None:
    """The checkpoint to resume from, after refusing to silently mix two runs in one directory."""
    out = Path(cfg.out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a directory")
    ckpt = last_checkpoint(out)
    if cfg.resume:
        if ckpt is None:
            raise ConfigError(f"--resume: no {CHECKPOINT_PREFIX}* directory in {out} to resume from")
        return ckpt
    if out.is_dir() and any(out.iterdir()) and not cfg.overwrite:
        raise ConfigError(
            f"output directory {out} is not empty; pass --resume to continue its last checkpoint "
            "or --overwrite to train again into it"
        )
    return None


def rewriter_setup(cfg: TrainConfig, family: Family) -> tuple[Any, RewriterConfig, PromptEncoder]:
    """Tokenizer, the rewriter config saved with the model, and the encoder that fills its template:
    what SFT and preference training both build before their data (the same ids ``bpo rewrite``
    feeds the model). A causal tokenizer pads on the right for training (rewriting pads left)."""
    tokenizer = _load_tokenizer(cfg.base_model)
    rw_cfg = RewriterConfig(
        family=family,
        template=cfg.template,
        use_chat_template=cfg.use_chat_template,
        max_length=cfg.max_length,
        base_model=cfg.base_model,
    )
    encoder = PromptEncoder(tokenizer, rw_cfg)
    if family == "causal":
        tokenizer.padding_side = "right"  # training pads on the right; rewriting on the left
    return tokenizer, rw_cfg, encoder


def load_split(cfg: TrainConfig, load: Callable[[str], list[T]]) -> tuple[list[T], list[T]]:
    """(train, validation) rows: ``cfg.data`` cut to ``--limit``, then ``--val-data`` when given,
    else a seeded ``--val-ratio`` split of the data."""
    rows = load(cfg.data)
    if cfg.limit is not None:
        rows = rows[: cfg.limit]
    if cfg.val_data:
        return rows, load(cfg.val_data)
    return split_pairs(rows, cfg.val_ratio, cfg.seed)


def train_and_save(
    trainer: Any,
    args: Any,
    cfg: TrainConfig,
    rw_cfg: RewriterConfig,
    tokenizer: Any,
    train_examples: int,
    val_examples: int,
    *,
    resume_from: str | None,
) -> TrainReport:
    """Train (continuing ``resume_from``), evaluate when there is validation data, save the
    rewriter directory and return the report: the same for SFT, DPO and ORPO."""
    out = trainer.train(resume_from_checkpoint=resume_from)
    eval_loss = None
    metrics = dict(out.metrics)
    if val_examples:  # there is an eval dataset
        ev = trainer.evaluate()
        eval_loss = ev.get("eval_loss")
        metrics.update(ev)
    accumulation = int(args.gradient_accumulation_steps)
    report = TrainReport(
        out_dir=str(cfg.out_dir),
        family=rw_cfg.family,
        train_examples=train_examples,
        val_examples=val_examples,
        steps=int(trainer.state.global_step),
        train_loss=metrics.get("train_loss"),
        eval_loss=eval_loss,
        train_seconds=float(metrics.get("train_runtime", 0.0)),
        steps_per_second=metrics.get("train_steps_per_second"),
        resumed_from=resume_from,
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
        effective_batch_size=cfg.batch_size * accumulation * int(args.world_size),
        gradient_accumulation_steps=accumulation,
    )
    _save(trainer, tokenizer, rw_cfg, cfg, report)
    return report


def train_rewriter(cfg: TrainConfig, *, callbacks: Sequence[Any] = ()) -> TrainReport:
    """Train a rewriter as ``cfg`` says and save it to ``cfg.out_dir``.

    Run under ``torchrun`` or ``accelerate launch`` for several GPUs or nodes: the Trainer picks
    up the distributed environment, and only the main process writes the final directory.
    """
    cfg.validate()
    if cfg.method != "sft":  # preference training (DPO, ORPO) through TRL
        from promptopt.optimizers.bpo.train_pref import train_preference

        return train_preference(cfg, callbacks=callbacks)
    for module in ("torch", "transformers", "accelerate"):  # the Trainer needs all three
        require(module, "train")
    resume_from = _check_out_dir(cfg)
    family = detect_family(cfg.base_model)
    tokenizer, rw_cfg, encoder = rewriter_setup(cfg, family)
    train_pairs, val_pairs = load_split(cfg, load_pairs)
    train_ds = _tokenize(train_pairs, encoder, family, cfg)
    val_ds = _tokenize(val_pairs, encoder, family, cfg) if val_pairs else None
    args = trainer_arguments(cfg, family, val_ds is not None)  # fail on bad arguments before loading

    model = _load_model(cfg.base_model, family, cfg.bf16, cfg.lora)
    if cfg.lora:
        model = _apply_lora(model, cfg, family)

    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Trainer

    collator = DataCollatorForSeq2Seq(
        tokenizer, model=model if family == "seq2seq" else None, label_pad_token_id=-100, padding=True
    )
    trainer_cls = Seq2SeqTrainer if family == "seq2seq" else Trainer
    trainer = trainer_cls(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        **{"processing_class" if _transformers_version() >= (4, 46) else "tokenizer": tokenizer},
        callbacks=list(callbacks),
    )
    return train_and_save(
        trainer, args, cfg, rw_cfg, tokenizer, len(train_pairs), len(val_pairs), resume_from=resume_from
    )


def _checkpoint_dtype(base_model: str) -> Any:
    """The torch dtype the base checkpoint was stored in, or None when it does not say."""
    torch = require("torch", "train")
    transformers = require("transformers", "train")

    config = transformers.AutoConfig.from_pretrained(base_model)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else None


def _save(
    trainer: Any, tokenizer: Any, rw_cfg: RewriterConfig, cfg: TrainConfig, report: TrainReport
) -> None:
    """Weights (LoRA merged in), tokenizer and bpo_rewriter.json: a plain transformers directory.

    Called on every process: ``trainer.save_model`` gathers sharded weights (DeepSpeed ZeRO-3,
    FSDP) and writes on the main process only. A LoRA model is merged on the main process, which
    needs its full weights there (DDP, ZeRO-1/2); the adapter checkpoints stay in the folder.
    """
    out = Path(cfg.out_dir)
    if not cfg.lora:
        trainer.save_model(str(out))
    if not trainer.is_world_process_zero():
        return
    out.mkdir(parents=True, exist_ok=True)
    if cfg.lora:
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        base_dtype = _checkpoint_dtype(cfg.base_model)
        if base_dtype is not None:  # the frozen base had no more precision than this
            merged = merged.to(base_dtype)
        merged.save_pretrained(out)
    if rw_cfg.family == "causal":
        tokenizer.padding_side = "left"  # batched generation pads on the left
        tokenizer.init_kwargs["padding_side"] = "left"  # ... also for whoever loads the folder
    tokenizer.save_pretrained(out)
    training = {
        "report": report.to_json(),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out_dir",)},
    }
    replace(rw_cfg, extra={"training": training}).save(out)
