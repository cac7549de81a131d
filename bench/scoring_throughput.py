"""Benchmark 1: scoring throughput against a remote-like API (fixed latency per request).

The same (instruction, question) pairs are scored three ways in one run, against one local
stand-in server (``standin_server.py``: asyncio, fixed latency, a number for an answer):

1. ``sequential``: a sync ``openai.OpenAI`` client, one request after another — what the OPRO
   reference code does when it scores with one server;
2. ``bare_asyncio``: ``openai.AsyncOpenAI`` + ``asyncio.gather`` under a semaphore at the same
   concurrency as promptopt (16) — the ceiling for a Python client;
3. ``promptopt``: the instruction task's scorer path,
   :func:`promptopt.evaluators.accuracy.aevaluate_many` over
   ``build_llm("openai:standin@http://127.0.0.1:PORT/v1", cache_policy="off")``.

All three send identical request bodies (built by ``accuracy.build_request``) and grade every
answer with the same grader. The concurrent ways are timed ``--repeats`` times, interleaved, and
their medians are compared. Targets: promptopt ≥ 10× sequential and ≥ 0.9× the bare loop.

Prints one JSON line per figure: ``sequential``, ``bare_asyncio``, ``promptopt``, ``ratios``,
``check`` (every way got the same answer to every pair, i.e. sent the same requests).

Run: ``python bench/scoring_throughput.py [--latency 0.1] [--instructions 8 --questions 25]``
(GSM8K questions from ``--data-dir``, else ``$PROMPTOPT_DATA_DIR``, else the Hub).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

import openai
from _common import emit, machine, r, run_main
from standin_server import StandinServer

from promptopt.evaluators.accuracy import aevaluate_many, build_request, grade_example
from promptopt.llm.base import Request
from promptopt.llm.factory import build_llm
from promptopt.tasks.instructions.datasets import Example, load_dataset

BENCH = "scoring_throughput"
MODEL = "standin"
INSTRUCTIONS = (
    "Let's think step by step.",
    "Let's solve the problem.",
    "",
    "Take a deep breath and work on this problem step-by-step.",
    "Break this down.",
    "A little bit of arithmetic and a logical approach will help us quickly arrive at the solution.",
    "Let's work this out in a step by step way to be sure we have the right answer.",
    "First, identify the quantities; then compute the answer and state it as a number.",
)
CONCURRENCY = 16  # promptopt's OpenAI-compatible default (max_concurrency)
MAX_TOKENS = 400  # the instruction task's default per answer
SEED = 0


def _params(req: Request) -> dict[str, Any]:
    """The body promptopt's backend sends for a request (n=1, no stop), for the other clients."""
    params: dict[str, Any] = {
        "model": MODEL,
        "messages": req.chat_messages(),
        "n": 1,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_tokens,
    }
    if req.seed is not None:
        params["seed"] = req.seed
    return params


def _pairs(instructions: list[str], examples: list[Example]) -> list[tuple[Request, Example]]:
    return [
        (build_request(ex, ins, "Q_begin", max_tokens=MAX_TOKENS, seed=SEED), ex)
        for ins in instructions
        for ex in examples
    ]


Outcome = tuple[float, list[str], float]  # (wall s, graded predictions in pair order, client CPU s)


def run_sequential(base_url: str, pairs: list[tuple[Request, Example]]) -> Outcome:
    client = openai.OpenAI(api_key="EMPTY", base_url=base_url, max_retries=0, timeout=60)
    try:
        client.chat.completions.create(**_params(pairs[0][0]))  # warm-up: connection, imports
        t0, c0 = time.perf_counter(), time.process_time()
        predictions = []
        for req, ex in pairs:
            resp = client.chat.completions.create(**_params(req))
            predictions.append(str(grade_example(resp.choices[0].message.content or "", ex).prediction))
        return time.perf_counter() - t0, predictions, time.process_time() - c0
    finally:
        client.close()


async def run_bare(client: openai.AsyncOpenAI, pairs: list[tuple[Request, Example]]) -> Outcome:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(req: Request, ex: Example) -> str:
        async with sem:
            resp = await client.chat.completions.create(**_params(req))
        return str(grade_example(resp.choices[0].message.content or "", ex).prediction)

    t0, c0 = time.perf_counter(), time.process_time()
    predictions = await asyncio.gather(*(one(req, ex) for req, ex in pairs))
    return time.perf_counter() - t0, list(predictions), time.process_time() - c0


