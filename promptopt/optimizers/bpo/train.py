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

The trainer plumbing that preference training shares (model loading, trainer arguments, the
output-directory checks, saving, :class:`TrainReport`) lives in :mod:`.train_common`, so that
``train`` → ``train_pref`` → ``train_common`` is one-way; its public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, DataError
from promptopt.extras import require
from promptopt.optimizers.bpo.templates import Family, PromptEncoder, detect_family
from promptopt.optimizers.bpo.train_common import (
    CHECKPOINT_PREFIX,
    TrainReport,
    _check_out_dir,
    _load_model,
    _transformers_version,
    distributed_teardown,
    last_checkpoint,
    launcher_defaults,
    load_split,
    lora_config,
    rewriter_setup,
    split_pairs,
    train_and_save,
    trainer_arguments,
)
from promptopt.optimizers.bpo.train_config import (
    TrainConfig,
    gradient_accumulation,
    read_config_file,
    world_size,
)
from promptopt.optimizers.bpo.train_pref import train_preference

__all__ = [
    "CHECKPOINT_PREFIX",
    "Pair",
    "TrainConfig",
    "TrainReport",
    "detect_family",
    "distributed_teardown",
    "encode_causal",
    "encode_seq2seq",
    "gradient_accumulation",
    "last_checkpoint",
    "launcher_defaults",
    "load_pairs",
    "load_split",
    "lora_config",
    "read_config_file",
    "rewriter_setup",
    "split_pairs",
    "train_and_save",
    "train_rewriter",
    "trainer_arguments",
    "world_size",
]


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


# --------------------------------------------------------------------------- training


def _apply_lora(model: Any, cfg: TrainConfig, family: Family) -> Any:
    peft = require("peft", "train", what="--lora")
    return peft.get_peft_model(model, lora_config(cfg, family))


def _tokenize(pairs: Sequence[Pair], encoder: PromptEncoder, family: Family, cfg: TrainConfig) -> Any:
    from datasets import Dataset

    max_target = cfg.max_target_length or cfg.max_length
    if family == "causal":
        rows = [encode_causal(encoder, p, cfg.max_length) for p in pairs]
    else:
        rows = [encode_seq2seq(encoder, p, cfg.max_length, max_target) for p in pairs]
    return Dataset.from_dict({k: [r[k] for r in rows] for k in ("input_ids", "attention_mask", "labels")})


def train_rewriter(cfg: TrainConfig, *, callbacks: Sequence[Any] = ()) -> TrainReport:
    """Train a rewriter as ``cfg`` says and save it to ``cfg.out_dir``.

    Run under ``torchrun`` or ``accelerate launch`` for several GPUs or nodes: the Trainer picks
    up the distributed environment, and only the main process writes the final directory. The
    process group it starts is destroyed before this returns (:func:`distributed_teardown`).
    """
    cfg.validate()
    if cfg.method != "sft":  # preference training (DPO, ORPO) through TRL
        return train_preference(cfg, callbacks=callbacks)
    with distributed_teardown():
        return _train_sft(cfg, callbacks)


def _train_sft(cfg: TrainConfig, callbacks: Sequence[Any]) -> TrainReport:
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
