"""OPRO's TSP table (Yang et al. 2024, Table 2): n = 10, 15, 20 random points.

For each model, constrained mode (``--constrained both|on|off``, where this checkout's OPRO has
it), n and seed: OPRO from 5 random tours (the task's defaults, re-asking for invalid traces as
the reference does), then the gap to the exact optimum (Held–Karp for n ≤ 12, MILP beyond; its
time is not on OPRO's clock) of OPRO's best, nearest neighbour, farthest insertion (both
variants: the textbook rule and the OPRO reference's), 2-opt, and random permutations with the
same number of evaluations (median of ``--random-reps`` repetitions).

Time: each cell gets an equal share of what is left of ``--time-budget`` (checked when a step
starts). Resumable: cells in ``bench/results/opro_tsp.cells.jsonl``; a rerun skips them.

Run: ``python bench/opro_tsp.py [--models local local:qwen2.5-coder-1.5b] [--constrained both]
[--ns 10 15 20] [--seeds 0 1] [--steps 20 --per-step 4] [--time-budget 3300] [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _common import (
    ResultBook,
    add_model_flags,
    add_tag_flag,
    add_threads_flag,
    constrained_modes,
    figure,
    finish_book,
    fmt_minutes,
    make_opro,
    md_table,
    note,
    r,
    results_name,
    run_header,
    run_main,
    run_plan,
    seconds_per_call,
    try_plot,
    tsp_random_search,
)

from promptopt.llm.base import structured_output_of
from promptopt.llm.budget import Budget
from promptopt.tasks import tsp

BENCH = "opro_tsp"
BASELINES = ("nearest_neighbour", "farthest_insertion", "farthest_insertion_opro", "two_opt")
COLUMNS = ("opro", "random", *BASELINES)


def max_tokens_for(n: int, given: int | None) -> int:
    """A trace of n nodes is about 2n tokens; room for a short preamble and the tags."""
    return given if given is not None else 64 + 6 * n


def run_cell(
    args: argparse.Namespace, llm: Any, n: int, seed: int, constrained: bool, share: float
) -> dict[str, Any]:
    task = tsp.TSPTask(n=n, seed=seed)
    t0 = time.perf_counter()
    _ = task.exact  # the optimum is the reference, not OPRO's work: before the clock
    exact_s = time.perf_counter() - t0
    opro = make_opro(
        constrained,
        steps=args.steps,
        per_step=args.per_step,
        max_tokens=max_tokens_for(n, args.max_tokens),
        seed=seed,
    )
    t0 = time.perf_counter()
    result = opro.optimize(task, llm=llm, budget=Budget(max_seconds=share))
    wall = time.perf_counter() - t0
    search = result.report.get("search", {})
    report = result.report["task"]
    ref = report["optimum"]["length"] if report["optimum"]["exact"] else report["optimum"]["bound"]
    evaluations = int(search.get("unique_scored") or 0)

    def gap(length: float) -> float:
        return 100.0 * (length - ref) / ref

    rand = [
        gap(tsp_random_search(task, evaluations, seed=1000 * seed + i)["best_length"])
        for i in range(args.random_reps)
    ]
    return {
        "n": n,
        "seed": seed,
        "constrained": constrained,
        "structured_output": structured_output_of(llm),
        "gap_reference": report["gap_reference"],
        "optimum_method": report["optimum"]["method"],
        "optimum_s": r(exact_s, 2),
        "stop_reason": result.stop_reason,
        "steps_done": result.steps,
        "evaluations": evaluations,
        "status_counts": search.get("status_counts"),
        "opro_gap": r(report["best"]["gap_percent"], 2),
        "opro_initial_gap": r(gap(search["initial_best"]), 2) if search.get("initial_best") else None,
        "random_gap": r(statistics.median(rand), 2),
        **{f"{b}_gap": r(report["baselines"][b]["gap_percent"], 2) for b in BASELINES},
        "reached_optimum": search.get("steps_to_optimum") is not None,
        "steps_to_optimum": search.get("steps_to_optimum"),
        "wall_s": r(wall, 1),
        "completion_tokens": result.usage.get("completion_tokens"),
    }


def summarise(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, bool, int], list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["model"], c["constrained"], c["n"]), []).append(c)
    out = []
    for (model, con, n), cs in sorted(groups.items()):
        row: dict[str, Any] = {"model": model, "constrained": con, "n": n, "seeds": len(cs)}
        for col in COLUMNS:
            row[f"{col}_gap_mean"] = r(statistics.fmean(c[f"{col}_gap"] for c in cs), 2)
        row["opro_below_random"] = sum(c["opro_gap"] < c["random_gap"] for c in cs)
        row["evaluations_mean"] = r(statistics.fmean(c["evaluations"] for c in cs), 1)
        row["steps_done_mean"] = r(statistics.fmean(c["steps_done"] for c in cs), 1)
        out.append(row)
    return out


def markdown(summary: list[dict[str, Any]], header: dict[str, Any], plot: str | None) -> str:
    lines = [
        "# OPRO TSP: gap to the optimum (%)",
        "",
        f"{header['date']} · commit {header['commit']} · sizes: {header['sizes']}",
        "",
    ]
    lines += md_table(
        ["model", "constrained", "n", "seeds", "OPRO", "random (same evals)", "nearest neighbour",
         "farthest insertion", "farthest insertion (OPRO ref.)", "2-opt", "OPRO < random (seeds)",
         "evaluations (mean)", "steps run (mean)"],
        [[x["model"], "on" if x["constrained"] else "off", x["n"], x["seeds"],
          *(x[f"{c}_gap_mean"] for c in COLUMNS), x["opro_below_random"], x["evaluations_mean"],
          x["steps_done_mean"]] for x in summary],
    )  # fmt: skip
    if plot:
        lines += ["", f"![gap per n]({plot.rsplit('/', 1)[-1]})"]
    return "\n".join(lines) + "\n"


def plot_gaps(summary: list[dict[str, Any]], path: str) -> str:
    fig = figure(8, 4)
    ax = fig.add_subplot(1, 1, 1)
    ns = sorted({x["n"] for x in summary})
    series = [
        (f"OPRO {x[0]} {'constr.' if x[1] else 'free'}", x)
        for x in sorted({(s["model"], s["constrained"]) for s in summary})
    ]
    for label, (model, con) in series:
        pts = {s["n"]: s["opro_gap_mean"] for s in summary if s["model"] == model and s["constrained"] == con}
        ax.plot(ns, [pts.get(n) for n in ns], "-o", label=label)
    first = {s["n"]: s for s in summary}
    for col, style in (("random", ":x"), ("nearest_neighbour", "--s"), ("farthest_insertion", "--^"),
                       ("farthest_insertion_opro", "--v"), ("two_opt", "--d")):  # fmt: skip
        ax.plot(ns, [first[n][f"{col}_gap_mean"] for n in ns], style, label=col.replace("_", " "), alpha=0.8)
    ax.set_xticks(ns)
    ax.set_xlabel("n (points)")
    ax.set_ylabel("gap to the optimum (%, mean over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description="OPRO on TSP n = 10, 15, 20 vs heuristics (resumable).")
    add_model_flags(ap)
    ap.add_argument("--ns", type=int, nargs="+", default=[10, 15, 20])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=20, help="OPRO steps per run (20)")
    ap.add_argument("--per-step", type=int, default=4, help="proposals per step (4; the paper: 8)")
    ap.add_argument("--max-tokens", type=int, default=None, help="tokens per proposal (default 64 + 6n)")
    ap.add_argument("--random-reps", type=int, default=51, help="random-search repetitions per cell (51)")
    ap.add_argument("--time-budget", type=float, default=3300.0, help="seconds for the whole bench (3300)")
    add_threads_flag(ap)
    ap.add_argument("--quick", action="store_true", help="smoke test: n = 10, 1 seed, 1 step x 2, ~1 min")
    add_tag_flag(ap, BENCH)
    args = ap.parse_args()
    name = results_name(BENCH, args)
    if args.quick:
        args.ns, args.seeds, args.steps, args.per_step = [10], [0], 1, 2
        args.time_budget, args.random_reps, args.models = 45.0, 11, args.models[:1]
    modes = constrained_modes(args.constrained)
    sizes = {"steps": args.steps, "per_step": args.per_step, "max_tokens": args.max_tokens or "64+6n",
             "seeds": args.seeds, "threads": args.threads, "time_budget_s": args.time_budget}  # fmt: skip
    book = ResultBook(name)
    if args.structured_output:
        sizes["structured_output"] = args.structured_output
    plan = [(m, c, n, s) for m in args.models for c in modes for n in args.ns for s in args.seeds]

    def key(m: str, c: bool, n: int, s: int) -> str:
        return f"{m}|c={int(c)}|n={n}|seed={s}|{args.steps}x{args.per_step}|t{max_tokens_for(n, args.max_tokens)}"

    todo = [p for p in plan if book.get(key(*p)) is None]
    est = sum(args.steps * args.per_step * seconds_per_call(m, 250 + 40 * n, 2 * n + 10 if c else max_tokens_for(n, args.max_tokens))
              for m, c, n, _ in todo)  # fmt: skip
    note(f"{BENCH}: {len(plan)} cells ({len(plan) - len(todo)} done); estimated {fmt_minutes(min(est, args.time_budget))} "
         f"(each cell gets its share of --time-budget {fmt_minutes(args.time_budget)}; exact optima for n > 12 "
         "add up to a minute each)")  # fmt: skip

    def cell(llm: Any, p: tuple[Any, ...], share: float) -> dict[str, Any]:
        return run_cell(args, llm, p[2], p[3], p[1], share)

    start = time.perf_counter()
    try:
        run_plan(BENCH, book, args, todo, key, cell, start=start)
        cells = book.cells(key(*p) for p in plan)
        summary = summarise(cells)
        header = run_header(models=args.models, sizes=sizes, ns=args.ns)
        plot = try_plot(lambda: plot_gaps(summary, book.path("_gap.png")))
        md = markdown(summary, header, plot)
        finish_book(BENCH, book, header, cells, summary, md, plot=plot, start=start, summary_lines=summary)
    finally:
        book.close()


if __name__ == "__main__":
    run_main(main)
