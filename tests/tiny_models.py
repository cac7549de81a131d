"""Tiny real models built offline for tests and benches: a byte-level BPE tokenizer trained on
the fly (no download) and a few-ten-thousand-parameter Qwen2 decoder on top of it.

Why shared: the hf backend, the BPO rewriter and trainer tests and the rewrite bench all need the
same kind of model; one builder keeps their construction (and its pitfalls: byte-level alphabet,
eos = pad for left padding) in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

QWEN_EOS = "<|endoftext|>"


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
