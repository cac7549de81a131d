"""Load time and generation speed of the embedded models, through promptopt and through raw llama.cpp.

    python bench/local_tokens_per_s.py [--models qwen2.5-coder-0.5b smollm2-135m] [--threads 1 2]
                                       [--reps 3] [--max-tokens 64]

For each model and thread count: a fresh backend is loaded (``load_s``: weights check + llama.cpp
load; the weights are assembled beforehand so assembly is not counted), one warm-up call, then
``reps`` greedy chat calls of up to ``max_tokens``. ``tok_s`` is completion tokens / wall time of
the call (the repeated prompt is served from llama.cpp's prefix cache, so this is ~decode speed).
The baseline is ``llama_cpp.Llama.create_chat_completion`` called directly in the same process
with the same settings; ``ratio`` = promptopt / raw shows the cost of the backend's plumbing
(worker thread, event loop). Numbers on a shared machine are approximate: run it alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from promptopt.llm.base import Request
from promptopt.llm.embedded import EMBEDDED_MODELS, ensure_weights
from promptopt.llm.local import LlamaCppLLM

PROMPT = "Write a short poem about the sea."


def bench_promptopt(name: str, threads: int, reps: int, max_tokens: int) -> tuple[float, float]:
    llm = LlamaCppLLM(EMBEDDED_MODELS[name], n_threads=threads, n_ctx=1024)
    t0 = time.perf_counter()
    llm.generate([Request.chat("Hi", max_tokens=1)])  # loads
    load_s = llm.load_seconds or (time.perf_counter() - t0)
    req = Request.chat(PROMPT, max_tokens=max_tokens)
    llm.generate([req])  # warm-up, fills the prefix cache
    speeds = []
    for _ in range(reps):
        t = time.perf_counter()
        [out] = llm.generate([req])
        speeds.append(out.usage.completion_tokens / (time.perf_counter() - t))
    llm.close()
    return load_s, statistics.median(speeds)


def bench_raw(name: str, threads: int, reps: int, max_tokens: int) -> tuple[float, float]:
    from llama_cpp import Llama

    path = ensure_weights(EMBEDDED_MODELS[name])
    t0 = time.perf_counter()
    llama = Llama(model_path=str(path), n_ctx=1024, n_threads=threads, verbose=False)
    load_s = time.perf_counter() - t0
    messages = [{"role": "user", "content": PROMPT}]
    llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
    speeds = []
    for _ in range(reps):
        t = time.perf_counter()
        out = llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
        speeds.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t))
    llama.close()
    return load_s, statistics.median(speeds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "smollm2-135m"])
    ap.add_argument("--threads", nargs="+", type=int, default=sorted({1, os.cpu_count() or 1}))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    print(
        f"cpu_count={os.cpu_count()} loadavg={os.getloadavg()[0]:.1f} (numbers are approximate on a shared machine)"
    )
    print(
        f"{'model':<22}{'threads':>8}{'load_s':>9}{'tok_s':>9}{'raw_load_s':>12}{'raw_tok_s':>11}{'ratio':>7}"
    )
    for name in args.models:
        ensure_weights(EMBEDDED_MODELS[name])  # assembly is a one-time cost, not measured here
        for threads in args.threads:
            load_s, tok_s = bench_promptopt(name, threads, args.reps, args.max_tokens)
            raw_load_s, raw_tok_s = bench_raw(name, threads, args.reps, args.max_tokens)
            print(
                f"{name:<22}{threads:>8}{load_s:>9.2f}{tok_s:>9.1f}{raw_load_s:>12.2f}{raw_tok_s:>11.1f}"
                f"{tok_s / raw_tok_s:>7.2f}"
            )


if __name__ == "__main__":
    main()
