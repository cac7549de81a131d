"""vLLM vs llama.cpp on the same model: tokens/s and scored pairs/s at 1 / 4 / 16 requests in flight.

Both servers serve the embedded Qwen2.5-Coder-0.5B: llama.cpp its GGUF (Q4_K_M), vLLM the bf16
folder converted from it (``promptopt models convert``). They are started one after the other
(never both at once: each wants the CPU cores), and per backend and concurrency two figures are
measured through promptopt's own OpenAI-compatible client:

- ``tokens_per_s``: completion tokens per wall second over ``--requests`` chat requests
  (temperature 0, ``--max-tokens``);
- ``pairs_per_s``: (instruction, GSM8K question) pairs scored per second through the instruction
  task's scorer path (:func:`promptopt.evaluators.accuracy.aevaluate_many`).

Resumable: each (backend, concurrency) cell is saved to ``bench/results/vllm_throughput.cells.jsonl``
as it finishes; a rerun skips finished cells (and does not start a server whose cells are done).
Writes ``bench/results/vllm_throughput.{json,md}``.

Run (the lead runs the full one; it starts a vLLM server, ~2-5 min on two cores):
    python bench/vllm_throughput.py --vllm-python /work/venvs/vllm/bin/python \\
        --vllm-model /work/models/qwen05-bf16 [--quick]
``--quick`` (< 1 min of measuring, plus the server starts): concurrency 1 and 4, 4 requests,
16 tokens, 4 pairs. GSM8K from ``--data-dir`` (default the shared data), else the Hub.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ResultBook, emit, md_table, note, r, run_main  # noqa: E402
from promptopt.errors import ConfigError  # noqa: E402

NAME = "vllm_throughput"
SERVED = "qwen05"
PROMPTS = [
    "Explain in three sentences why the sky is blue.",
    "Write a short Python function that reverses a string, with a docstring.",
    "List five uses of a paperclip.",
    "Summarise the plot of Romeo and Juliet in four sentences.",
]
INSTRUCTIONS = ["Let's think step by step.", "Solve the problem and give the final number."]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(cmd: list[str], port: int, log: Path, timeout_s: float, env: dict[str, str]) -> Iterator[str]:
    """Start one OpenAI-compatible server, wait for /v1/models, yield its base URL, stop it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)  # noqa: S603
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ConfigError(f"server exited ({proc.returncode}); see {log}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ConfigError(f"server not up after {timeout_s:.0f} s; see {log}")
            time.sleep(2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


async def measure(
    url: str, concurrency: int, args: argparse.Namespace, examples: list[Any]
) -> dict[str, Any]:
    from promptopt.evaluators.accuracy import aevaluate_many
    from promptopt.llm.base import Request
    from promptopt.llm.factory import build_llm

    llm = build_llm(f"openai:{SERVED}@{url}", cache_policy="off", max_concurrency=concurrency)
    try:
        reqs = [
            Request.chat(PROMPTS[i % len(PROMPTS)], max_tokens=args.max_tokens, seed=i)
            for i in range(args.requests)
        ]
        await llm.agenerate(reqs[:1])  # warm-up, untimed
        t0 = time.perf_counter()
        done = await llm.agenerate(reqs)
        gen_s = time.perf_counter() - t0
        tokens = sum(c.usage.completion_tokens for c in done)
        t0 = time.perf_counter()
        evals = await aevaluate_many(
            llm, INSTRUCTIONS, examples, position="Q_begin", max_tokens=args.max_tokens, seed=0
        )
        score_s = time.perf_counter() - t0
        pairs = sum(len(e.records) for e in evals)
        failed = sum(e.failed for e in evals)
    finally:
        await llm.aclose()
    return {
        "tokens": tokens,
        "gen_seconds": r(gen_s),
        "tokens_per_s": r(tokens / gen_s, 1),
        "pairs": pairs,
        "failed_pairs": failed,
        "score_seconds": r(score_s),
        "pairs_per_s": r(pairs / score_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--vllm-python", default=os.environ.get("PROMPTOPT_VLLM_PYTHON"), help="python of the vLLM venv"
    )
    ap.add_argument(
        "--vllm-model", default=os.environ.get("PROMPTOPT_VLLM_MODEL"), help="converted bf16 folder"
    )
    ap.add_argument("--gguf", default=None, help="GGUF for llama.cpp (default: the embedded Qwen 0.5B)")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=16, help="GSM8K questions (x2 instructions)")
    ap.add_argument("--data-dir", default="/work/shared/data/opro/gsm_data")
    ap.add_argument("--start-timeout", type=float, default=900)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.concurrency, args.requests, args.max_tokens, args.pairs = "1,4", 4, 16, 2
    if not args.vllm_python or not args.vllm_model:
        raise ConfigError(
            "pass --vllm-python and --vllm-model (or PROMPTOPT_VLLM_PYTHON / PROMPTOPT_VLLM_MODEL)"
        )
    levels = [int(x) for x in args.concurrency.split(",")]

    from promptopt.tasks.instructions.datasets import load_dataset

    data_dir = args.data_dir if Path(args.data_dir).is_dir() else None
    examples = list(load_dataset("gsm8k", data_dir=data_dir).pool)[: args.pairs]
    if args.gguf is None:
        from promptopt.llm.embedded import DEFAULT_LOCAL_MODEL, EMBEDDED_MODELS, ensure_weights

        args.gguf = str(ensure_weights(EMBEDDED_MODELS[DEFAULT_LOCAL_MODEL]))

    book = ResultBook(NAME)
    key = f"{args.requests}r:{args.max_tokens}t:{args.pairs}p"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
    }
    logs = Path(book.path(".logs"))
    logs.mkdir(exist_ok=True)
    backends = {
        "llama.cpp": lambda port: [sys.executable, "-m", "llama_cpp.server", "--model", args.gguf,
                                   "--model_alias", SERVED, "--host", "127.0.0.1", "--port", str(port),
                                   "--n_ctx", "2048"],
        "vllm": lambda port: [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model",
                              args.vllm_model, "--served-model-name", SERVED, "--host", "127.0.0.1",
                              "--port", str(port), "--dtype", "bfloat16", "--max-model-len", "2048",
                              "--no-enable-chunked-prefill"],
    }  # fmt: skip
    for backend, cmd in backends.items():
        todo = [c for c in levels if book.get(f"{backend}:{c}:{key}") is None]
        if not todo:
            continue
        port = _free_port()
        note(f"starting {backend} ...")
        with served(cmd(port), port, logs / f"{backend}.log", args.start_timeout, env) as url:
            for c in todo:
                row = asyncio.run(measure(url, c, args, examples))
                rec = book.add(f"{backend}:{c}:{key}", {"backend": backend, "concurrency": c, **row})
                emit(NAME, "cell", **rec)
    cells = [c for c in book.cells() if str(c["key"]).endswith(key)]
    by = {(c["backend"], c["concurrency"]): c for c in cells}
    ratios = {
        c: {
            "tokens": r(by[("vllm", c)]["tokens_per_s"] / by[("llama.cpp", c)]["tokens_per_s"], 2),
            "pairs": r(by[("vllm", c)]["pairs_per_s"] / by[("llama.cpp", c)]["pairs_per_s"], 2),
        }
        for c in levels
        if ("vllm", c) in by and ("llama.cpp", c) in by
    }
    rows = [
        [b, c, by[(b, c)]["tokens_per_s"], by[(b, c)]["pairs_per_s"], by[(b, c)]["failed_pairs"]]
        for b in backends
        for c in levels
        if (b, c) in by
    ]
    md = "\n".join(
        ["# vLLM vs llama.cpp (Qwen2.5-Coder-0.5B)", "",
         *md_table(["backend", "in flight", "tokens/s", "scored pairs/s", "failed pairs"], rows), "",
         "vLLM / llama.cpp: " + ", ".join(f"{c}: tokens x{v['tokens']}, pairs x{v['pairs']}" for c, v in ratios.items())]
    )  # fmt: skip
    paths = book.write({"settings": vars(args)}, cells, {"ratios": ratios}, md + "\n")
    emit(NAME, "summary", ratios=ratios, **paths)
    book.close()


if __name__ == "__main__":
    run_main(main)
