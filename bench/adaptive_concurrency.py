"""Adaptive concurrency (issue 11): ``max_concurrency="auto"`` (AIMD) vs fixed 4, 8, 16, 32, 64.

Three stand-in servers (``standin_server.py`` profiles), each a child process on 127.0.0.1:

- ``fixed``: every request takes 100 ms (a remote API far from its limits; the client's CPU is
  what ends the gains);
- ``batching``: a GPU server that batches: latency 100 ms + 4 ms x requests running, at most 32
  running (more wait in a queue), so throughput saturates at about 140 requests/s;
- ``ratelimit``: 100 requests/s (bucket of 10) in front of a 100 ms server; past that, HTTP 429
  with ``Retry-After: 1``.

Every cell sends the same ``--requests`` distinct chat requests in one batch through
``openai.from_spec("standin@URL", max_concurrency=C)`` (the library's defaults otherwise: 4
retries, Retry-After honoured) on a fresh server, and records the wall time, requests/s
("pairs/s": one request scores one (instruction, question) pair), requests that failed for good,
the server's 429s and peak in-flight, and for ``auto`` the limit it settled on. Target: on each
profile, auto >= 0.9 x the best fixed concurrency, with no request failing for good.

Resumable: each cell is kept in ``bench/results/adaptive_concurrency[-quick].cells.jsonl`` as it
finishes and a rerun skips it; the JSON and markdown in ``bench/results/`` are rewritten at the end.

Run: ``python bench/adaptive_concurrency.py [--quick] [--requests 2000] [--profiles fixed,batching,ratelimit]
[--concurrency 4,8,16,32,64,auto]``. About 7 minutes at the default size (the low fixed
concurrencies are slow by design: 2000 requests at 4 in flight and 100 ms take 50 s); --quick
(150 requests) under 1 minute.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from typing import Any

from _common import ResultBook, emit, git_commit, machine, md_table, note, r, run_main
from standin_server import StandinServer

from promptopt.llm.base import Completion, Request
from promptopt.llm.concurrency import AIMDController, parse_concurrency
from promptopt.llm.openai_compat import from_spec

BENCH = "adaptive_concurrency"
FIXED = (4, 8, 16, 32, 64)
TARGET = 0.9

#: profile -> stand-in knobs (see standin_server.py)
PROFILES: dict[str, dict[str, Any]] = {
    "fixed": {"profile": "fixed", "latency": 0.1},
    "batching": {"profile": "batching", "latency": 0.1, "alpha": 0.004, "max_batch": 32},
    "ratelimit": {"profile": "ratelimit", "latency": 0.1, "rate": 100.0, "burst": 10.0, "retry_after": 1.0},
}


async def run_cell(base_url: str, setting: int | str, n: int) -> dict[str, Any]:
    """Send ``n`` distinct requests in one batch; what happened to them."""
    llm = from_spec(f"standin@{base_url}", api_key="EMPTY", max_concurrency=setting)
    requests = [
        Request.chat(f"Question {i}: what is {i} + {2 * i}?", max_tokens=64, seed=0) for i in range(n)
    ]
    t0 = time.perf_counter()
    try:
        results = await llm.agenerate(requests, return_exceptions=True)
    finally:
        await llm.aclose()
    seconds = time.perf_counter() - t0
    ok = sum(isinstance(x, Completion) for x in results)
    errors = Counter(type(x).__name__ for x in results if not isinstance(x, Completion))
    row: dict[str, Any] = {
        "seconds": r(seconds),
        "ok": ok,
        "failed": n - ok,
        "errors": dict(errors),
        "pairs_per_s": r(ok / seconds, 1),
    }
    ctl = llm.controller
    if isinstance(ctl, AIMDController):
        hist = list(ctl.history) or [ctl.limit]
        row.update(
            final_limit=ctl.limit,
            limit_median=statistics.median(hist),
            limit_max=max(hist),
            decreases=ctl.decreases,
            baseline_latency_s=r(ctl.baseline),
        )
    return row


def summarize(cells: list[dict[str, Any]], profiles: list[str]) -> dict[str, Any]:
    """Per profile: the best fixed concurrency (all, and among those with no failure) and auto's ratio."""
    out: dict[str, Any] = {}
    for prof in profiles:
        mine = {c["concurrency"]: c for c in cells if c["profile"] == prof}
        fixed = [c for k, c in mine.items() if k != "auto"]
        auto = mine.get("auto")
        if not fixed or auto is None:
            continue
        best = max(fixed, key=lambda c: c["pairs_per_s"])
        clean = [c for c in fixed if c["failed"] == 0]
        best_clean = max(clean, key=lambda c: c["pairs_per_s"]) if clean else None
        ratio = auto["pairs_per_s"] / best["pairs_per_s"]
        out[prof] = {
            "best_fixed": best["concurrency"],
            "best_fixed_pairs_per_s": best["pairs_per_s"],
            "best_fixed_without_failures": best_clean["concurrency"] if best_clean else None,
            "auto_pairs_per_s": auto["pairs_per_s"],
            "auto_vs_best_fixed": r(ratio, 3),
            "auto_failed": auto["failed"],
            "meets_target": ratio >= TARGET and auto["failed"] == 0,
        }
    return out


