"""Tiny real models built offline, for tests and benchmarks of rewriters and in-process backends.

A byte-level BPE tokenizer trained on the fly (no download), a few-ten-thousand-parameter Qwen2
decoder on top of it, and a word-level tiny BART. Why in the package: promptopt's own tests and
benchmarks need the same models (the benchmarks must not import the tests), and users testing
their own rewriter pipelines or ``hf:`` setups can use them too. One builder keeps their
construction (and its pitfalls: byte-level alphabet, eos = pad for left padding) in one place.
:func:`write_jsonl` writes the small data files they train and read on.

Needs the ``train`` extra (torch, transformers; tokenizers comes with transformers), imported when
a builder is called, never at import time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

QWEN_EOS = "<|endoftext|>"


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` to ``path`` as JSONL (one object a line, parent folders made); return ``path``.
    The inverse of :func:`promptopt.records.read_records` for the data files tests build."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def byte_bpe_tokenizer(
    corpus: Iterable[str],
    *,
    vocab_size: int,
    special_tokens: Sequence[str] = (QWEN_EOS,),
    unk_token: str | None = None,
    **token_names: str,
) -> Any:
    """A ``PreTrainedTokenizerFast`` with a byte-level BPE vocabulary trained on ``corpus``.
    ``token_names`` are passed on (``eos_token=..., pad_token=...``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=unk_token) if unk_token else models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(corpus), trainer)
    if unk_token:
        token_names["unk_token"] = unk_token
    return PreTrainedTokenizerFast(tokenizer_object=tok, **token_names)


def tiny_qwen2(
    path: Path,
    corpus: Iterable[str],
    *,
    vocab_size: int = 300,
    hidden_size: int = 64,
    intermediate_size: int | None = None,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    max_position_embeddings: int = 256,
) -> Path:
    """Save a randomly initialised (seed 0) tiny Qwen2 with its tokenizer to ``path``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    fast = byte_bpe_tokenizer(corpus, vocab_size=vocab_size, eos_token=QWEN_EOS, pad_token=QWEN_EOS)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def tiny_bart(
    path: Path, words: Sequence[str], *, d_model: int = 64, max_position_embeddings: int = 64
) -> Path:
    """Save a randomly initialised (seed 0) ~100k-parameter BART with a word-level tokenizer over
    ``words`` (plus ``<pad>``, ``</s>``, ``<unk>``; every input gets ``</s>`` appended) to ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    cfg = BartConfig(
        vocab_size=len(vocab),
        d_model=d_model,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        decoder_start_token_id=1,
        forced_eos_token_id=1,
        dropout=0.0,
    )
    BartForConditionalGeneration(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path
