"""Rewrites per second: batched ``Rewriter.rewrite`` against one prompt at a time, same run.

Usage::

    python bench/bpo_rewrites_per_s.py                      # tiny random Qwen2 built on the fly
    python bench/bpo_rewrites_per_s.py --rewriter DIR       # a trained rewriter folder
    python bench/bpo_rewrites_per_s.py --train              # also training steps/s of tiny models

With the default tiny random model both ways generate the same number of new tokens per prompt
(``--max-new-tokens``; a random model rarely emits EOS), so the ratio is the gain from batching
alone. A trained rewriter stops at EOS, and a batch runs until its longest row is done, so
there the ratio also reflects output lengths; on CPU, short outputs behind long prompts are
prefill-bound (compute), where batching gains little. ``--train`` trains the
tiny decoder-only and seq2seq models of the integration test for ``--steps`` steps and prints
the Trainer's steps/s.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

WORDS = "cat dog red blue sun moon tree fish bird car please write explain the a poem about".split()


TRAIN_WORDS = WORDS[:10]  # the integration test's copy-task vocabulary


def tiny_causal(path: Path, hidden: int) -> Path:
    from promptopt.optimizers.bpo.templates import RewriterConfig
    from promptopt.testing import tiny_qwen2

    corpus = [" ".join(random.Random(i).sample(WORDS, 5)) for i in range(300)]
    tiny_qwen2(path, corpus, vocab_size=400, hidden_size=hidden, max_position_embeddings=512)
    RewriterConfig(family="causal", template="Improve this prompt:\n{}\nBetter:", max_length=128).save(path)
    return path


def bench_rewrite(rewriter_dir: Path, n_prompts: int, max_new: int, batch_size: int) -> dict[str, float]:
    from promptopt.optimizers.bpo.rewriter import Rewriter

    rng = random.Random(1)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16))) for _ in range(n_prompts)]
    rw = Rewriter.load(rewriter_dir, "cpu", batch_size=batch_size)
    rw.rewrite(prompts[:2], max_new_tokens=4)  # warm-up
    t0 = time.perf_counter()
    rw.rewrite(prompts, max_new_tokens=max_new)
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in prompts:
        rw.rewrite([p], max_new_tokens=max_new)
    single = time.perf_counter() - t0
    return {
        "prompts": n_prompts,
        "batched_rewrites_per_s": n_prompts / batched,
        "one_at_a_time_rewrites_per_s": n_prompts / single,
        "speedup": single / batched,
    }


def _train_qwen2(path: Path) -> Path:
    """The tiny decoder-only model of tests/integration/test_bpo_train_decoder.py."""
    from promptopt.testing import tiny_qwen2

    corpus = [" ".join(random.Random(i).sample(TRAIN_WORDS, 3)) for i in range(200)]
    return tiny_qwen2(path, [*corpus, "Improve this prompt:\n"])


def _train_bart(path: Path) -> Path:
    """The tiny seq2seq model of tests/integration/test_bpo_train_decoder.py."""
    from promptopt.testing import tiny_bart

    return tiny_bart(path, [*TRAIN_WORDS, "Improve", "this:"])


def bench_train(steps: int, work: Path) -> dict[str, float]:
    """Trainer steps/s of the integration test's tiny decoder-only and seq2seq models."""
    from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter

    rng = random.Random(0)
    rows = [" ".join(rng.choice(TRAIN_WORDS) for _ in range(3)) for _ in range(400)]
    data = work / "copy.jsonl"
    data.write_text("".join(json.dumps({"prompt": r, "optimized_prompt": r}) + "\n" for r in rows))
    out: dict[str, float] = {}
    for name, build in (("decoder_only", _train_qwen2), ("seq2seq", _train_bart)):
        base = build(work / f"{name}-base")
        rep = train_rewriter(
            TrainConfig(
                data=str(data),
                base_model=str(base),
                out_dir=str(work / f"{name}-out"),
                template="Improve this: {}",
                max_steps=steps,
                learning_rate=3e-3,
                batch_size=16,
                grad_accum=1,  # 16 pairs per step as before the 32-per-step default
                max_length=48,
                logging_steps=10_000,
                save_steps=10_000,
                progress=False,
            )
        )
        out[f"{name}_train_steps_per_s"] = rep.steps_per_second or 0.0
        out[f"{name}_eval_loss"] = rep.eval_loss or 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rewriter", type=Path, help="rewriter folder (default: tiny random Qwen2)")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=128, help="hidden size of the tiny model")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--train", action="store_true", help="also measure training steps/s")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rdir = args.rewriter or tiny_causal(work / "tiny", args.hidden)
        result: dict[str, float | str] = {"rewriter": str(args.rewriter or f"tiny-qwen2-h{args.hidden}")}
        result.update(bench_rewrite(rdir, args.prompts, args.max_new_tokens, args.batch_size))
        if args.train:
            result.update(bench_train(args.steps, work))
    result["torch_threads"] = torch.get_num_threads()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