def markdown(cells: list[dict[str, Any]], summary: dict[str, Any], header: dict[str, Any]) -> str:
    lines = [
        f"# Adaptive concurrency ({header['requests']} requests per cell)",
        "",
        f"{header['date']}, commit {header['commit']}, {header['machine']['cpus']} CPUs, "
        f"load {header['machine']['loadavg']}.",
        "",
    ]
    rows = [
        [
            c["profile"],
            c["concurrency"],
            c["pairs_per_s"],
            c["seconds"],
            c["failed"],
            c["server_rejected"],
            c["server_max_in_flight"],
            c.get("limit_median"),
        ]
        for c in cells
    ]
    lines += md_table(
        [
            "profile",
            "concurrency",
            "pairs/s",
            "seconds",
            "failed",
            "429s",
            "peak in flight",
            "auto limit (median)",
        ],
        rows,
    )
    lines += ["", "Auto vs the best fixed concurrency (target >= 0.9, no failures):", ""]
    lines += md_table(
        ["profile", "best fixed", "its pairs/s", "auto pairs/s", "auto / best", "auto failed", "meets"],
        [
            [
                p,
                s["best_fixed"],
                s["best_fixed_pairs_per_s"],
                s["auto_pairs_per_s"],
                s["auto_vs_best_fixed"],
                s["auto_failed"],
                s["meets_target"],
            ]  # fmt: skip
            for p, s in summary.items()
        ],
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description="Adaptive (AIMD) vs fixed concurrency on three stand-in servers."
    )
    ap.add_argument("--requests", type=int, default=2000, help="requests per cell (2000)")
    ap.add_argument("--quick", action="store_true", help="150 requests per cell (smoke test, under 1 min)")
    ap.add_argument(
        "--profiles", default=",".join(PROFILES), help="comma-separated (fixed,batching,ratelimit)"
    )
    ap.add_argument(
        "--concurrency", default="4,8,16,32,64,auto", help="settings to compare (4,8,16,32,64,auto)"
    )
    args = ap.parse_args()

    n = 150 if args.quick else args.requests
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    bad = [p for p in profiles if p not in PROFILES]
    if bad or n < 1:
        raise SystemExit(
            f"bench: error: unknown profile(s) {bad} (known: {', '.join(PROFILES)}) or --requests < 1"
        )
    settings = [parse_concurrency(s, what="--concurrency") for s in args.concurrency.split(",") if s.strip()]
    book = ResultBook(BENCH + ("-quick" if args.quick else ""))
    try:
        for prof in profiles:
            for setting in settings:
                key = f"{prof}/{setting}/{n}"
                if book.get(key) is not None:
                    note(f"bench: {key} done before, skipped")
                    continue
                knobs = dict(PROFILES[prof])
                latency = knobs.pop("latency")
                lifetime = 120 + 5 * n * latency  # the slowest cell is n / 4 rounds; margin for retries
                with StandinServer(latency=latency, max_seconds=lifetime, idle_seconds=60, **knobs) as srv:
                    row = asyncio.run(run_cell(srv.base_url, setting, n))
                    stats = srv.stats()
                row = {
                    "profile": prof,
                    "concurrency": setting,
                    "requests": n,
                    **row,
                    "server_requests": stats["requests"],
                    "server_rejected": stats.get("rejected", 0),
                    "server_max_in_flight": stats["max_in_flight"],
                }
                book.add(key, row)
                emit(BENCH, "cell", **row)
        cells = [c for c in book.cells() if c.get("requests") == n and c.get("profile") in profiles]
        summary = summarize(cells, profiles)
        for prof, s in summary.items():
            emit(BENCH, "summary", profile=prof, **s)
        header = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": git_commit(),
            "machine": machine(),
            "requests": n,
            "profiles": {p: PROFILES[p] for p in profiles},
            "target_auto_vs_best_fixed": TARGET,
        }
        paths = book.write(header, cells, summary, markdown(cells, summary, header))
        note(f"bench: wrote {paths['json']} and {paths['markdown']}")
    finally:
        book.close()


if __name__ == "__main__":
    run_main(main)
