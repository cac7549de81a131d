"""Preference training of a BPO rewriter: (prompt, chosen, rejected) rows → a rewriter directory.

SFT (``train.py``) teaches the rewriter to imitate one rewrite; DPO and ORPO teach it which of two
rewrites of the same prompt helped the target model more (rows from ``bpo build-prefs``,
:mod:`promptopt.optimizers.bpo.preference`). The trainers are TRL's: ``trl.DPOTrainer`` and
``trl.experimental.orpo.ORPOTrainer``, each with its config dataclass built from the same
:class:`TrainConfig` as SFT (``train_common.trainer_arguments`` with TRL's config class). The
plumbing shared with SFT comes from :mod:`.train_common`, never from ``train`` (which hands
``--method dpo|orpo`` to :func:`train_preference`), so the import goes one way.

Which method for which model (decided from TRL 1.16's code, not its docs):
- ``dpo``: decoder-only rewriters only. ``DPOTrainer`` tokenizes prompt + completion as one causal
  sequence and patches a fused causal LM head; it has no encoder-decoder path any more. A T5/BART
  base with ``--method dpo`` is a one-line :class:`ConfigError` pointing to ``--method orpo``.
- ``orpo``: both families (``ORPOTrainer`` keeps an ``is_encoder_decoder`` path). ORPO needs no
  reference model at all (the odds-ratio term is added to the SFT loss of the chosen rewrite).

Fitting one device: with ``--lora`` DPO's reference is the base model with the adapters switched
off (``ref_model=None``, no second copy); without LoRA the reference log-probabilities are
computed once before training (``precompute_ref_log_probs``) so no reference model stays in memory.

Exactly SFT's input: the prompt side of every row is the rewriter's template filled through
:class:`~promptopt.optimizers.bpo.templates.PromptEncoder` (header, prompt, tail tokenized apart,
the prompt cut first), the same ids ``bpo rewrite`` feeds the model. So rows are tokenized here and
the trainers' own text tokenization is bypassed (``_prepare_dataset`` / ``tokenize_row``). The
output folder is SFT's: ``save_pretrained`` weights (LoRA merged), tokenizer and
``bpo_rewriter.json``, loaded by :class:`~promptopt.optimizers.bpo.rewriter.Rewriter` unchanged.
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
    TrainReport,
    _check_out_dir,
    _load_model,
    distributed_teardown,
    load_split,
    lora_config,
    rewriter_setup,
    train_and_save,
    trainer_arguments,
)
from promptopt.optimizers.bpo.train_config import TrainConfig

__all__ = [
    "Preference",
    "check_method",
    "encode_preference_causal",
    "encode_preference_seq2seq",
    "load_preferences",
    "train_preference",
]


@dataclass(frozen=True)
class Preference:
    """One preference row: a user prompt, the rewrite that helped more and the one that helped less."""

    prompt: str
    chosen: str
    rejected: str


def check_method(method: str, family: Family) -> None:
    """Refuse a method the installed TRL cannot train on this model family (one line)."""
    if method == "dpo" and family == "seq2seq":
        raise ConfigError(
            "--method dpo needs a decoder-only base (TRL's DPOTrainer no longer trains encoder-decoder "
            "models); use --method orpo for T5/BART, or a causal base such as Qwen or Llama"
        )
    if method not in ("dpo", "orpo"):
        raise ConfigError(f"preference training supports --method dpo or orpo, got {method!r}")


# --------------------------------------------------------------------------- data


def rows_to_preferences(rows: Iterable[dict[str, Any]], source: str) -> list[Preference]:
    """``{prompt, chosen, rejected}`` rows (build-prefs' output: rows whose ``status`` is not
    ``kept`` are skipped); rows with an empty side or chosen == rejected are skipped too."""
    out: list[Preference] = []
    for i, row in enumerate(rows):
        if row.get("status") not in (None, "kept"):
            continue
        if not all(k in row for k in ("prompt", "chosen", "rejected")):
            keys = ", ".join(sorted(map(str, row))) or "none"
            raise DataError(
                f"{source}: row {i} lacks 'prompt'/'chosen'/'rejected' (its keys: {keys}); "
                "preference training reads bpo build-prefs output"
            )
        p, c, r = row["prompt"], row["chosen"], row["rejected"]
        if not all(isinstance(x, str) and x.strip() for x in (p, c, r)):
            continue
        if c.strip() == r.strip():
            continue
        out.append(Preference(p.strip(), c.strip(), r.strip()))
    return out


def load_preferences(source: str | Path, *, split: str = "train") -> list[Preference]:
    """Preference rows from a local JSON/JSONL file or a Hugging Face dataset id.

    Local files are read as plain records (build-prefs rows carry nested candidate tables that
    need no Arrow schema); hub datasets through ``datasets``."""
    from promptopt.records import read_records

    src = str(source)
    path = Path(src).expanduser()
    rows: Iterable[dict[str, Any]]
    if path.is_file():
        rows = read_records(path)
    elif path.suffix.lower() in (".json", ".jsonl") or src.startswith((".", "/", "~")):
        raise DataError(f"preference data file {src} does not exist")
    else:
        import datasets

        try:
            rows = datasets.load_dataset(src, split=split)
        except Exception as exc:  # datasets raises many types for unreadable / unknown sources
            raise DataError(f"cannot load preference data {src!r}: {exc.__class__.__name__}: {exc}") from None
    prefs = rows_to_preferences(rows, src)
    if not prefs:
        raise DataError(f"{src}: no usable (prompt, chosen, rejected) rows")
    return prefs


# --------------------------------------------------------------------------- tokenization


def _cut(n_prompt: int, n_target: int, room: int) -> tuple[int, int]:
    """Prompt and target token counts that fit ``room``, the longer side cut first (as SFT)."""
    if n_prompt + n_target <= room:
        return n_prompt, n_target
    if n_target >= n_prompt:
        nt = max(room - n_prompt, room // 2)
        return room - nt, nt
    np_ = max(room - n_target, room // 2)
    return np_, room - np_


def encode_preference_causal(
    encoder: PromptEncoder, pref: Preference, max_length: int
) -> dict[str, list[int]]:
    """``prompt_ids`` (template-filled, as SFT and rewriting build them) and ``chosen_ids`` /
    ``rejected_ids`` (rewrite + EOS), cut so that prompt + the longer rewrite fit ``max_length``."""
    tok = encoder.tokenizer
    if tok.eos_token_id is None:
        raise ConfigError("the tokenizer has no EOS token; a causal rewriter needs one to stop")
    room = max_length - encoder.fixed_length - 1
    if room < 2:
        raise ConfigError(
            f"max length {max_length} is too small: the template alone takes {encoder.fixed_length} tokens"
        )
    p = encoder.prompt_ids(pref.prompt)
    c = list(tok(pref.chosen, add_special_tokens=False)["input_ids"])
    r = list(tok(pref.rejected, add_special_tokens=False)["input_ids"])
    np_, nt = _cut(len(p), max(len(c), len(r)), room)
    return {
        "prompt_ids": encoder.join(p[:np_]),
        "chosen_ids": c[:nt] + [tok.eos_token_id],
        "rejected_ids": r[:nt] + [tok.eos_token_id],
    }


def encode_preference_seq2seq(
    encoder: PromptEncoder, pref: Preference, max_length: int, max_target_length: int
) -> dict[str, list[int]]:
    """Encoder input ids and chosen / rejected target ids for a seq2seq rewriter (as SFT's)."""
    tok = encoder.tokenizer

    def target(text: str) -> list[int]:
        return list(tok(text_target=text, truncation=True, max_length=max_target_length)["input_ids"])

    return {
        "prompt_ids": encoder.source(pref.prompt, max_length),
        "chosen_ids": target(pref.chosen),
        "rejected_ids": target(pref.rejected),
    }


def _dataset(prefs: Sequence[Preference], encoder: PromptEncoder, family: Family, cfg: TrainConfig) -> Any:
    from datasets import Dataset

    if family == "causal":
        rows = [encode_preference_causal(encoder, p, cfg.max_length) for p in prefs]
    else:
        max_target = cfg.max_target_length or cfg.max_length
        rows = [encode_preference_seq2seq(encoder, p, cfg.max_length, max_target) for p in prefs]
    keys = ("prompt_ids", "chosen_ids", "rejected_ids")
    return Dataset.from_dict({k: [r[k] for r in rows] for k in keys})


# --------------------------------------------------------------------------- trainers


def _dpo_trainer_class() -> Any:
    """``DPOTrainer`` taking rows tokenized here (its own step re-tokenizes text, which would
    join template and prompt differently from SFT and rewriting)."""
    trl = require("trl", "train")

    class PretokenizedDPOTrainer(trl.DPOTrainer):  # type: ignore[misc, name-defined]
        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            return dataset

    return PretokenizedDPOTrainer


def _orpo_trainer_class() -> Any:
    """``ORPOTrainer`` whose ``tokenize_row`` lays out ids tokenized here (both families)."""
    require("trl", "train")
    from trl.experimental.orpo import ORPOTrainer

    class PretokenizedORPOTrainer(ORPOTrainer):  # type: ignore[misc, valid-type]
        def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, Any]:
            prompt, chosen, rejected = feature["prompt_ids"], feature["chosen_ids"], feature["rejected_ids"]
            batch: dict[str, Any] = {
                "prompt_input_ids": list(prompt),
                "prompt_attention_mask": [1] * len(prompt),
            }
            if self.is_encoder_decoder:
                batch["chosen_labels"] = list(chosen)
                batch["rejected_labels"] = list(rejected)
                return batch
            for side, ids in (("chosen", chosen), ("rejected", rejected)):
                full = list(prompt) + list(ids)
                batch[f"{side}_input_ids"] = full
                batch[f"{side}_attention_mask"] = [1] * len(full)
                batch[f"{side}_labels"] = [-100] * len(prompt) + list(ids)
            return batch

    return PretokenizedORPOTrainer