async def run_promptopt(llm: Any, instructions: list[str], examples: list[Example]) -> Outcome:
    t0, c0 = time.perf_counter(), time.process_time()
    evals = await aevaluate_many(
        llm, instructions, examples, position="Q_begin", max_tokens=MAX_TOKENS, seed=SEED
    )
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    failed = sum(e.failed for e in evals)
    if failed:
        raise RuntimeError(f"{failed} scorer requests failed: {evals[0].error}")
    return elapsed, [str(rec.prediction) for e in evals for rec in e.records], cpu


async def run_concurrent(
    base_url: str, instructions: list[str], examples: list[Example], repeats: int
) -> dict[str, list[Outcome]]:
    pairs = _pairs(instructions, examples)
    bare_client = openai.AsyncOpenAI(api_key="EMPTY", base_url=base_url, max_retries=0, timeout=60)
    llm = build_llm(f"openai:{MODEL}@{base_url}", cache_policy="off")
    out: dict[str, list[Outcome]] = {"bare_asyncio": [], "promptopt": []}
    try:
        # warm-up both (connection pools, lazy imports), untimed
        await run_bare(bare_client, pairs[:CONCURRENCY])
        await aevaluate_many(llm, instructions[:1], examples[:CONCURRENCY], max_tokens=MAX_TOKENS, seed=SEED)
        for i in range(repeats):  # interleaved, alternating who goes first, so drift hits both
            order = ("bare_asyncio", "promptopt") if i % 2 == 0 else ("promptopt", "bare_asyncio")
            for name in order:
                if name == "bare_asyncio":
                    out[name].append(await run_bare(bare_client, pairs))
                else:
                    out[name].append(await run_promptopt(llm, instructions, examples))
    finally:
        await bare_client.close()
        await llm.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="Scoring throughput: sequential vs bare asyncio vs promptopt.")
    ap.add_argument("--latency", type=float, default=0.1, help="stand-in latency per request, s (0.1)")
    ap.add_argument("--instructions", type=int, default=8, help=f"instructions (8, max {len(INSTRUCTIONS)})")
    ap.add_argument("--questions", type=int, default=25, help="GSM8K test questions per instruction (25)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each concurrent way (3)")
    ap.add_argument("--data-dir", default=os.environ.get("PROMPTOPT_DATA_DIR"), help="OPRO data folder")
    args = ap.parse_args()

    instructions = list(INSTRUCTIONS[: args.instructions])
    ds = load_dataset("gsm8k", data_dir=args.data_dir)
    examples = list((ds.test or ds.pool)[: args.questions])
    pairs = len(instructions) * len(examples)
    common = {
        "pairs": pairs,
        "latency_s": args.latency,
        "concurrency": CONCURRENCY,
        **machine(),
    }

    # the server stops by itself: after the longest this run can take, or 60 s without a request
    lifetime = 120 + pairs * args.latency * (1 + 2 * args.repeats) * 2
    with StandinServer(latency=args.latency, max_seconds=lifetime, idle_seconds=60) as srv:
        seq_s, seq_predictions, seq_cpu = run_sequential(srv.base_url, _pairs(instructions, examples))
        emit(
            BENCH,
            "sequential",
            seconds=r(seq_s),
            pairs_per_s=r(pairs / seq_s, 1),
            client_cpu_ms_per_pair=r(1000 * seq_cpu / pairs, 2),
            **common,
        )
        runs = asyncio.run(run_concurrent(srv.base_url, instructions, examples, args.repeats))
        stats = srv.stats()

    med = {name: statistics.median(t for t, _, _ in rs) for name, rs in runs.items()}
    for name, rs in runs.items():
        emit(
            BENCH,
            name,
            seconds=r(med[name]),
            runs_s=[r(t) for t, _, _ in rs],
            pairs_per_s=r(pairs / med[name], 1),
            client_cpu_ms_per_pair=r(1000 * statistics.median(c for _, _, c in rs) / pairs, 2),
            **common,
        )
    vs_seq = seq_s / med["promptopt"]
    vs_bare = med["bare_asyncio"] / med["promptopt"]
    emit(
        BENCH,
        "ratios",
        promptopt_vs_sequential=r(vs_seq, 2),
        promptopt_vs_bare=r(vs_bare, 3),
        bare_vs_sequential=r(seq_s / med["bare_asyncio"], 2),
        target_vs_sequential=10.0,
        target_vs_bare=0.9,
        meets_targets=vs_seq >= 10.0 and vs_bare >= 0.9,
        **common,
    )
    same = all(preds == seq_predictions for rs in runs.values() for _, preds, _ in rs)
    emit(
        BENCH,
        "check",
        same_answers_everywhere=same,
        distinct_answers=len(set(seq_predictions)),
        server_requests=stats["requests"],
        server_max_in_flight=stats["max_in_flight"],
    )


if __name__ == "__main__":
    run_main(main)
