"""The arguments of a BPO training run: :class:`TrainConfig`, its config file and its batch maths.

Why its own module: the CLI builds ``promptopt bpo train``'s options from this dataclass when it
starts, for every command, so it must load without the ``train`` extra (torch, transformers) and
without the trainer; ``train.py`` turns a config into the trainer's arguments and trains.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError
from promptopt.optimizers.bpo.templates import BPO_TEMPLATE, split_template
from promptopt.records import parse_json, read_text
from promptopt.tracking.base import parse_track

log = logging.getLogger(__name__)

#: Training methods of ``bpo train --method``: supervised imitation, or preferences through TRL.
METHODS: tuple[str, ...] = ("sft", "dpo", "orpo")


def _opt(default: Any, *flags: str, help: str, show_default: bool = True) -> Any:  # noqa: A002
    """A field with its ``promptopt bpo train`` flag(s) and help in the metadata. The CLI is
    generated from these, so a new field is a new flag with no second list to keep in step."""
    meta = {"flags": flags, "help": help, "show_default": show_default}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


#: TrainingArguments fields that a TrainConfig field sets. ``training_args`` may not set them as
#: well (two sources for one value); it is for everything else (``lr_scheduler_type``, ``optim``,
#: ``report_to``, ``fsdp``, ``torch_compile``, ...).
OWN_TRAINER_FIELDS: Mapping[str, str] = types.MappingProxyType(
    {
        "output_dir": "out_dir",
        "num_train_epochs": "epochs",
        "max_steps": "max_steps",
        "learning_rate": "learning_rate",
        "per_device_train_batch_size": "batch_size",
        "per_device_eval_batch_size": "batch_size",
        "gradient_accumulation_steps": "grad_accum",
        "warmup_steps": "warmup_ratio",
        "warmup_ratio": "warmup_ratio",
        "weight_decay": "weight_decay",
        "max_grad_norm": "max_grad_norm",
        "seed": "seed",
        "data_seed": "seed",
        "bf16": "bf16",
        "logging_steps": "logging_steps",
        "save_steps": "save_steps",
        "eval_steps": "eval_steps",
        "save_total_limit": "save_total_limit",
        "deepspeed": "deepspeed",
        "disable_tqdm": "progress",
        "gradient_checkpointing": "gradient_checkpointing",
    }
)


@dataclass
class TrainConfig:
    """The arguments of one BPO training run: the keys of ``promptopt bpo train --config FILE``
    (JSON, or YAML with PyYAML) and, one flag each, the options of ``promptopt bpo train``.

    Why not a subclass of ``transformers.Seq2SeqTrainingArguments`` (TRL's way): defining one
    imports transformers and torch with this module, which the CLI and an install without the
    ``train`` extra must load. So the BPO fields and the trainer knobs BPO sets are fields here,
    and ``training_args`` passes any other ``TrainingArguments`` field through (``--training-arg
    lr_scheduler_type=cosine``); ``train.trainer_arguments`` builds the trainer's arguments.

    Defaults are the reference recipe (thu-coai/BPO src/training: ``config/sft_config.py``,
    ``config/deepspeed_offload.json``, ``train.py``): 5 epochs; 32 sequences per optimizer step;
    AdamW at peak learning rate 2e-5 (betas 0.9/0.999, eps 1e-8, weight decay 0.01); linear
    warmup over the first 10 % of the steps, then linear decay to 0; gradient clipping at 1.0;
    512 tokens per example.

    Effective batch = ``batch_size`` (sequences per device per forward pass) x ``grad_accum``
    (forward passes per optimizer step) x processes (``WORLD_SIZE``, set by ``torchrun`` and
    ``accelerate launch``). The reference ran 8 GPUs x 4 x 1 = 32. ``grad_accum`` None (the
    default) derives it from ``effective_batch_size``: 8 x 4 on one device, 8 x 2 under
    ``torchrun --nproc_per_node 2``, 8 x 1 on four. When ``effective_batch_size`` is not a
    multiple of ``batch_size`` x processes the nearest count is taken and a warning logged; the
    batch actually used is in the report. A given ``grad_accum`` wins over ``effective_batch_size``.
    """

    data: str = _opt(MISSING, "--data", help="Rewrite pairs: JSON/JSONL file or HF dataset id.")
    base_model: str = _opt(MISSING, "--base-model", help="Checkpoint to fine-tune (folder or HF id).")
    out_dir: str = _opt(MISSING, "--out", "-o", help="Output folder (model, tokenizer, bpo_rewriter.json).")
    val_data: str | None = _opt(None, "--val-data", help="Validation pairs (else a held-out split).")
    val_ratio: float = _opt(0.05, "--val-ratio", help="Held-out share of --data for validation loss.")
    method: str = _opt(
        "sft",
        "--method",
        help="sft: imitate (prompt, optimized_prompt) pairs; dpo or orpo: learn from (prompt, chosen, "
        "rejected) rows (bpo build-prefs) through TRL. dpo needs a decoder-only base; orpo also takes "
        "T5/BART. Preference runs want a lower --lr (LoRA ~5e-6, full ~5e-7) and fewer --epochs; "
        "--training-arg beta=0.1 sets DPO/ORPO's beta.",
    )
    epochs: float = _opt(5.0, "--epochs", help="Training epochs (reference: 5).")
    max_steps: int = _opt(-1, "--max-steps", help="Stop after this many steps (overrides epochs).")
    learning_rate: float = _opt(2e-5, "--lr", help="Peak learning rate (reference: 2e-5).")
    batch_size: int = _opt(8, "--batch-size", help="Sequences per device per forward pass.")
    effective_batch_size: int = _opt(
        32, "--effective-batch-size", help="Sequences per optimizer step, all devices (reference: 32)."
    )
    grad_accum: int | None = _opt(
        None, "--grad-accum", help="Gradient accumulation steps (default: from --effective-batch-size)."
    )
    max_length: int = _opt(512, "--max-length", help="Max tokens per example (reference: 512).")
    max_target_length: int | None = _opt(
        None, "--max-target-length", help="Seq2seq: max target tokens (default: --max-length)."
    )
    warmup_ratio: float = _opt(0.1, "--warmup-ratio", help="Linear warmup share of steps (reference: 0.1).")
    weight_decay: float = _opt(0.01, "--weight-decay", help="AdamW weight decay (reference: 0.01).")
    max_grad_norm: float = _opt(1.0, "--max-grad-norm", help="Gradient clipping (reference: 1.0).")
    seed: int = _opt(42, "--seed", help="Seed of initialisation, shuffling and the split.")
    bf16: bool = _opt(False, "--bf16", help="bfloat16 mixed precision.")
    template: str = _opt(
        BPO_TEMPLATE,
        "--template",
        help="Rewriter template with one {} for the prompt; \\n is a newline (default: BPO's).",
        show_default=False,
    )
    use_chat_template: bool = _opt(
        False, "--chat-template", help="Wrap the filled template in the tokenizer's chat template."
    )
    lora: bool = _opt(False, "--lora", help="Train LoRA adapters (merged into the saved model).")
    lora_r: int = _opt(8, "--lora-r", help="LoRA rank.")
    lora_alpha: int = _opt(16, "--lora-alpha", help="LoRA alpha.")
    lora_dropout: float = _opt(0.05, "--lora-dropout", help="LoRA dropout.")
    lora_target: str = _opt("all-linear", "--lora-target", help="Comma-separated module names.")
    gradient_checkpointing: bool = _opt(False, "--gradient-checkpointing", help="Save memory.")
    logging_steps: int = _opt(10, "--logging-steps", help="Log the loss every N steps.")
    save_steps: int = _opt(500, "--save-steps", help="Checkpoint every N steps.")
    eval_steps: int | None = _opt(None, "--eval-steps", help="Validate every N steps (else per epoch).")
    save_total_limit: int = _opt(2, "--save-total-limit", help="Checkpoints kept.")
    resume: bool = _opt(False, "--resume", help="Continue from the last checkpoint in --out.")
    overwrite: bool = _opt(False, "--overwrite", help="Train into a non-empty --out anyway.")
    deepspeed: str | None = _opt(None, "--deepspeed", help="DeepSpeed config JSON (torchrun / accelerate).")
    progress: bool = _opt(True, "--progress/--quiet", help="Show a progress bar.")
    limit: int | None = _opt(None, "--limit", help="Use only the first N pairs.")
    track: str | None = _opt(
        None,
        "--track",
        help="Experiment tracking: mlflow[:TRACKING_URI] (the `track` extra). The Trainer's MLflow "
        "integration logs the run; --resume continues it (OUT/tracking.json).",
    )
    training_args: dict[str, Any] = _opt(
        {},
        "--training-arg",
        help="KEY=VALUE: another transformers TrainingArguments field (VALUE read as JSON when it "
        "parses, else text); repeatable.",
        show_default=False,
    )

    def validate(self) -> None:
        """Refuse values the trainer would take silently, or fail on after minutes of loading."""
        checks = [
            (self.epochs > 0 or self.max_steps > 0, "epochs must be > 0 (or set max steps)"),
            (self.learning_rate > 0, "learning rate must be > 0"),
            (self.batch_size >= 1, "batch size must be >= 1"),
            (self.effective_batch_size >= 1, "effective batch size must be >= 1"),
            (self.grad_accum is None or self.grad_accum >= 1, "gradient accumulation must be >= 1"),
            (self.max_length >= 8, "max length must be >= 8"),
            (self.max_target_length is None or self.max_target_length >= 1, "max target length must be >= 1"),
            (0 <= self.warmup_ratio < 1, "warmup ratio must be in [0, 1)"),
            (0 <= self.val_ratio < 1, "validation ratio must be in [0, 1)"),
            (self.weight_decay >= 0, "weight decay must be >= 0"),
            (self.max_grad_norm > 0, "max grad norm must be > 0"),
            (self.lora_r >= 1, "LoRA rank must be >= 1"),
            (self.logging_steps >= 1, "logging steps must be >= 1"),
            (self.save_steps >= 1, "save steps must be >= 1"),
            (self.eval_steps is None or self.eval_steps >= 1, "eval steps must be >= 1"),
            (self.save_total_limit >= 1, "save total limit must be >= 1"),
            (self.limit is None or self.limit >= 1, "limit must be >= 1"),
            (not (self.resume and self.overwrite), "choose --resume or --overwrite, not both"),
            (self.method in METHODS, f"unknown --method {self.method!r}; choose {', '.join(METHODS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        split_template(self.template)
        if self.track is not None:  # an unknown tracker or a missing extra, before any loading
            parse_track(self.track)
        own = sorted(set(self.training_args) & set(OWN_TRAINER_FIELDS))
        if own:
            use = ", ".join(f"{k} -> {flag_of(OWN_TRAINER_FIELDS[k])}" for k in own)
            raise ConfigError(f"training_args may not set what a training option sets; use the option: {use}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "training config") -> TrainConfig:
        """A config from plain values (a parsed file, CLI flags). Unknown keys, missing required
        ones and wrongly typed values are one-line :class:`ConfigError` s naming ``source``."""
        known = {f.name: f for f in fields(cls)}
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{source}: unknown training option {key!r}{hint}")
        missing = [
            f"{name} ({flag_of(name)})"
            for name, f in known.items()
            if f.default is MISSING and f.default_factory is MISSING and values.get(name) is None
        ]
        if missing:
            raise ConfigError(f"{source}: missing {', '.join(missing)}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: _typed(k, v, hints[k], source) for k, v in values.items()})

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A config read from a JSON/YAML file whose keys are the fields; ``overrides`` win."""
        return cls.from_mapping({**read_config_file(path), **overrides}, source=str(path))


def flag_of(name: str) -> str:
    """The CLI flag of a TrainConfig field, for messages ("--lr" for learning_rate)."""
    for f in fields(TrainConfig):
        if f.name == name:
            return str(f.metadata["flags"][0]).split("/")[0]
    return name


def _typed(name: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` checked against the field's type; an int is taken where a float is expected."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for t in options:
        if t is type(None) and value is None:
            return None
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, int | float) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):  # NaN / inf: a finite number only
                raise ConfigError(f"{source}: {name} must be a finite number, got {value!r}")
            return float(value)
        if t is str and isinstance(value, str):
            return value
        if (
            typing.get_origin(t) is dict
            and isinstance(value, dict)
            and all(isinstance(k, str) for k in value)
        ):
            return dict(value)
    wanted = " or ".join(getattr(typing.get_origin(t), "__name__", None) or t.__name__ for t in options)
    raise ConfigError(f"{source}: {name} must be {wanted.replace('NoneType', 'null')}, got {value!r}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a JSON (or, with PyYAML installed, YAML) training config file."""
    p = Path(path).expanduser()
    text = read_text(p, error=ConfigError, what="config file")
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                f"{p}: a YAML config needs PyYAML (pip install pyyaml); or write JSON"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        data = parse_json(text, where=f"config file {p}", error=ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of training options, got {type(data).__name__}")
    return data


def parse_training_args(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--training-arg``) as a dict; a VALUE that parses as JSON is that
    JSON value (``3``, ``true``, ``["wandb"]``), anything else stays text (``cosine``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--training-arg wants KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def world_size() -> int:
    """Processes taking part in training: ``WORLD_SIZE`` as torchrun and accelerate set it."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def gradient_accumulation(cfg: TrainConfig, processes: int | None = None) -> int:
    """Forward passes per optimizer step: ``cfg.grad_accum``, else what reaches
    ``cfg.effective_batch_size`` with ``cfg.batch_size`` per device on ``processes`` devices."""
    if cfg.grad_accum is not None:
        return cfg.grad_accum
    per_pass = cfg.batch_size * (processes or world_size())
    steps = max(1, round(cfg.effective_batch_size / per_pass))
    if steps * per_pass != cfg.effective_batch_size:
        log.warning(
            "effective batch %d is not a multiple of %d sequences per pass; using %d x %d = %d",
            cfg.effective_batch_size, per_pass, steps, per_pass, steps * per_pass,
        )  # fmt: skip
    return steps