def _checkpointing(cfg: TrainConfig, config_cls: Any) -> dict[str, Any]:
    """``--gradient-checkpointing`` stated explicitly: TRL's configs default it to True (the
    TrainingArguments default, and SFT's, is False). transformers 5.x renamed the field
    ``activation_checkpointing`` and warns on the old name."""
    from dataclasses import fields

    names = {f.name for f in fields(config_cls)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {key: cfg.gradient_checkpointing}


def train_preference(cfg: TrainConfig, *, callbacks: Sequence[Any] = ()) -> TrainReport:
    """Train a rewriter with DPO or ORPO as ``cfg`` says; save it like SFT to ``cfg.out_dir``.

    ``cfg.data`` (and ``cfg.val_data``) hold ``{prompt, chosen, rejected}`` rows. ``cfg.training_args``
    may set any field of TRL's ``DPOConfig`` / ``ORPOConfig`` (``beta``, ``loss_type``, ...).
    The process group the trainer starts is destroyed before this returns, as for SFT.
    """
    with distributed_teardown():
        return _train_preference(cfg, callbacks)


def _train_preference(cfg: TrainConfig, callbacks: Sequence[Any]) -> TrainReport:
    cfg.validate()
    for module in ("torch", "transformers", "accelerate", "trl"):
        require(module, "train")
    family = detect_family(cfg.base_model)
    check_method(cfg.method, family)
    resume_from = _check_out_dir(cfg)
    tokenizer, rw_cfg, encoder = rewriter_setup(cfg, family)
    train_prefs, val_prefs = load_split(cfg, load_preferences)
    train_ds = _dataset(train_prefs, encoder, family, cfg)
    val_ds = _dataset(val_prefs, encoder, family, cfg) if val_prefs else None

    if cfg.method == "dpo":
        from trl import DPOConfig

        # ref_model=None: with LoRA the reference is the base with adapters off; without LoRA
        # the reference log-probabilities are computed once up front, so no second model stays.
        extra = {
            "max_length": cfg.max_length,
            "precompute_ref_log_probs": not cfg.lora,
            **_checkpointing(cfg, DPOConfig),
        }
        args = trainer_arguments(cfg, family, val_ds is not None, cls=DPOConfig, extra=extra)
        trainer_cls = _dpo_trainer_class()
    else:
        from trl.experimental.orpo import ORPOConfig

        extra = {
            "max_length": cfg.max_length,
            "is_encoder_decoder": family == "seq2seq",
            **_checkpointing(cfg, ORPOConfig),
        }
        if family == "seq2seq":
            extra["max_completion_length"] = cfg.max_target_length or cfg.max_length
        args = trainer_arguments(cfg, family, val_ds is not None, cls=ORPOConfig, extra=extra)
        trainer_cls = _orpo_trainer_class()

    model = _load_model(cfg.base_model, family, cfg.bf16, cfg.lora)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=lora_config(cfg, family) if cfg.lora else None,
        callbacks=list(callbacks),
    )
    return train_and_save(
        trainer, args, cfg, rw_cfg, tokenizer, len(train_prefs), len(val_prefs), resume_from=resume_from
    )
