"""Benchmark: latency and throughput through `promptopt serve` vs calling the target directly.

Same run, same target: the stand-in OpenAI-compatible server (bench/standin_server.py, its own
process, fixed latency per request) is called (a) directly and (b) through a `promptopt serve`
process in front of it, with the found-instruction alignment on (an instruction costs no model
call, so what is left is the server's own cost: HTTP hop, parsing, the LLM layer, logging). The
load generator is the real `openai` SDK (AsyncOpenAI) at a fixed concurrency.

Per cell (mode × upstream latency × concurrency): p50 / p95 latency and requests per second;
overhead = through-serve minus direct, in ms at p50 and as a throughput ratio. Cells are journalled
in bench/results/serve_overhead[-quick].cells.jsonl and a rerun skips finished ones; the JSON and
markdown table are rewritten at the end.

Run: ``python bench/serve_overhead.py [--quick] [--requests 1000] [--latency 0 0.1]
[--concurrency 1 32]``. ``--quick``: 150 requests, latency 0.02 s, concurrency 16 (< 1 min).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from _common import ResultBook, emit, md_table, note, r, run_main
from standin_server import StandinServer

BENCH = "serve_overhead"
MODES = ("direct", "serve")


class ServeProcess:
    """`promptopt serve` in a child process in front of ``target_url`` (port chosen by the OS)."""

    def __init__(self, target_url: str, concurrency: int) -> None:
        self.cmd = [
            sys.executable, "-m", "promptopt", "serve", "--target", f"openai:standin@{target_url}",
            "--port", "0", "--instruction", "Answer with a number.", "--model-name", "standin",
            "--max-concurrency", str(max(concurrency, 16)), "--max-retries", "0",
        ]  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> ServeProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            self.cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
        if not found:
            self.proc.kill()
            raise RuntimeError(f"promptopt serve did not start: {line.strip()!r}")
        self.base_url = found.group(1)
        # the request log goes to stderr: drain it so the pipe never fills and blocks the server
        self._drain = subprocess.Popen(["cat"], stdin=self.proc.stderr, stdout=subprocess.DEVNULL)
        with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/health", timeout=10):
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "_drain", None) is not None:
            self._drain.wait(5)


async def load(base_url: str, requests: int, concurrency: int) -> dict[str, Any]:
    """Fire ``requests`` chat requests at ``concurrency``; latency percentiles and throughput."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=60)
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        async with sem:
            t0 = time.perf_counter()
            try:
                await client.chat.completions.create(
                    model="standin",
                    messages=[{"role": "user", "content": f"What is {i} + {i}?"}],
                    max_tokens=32,
                )
            except openai.OpenAIError:
                failures += 1
                return
            latencies.append(time.perf_counter() - t0)

    try:
        await asyncio.gather(*(one(i) for i in range(min(concurrency, requests))))  # warm-up connections
        latencies.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - t0
    finally:
        await client.close()
    qs = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [float("nan")] * 19
    return {
        "requests": requests,
        "ok": len(latencies),
        "failed": failures,
        "wall_s": r(wall),
        "rps": r(len(latencies) / wall if wall else 0.0, 1),
        "p50_ms": r(statistics.median(latencies) * 1000 if latencies else float("nan"), 2),
        "p95_ms": r(qs[18] * 1000, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="150 requests, latency 0.02 s, concurrency 16.")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument(
        "--latency", type=float, nargs="+", default=[0.0, 0.1], help="Stand-in seconds per request."
    )
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = ap.parse_args()
    if args.quick:
        args.requests, args.latency, args.concurrency = 150, [0.02], [16]
    if args.requests < 2 or any(c < 1 for c in args.concurrency) or any(x < 0 for x in args.latency):
        raise SystemExit("bench: --requests >= 2, --concurrency >= 1 and --latency >= 0 please")
    book = ResultBook(BENCH + ("-quick" if args.quick else ""))
    try:
        for latency in args.latency:
            todo = [
                (c, m) for c in args.concurrency for m in MODES
                if book.get(f"{m}|lat={latency}|c={c}|n={args.requests}") is None
            ]  # fmt: skip
            if not todo:
                continue
            with StandinServer(latency=latency) as standin:
                for c, mode in todo:
                    key = f"{mode}|lat={latency}|c={c}|n={args.requests}"
                    note(f"bench: {key}")
                    if mode == "direct":
                        figures = asyncio.run(load(standin.base_url, args.requests, c))
                    else:
                        with ServeProcess(standin.base_url, c) as srv:
                            figures = asyncio.run(load(srv.base_url, args.requests, c))
                    row = book.add(key, {"mode": mode, "latency_s": latency, "concurrency": c, **figures})
                    emit(BENCH, mode, **{k: v for k, v in row.items() if k != "key"})
        rows, summary = [], []
        for latency in args.latency:
            for c in args.concurrency:
                d = book.get(f"direct|lat={latency}|c={c}|n={args.requests}")
                s = book.get(f"serve|lat={latency}|c={c}|n={args.requests}")
                if not d or not s:
                    continue
                extra_ms = r(s["p50_ms"] - d["p50_ms"], 2)
                ratio = r(s["rps"] / d["rps"] if d["rps"] else float("nan"))
                summary.append({"latency_s": latency, "concurrency": c, "overhead_p50_ms": extra_ms,
                                "throughput_ratio": ratio, "lost": s["failed"] + d["failed"]})  # fmt: skip
                rows.append([latency, c, d["p50_ms"], s["p50_ms"], extra_ms, d["p95_ms"], s["p95_ms"],
                             d["rps"], s["rps"], ratio, s["failed"]])  # fmt: skip
        md = "\n".join(
            [
                "# promptopt serve overhead (same run, same stand-in target)",
                "",
                *md_table(
                    [
                        "latency s",
                        "concurrency",
                        "direct p50 ms",
                        "serve p50 ms",
                        "overhead p50 ms",
                        "direct p95 ms",
                        "serve p95 ms",
                        "direct req/s",
                        "serve req/s",
                        "throughput ratio",
                        "serve failed",
                    ],
                    rows,
                ),  # fmt: skip
                "",
                f"{args.requests} chat requests per cell through the openai SDK; serve applies an "
                "instruction (no model call) and forwards through promptopt's LLM layer.",
            ]
        )
        paths = book.write({"requests": args.requests, "quick": args.quick}, book.cells(), summary, md + "\n")
        note(f"bench: wrote {paths['json']} and {paths['markdown']}")
    finally:
        book.close()


if __name__ == "__main__":
    run_main(main)
