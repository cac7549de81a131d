"""What SFT (``train.py``) and preference training (``train_pref.py``) share: the trainer plumbing.

Loading the base model and tokenizer, the LoRA config, a :class:`TrainConfig` turned into the
trainer's arguments, the output-directory and resume checks, the seeded validation split, and
training + evaluating + saving the rewriter directory with its :class:`TrainReport`.

Why a module of its own: SFT's ``train_rewriter`` hands ``--method dpo|orpo`` to
``train_pref.train_preference``, and preference training reuses all of the above. With this code
in ``train.py`` the two modules imported each other; here the dependency goes one way
(``train`` → ``train_pref`` → ``train_common``). ``train.py`` re-exports the public names, so
``from promptopt.optimizers.bpo.train import trainer_arguments`` (and the rest) still works.

Heavy libraries (torch, transformers, peft: the ``train`` extra) are imported inside the
functions that use them, so this module loads without them, like ``train.py``.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from promptopt.errors import ConfigError
from promptopt.extras import require
from promptopt.optimizers.bpo.templates import Family, PromptEncoder, RewriterConfig
from promptopt.optimizers.bpo.train_config import TrainConfig, gradient_accumulation, world_size
from promptopt.tracking.hf import report_to_with_mlflow, trainer_tracking

__all__ = [
    "CHECKPOINT_PREFIX",
    "TrainReport",
    "distributed_teardown",
    "last_checkpoint",
    "launcher_defaults",
    "load_split",
    "lora_config",
    "rewriter_setup",
    "split_pairs",
    "train_and_save",
    "trainer_arguments",
]

CHECKPOINT_PREFIX = "checkpoint-"

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    if cfg.track is not None:  # the Trainer's own MLflow callback logs the run (promptopt.tracking.hf)
        kwargs["report_to"] = report_to_with_mlflow(kwargs["report_to"])
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
    with trainer_tracking(trainer, cfg.track, cfg.out_dir, resume=resume_from is not None):
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


# --------------------------------------------------------------------------- teardown


def _torch_distributed() -> Any | None:
    """``torch.distributed`` when torch is installed with it; None otherwise (nothing to tear down)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    return dist if dist.is_available() else None


@contextlib.contextmanager
def distributed_teardown() -> Iterator[None]:
    """Around one training run: destroy the process group the trainer started, once it is done.

    Why: under ``torchrun`` the Trainer (through accelerate's ``PartialState``) calls
    ``init_process_group`` and nothing ever calls ``destroy_process_group``. A rank that then
    exits with the group alive tears gloo's worker threads down during interpreter shutdown, and
    in about one run in four (2 CPU ranks) one rank aborted there ("terminate called without an
    active exception", SIGABRT) after training and saving, so torchrun killed the other and the
    run exited 1. torch's documentation asks every trainer process to destroy its groups at the
    end; so do TRL's and accelerate's example scripts (``accelerator.end_training()``).

    - Success: a barrier first, so no rank leaves (and closes its connections) while another is
      still saving (only rank 0 writes the folder), then every rank destroys its group.
    - An error: no barrier (the other ranks may never reach it); the group is destroyed so that
      they fail at once on the closed connection instead of waiting out the collective timeout.
    - A group that existed before the call is the caller's (their own script under torchrun) and
      is left alone, as is accelerate's ``notebook_launcher`` fork mode, which accelerate itself
      never destroys. After destroying, accelerate's shared state is reset, so a second training
      run in the same process starts a group again instead of using the destroyed one.
    """
    dist = _torch_distributed()
    owned = dist is not None and not dist.is_initialized()
    ok = False
    try:
        yield
        ok = True
    finally:
        if owned and dist is not None and dist.is_initialized():
            _destroy(dist, barrier=ok)


def _destroy(dist: Any, *, barrier: bool) -> None:
    """Barrier (when asked), destroy the default group, forget accelerate's state of it. The group
    was started inside the training call, so by accelerate (the Trainer's), which is installed."""
    from accelerate.state import AcceleratorState, PartialState

    if PartialState._shared_state and PartialState().fork_launched:
        return
    try:
        if barrier:
            dist.barrier()
    finally:
        dist.destroy_process_group()
        AcceleratorState._reset_state(reset_partial_state=True)


# --------------------------------------------------------------------------- saving


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
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "track")},
    }
    replace(rw_cfg, extra={"training": training}).save(out)
