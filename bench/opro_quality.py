"""Benchmark 5: OPRO quality on linear regression and TSP with the embedded model (a measurement).

For each seed (default 0..4) and each problem — linear regression, TSP n = 10, TSP n = 15 — run
OPRO with the embedded model as the optimizer, then random search with the same number of
evaluations (OPRO's starting solutions count as evaluations for both):

- linear regression: :func:`promptopt.tasks.linear_regression.random_search` (distinct integer
  pairs from the starting box OPRO starts from); reported: best loss and the grid optimum;
- TSP: distinct uniformly random tours from node 0; reported: gap to the optimum (Held–Karp /
  MILP, via the task's final report) of OPRO, random search, nearest neighbour, farthest
  insertion and 2-opt.

The embedded model is slow on a shared CPU, so every run gets an equal share of ``--time-budget``
seconds as a budget limit (``Budget(max_seconds=...)``): a run whose time is up stops at the next
step (``stop_reason: "budget"``, the step in flight is not counted). Sizes and the share are
printed with every line. This is a measurement, not a pass/fail.

Prints one JSON line per (problem, seed) run, one ``summary`` line per problem (means over
seeds) and one ``table`` line.

Run: ``python bench/opro_quality.py [--model local] [--seeds 0 1 2 3 4] [--steps 2 --per-step 2]
[--max-tokens 64] [--time-budget 270] [--threads N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _common import emit, machine, r, run_main, tsp_random_search

from promptopt.llm.base import run_sync
from promptopt.llm.budget import Budget
from promptopt.llm.factory import build_llm
from promptopt.llm.registry import create_backend
from promptopt.optimizers.opro.optimizer import OPRO
from promptopt.tasks import linear_regression, tsp

BENCH = "opro_quality"
PROBLEMS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("linear-regression", {}),
    ("tsp-10", {"n": 10}),
    ("tsp-15", {"n": 15}),
)


def make(problem: str, opts: dict[str, Any], seed: int) -> Any:
    if problem == "linear-regression":
        return linear_regression.LinearRegressionTask(seed=seed, **opts)
    return tsp.TSPTask(seed=seed, **opts)


def one(
    args: argparse.Namespace, llm: Any, problem: str, opts: dict[str, Any], seed: int, share: float
) -> dict:
    task = make(problem, opts, seed)
    if problem != "linear-regression":
        _ = task.exact  # the optimum is the task's, not OPRO's, work: computed before the clock
    budget = Budget(max_seconds=share)
    opro = OPRO(steps=args.steps, per_step=args.per_step, max_tokens=args.max_tokens, seed=seed)
    t0 = time.perf_counter()
    result = opro.optimize(task, llm=llm, budget=budget)
    wall = time.perf_counter() - t0
    search = result.report.get("search", {})
    evaluations = int(search.get("unique_scored") or 0)
    row: dict[str, Any] = {
        "problem": problem,
        "seed": seed,
        "stop_reason": result.stop_reason,
        "steps_done": result.steps,
        "evaluations": evaluations,
        "proposals": search.get("proposals"),
        "status_counts": search.get("status_counts"),
        "wall_s": r(wall, 1),
        "completion_tokens": result.usage.get("completion_tokens"),
    }
    report = result.report.get("task", {})
    if problem == "linear-regression":
        rs = linear_regression.random_search(task, evaluations, seed=seed)
        row.update(
            opro_loss=r(result.best_score, 1),
            opro_initial_loss=r(search.get("initial_best"), 1),
            random_loss=r(rs["best"]["loss"], 1),
            optimum_loss=r(task.optimum, 1),
            opro_reached_optimum=bool(report.get("reached_optimum")),
            random_reached_optimum=rs["reached_optimum"],
        )
    else:
        ref = report["optimum"]["length"] if report["optimum"]["exact"] else report["optimum"]["bound"]

        def gap(length: float) -> float:
            return 100.0 * (length - ref) / ref

        rs = tsp_random_search(task, evaluations, seed=seed)
        row.update(
            gap_reference=report["gap_reference"],
            opro_gap=r(report["best"]["gap_percent"], 2),
            opro_initial_gap=r(gap(search["initial_best"]), 2) if search.get("initial_best") else None,
            random_gap=r(gap(rs["best_length"]), 2),
            **{f"{name}_gap": r(b["gap_percent"], 2) for name, b in report["baselines"].items()},
        )
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in rows[0] if k.endswith("_gap") or k.endswith("_loss")]
    out: dict[str, Any] = {}
    for k in keys:
        vals = [row[k] for row in rows if row.get(k) is not None]
        out[f"mean_{k}"] = r(statistics.fmean(vals), 2) if vals else None
    out["opro_better_than_random"] = sum(
        1 for row in rows if _score(row, "opro") < _score(row, "random") - 1e-9
    )
    out["opro_worse_than_random"] = sum(
        1 for row in rows if _score(row, "opro") > _score(row, "random") + 1e-9
    )
    out["mean_evaluations"] = r(statistics.fmean(row["evaluations"] for row in rows), 1)
    out["runs_stopped_by_time_budget"] = sum(1 for row in rows if row["stop_reason"] == "budget")
    return out


def _score(row: dict[str, Any], who: str) -> float:
    v = row.get(f"{who}_loss", row.get(f"{who}_gap"))
    return float("inf") if v is None else float(v)


def main() -> None:
    ap = argparse.ArgumentParser(description="OPRO vs random search and TSP heuristics (a measurement).")
    ap.add_argument("--model", default="local", help="optimizer model spec (local)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=2, help="OPRO steps per run (2)")
    ap.add_argument("--per-step", type=int, default=2, help="proposals per step (2)")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens per proposal (64)")
    ap.add_argument("--time-budget", type=float, default=270.0, help="seconds for all runs together (270)")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads for local models")
    ap.add_argument("--problems", nargs="+", default=[p for p, _ in PROBLEMS], help="subset of problems")
    args = ap.parse_args()

    chosen = [(p, o) for p, o in PROBLEMS if p in args.problems]
    options = {"n_threads": args.threads} if args.threads and args.model.startswith("local") else {}
    backend = create_backend(args.model, **options)
    load_s = None
    if hasattr(backend, "load"):
        t0 = time.perf_counter()
        run_sync(backend.load())  # before the clock: every run gets the same share
        load_s = time.perf_counter() - t0
    llm = build_llm(backend, cache_policy="off")
    share = args.time_budget / max(1, len(chosen) * len(args.seeds))
    sizes = {
        "model": args.model,
        "threads": args.threads,
        "steps": args.steps,
        "per_step": args.per_step,
        "max_tokens": args.max_tokens,
        "seconds_per_run": r(share, 1),
    }
    table: dict[str, Any] = {}
    for problem, opts in chosen:
        rows = []
        for seed in args.seeds:
            row = one(args, llm, problem, opts, seed, share)
            rows.append(row)
            emit(BENCH, "run", **row, **sizes)
        table[problem] = summarise(rows)
        emit(BENCH, "summary", problem=problem, seeds=args.seeds, **table[problem], **sizes)
    run_sync(backend.aclose())
    emit(BENCH, "table", table=table, model_load_s=r(load_s), **sizes, **machine())


if __name__ == "__main__":
    run_main(main)
