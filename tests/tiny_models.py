"""The tiny offline models live in :mod:`promptopt.testing` (the benchmarks use them too, and bench
code must not import tests); this module keeps the tests' import path."""

from promptopt.testing import QWEN_EOS, byte_bpe_tokenizer, tiny_bart, tiny_qwen2, write_jsonl

__all__ = ["QWEN_EOS", "byte_bpe_tokenizer", "tiny_bart", "tiny_qwen2", "write_jsonl"]
