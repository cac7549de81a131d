"""OPRO's instruction-search table: the found instruction vs the baselines on held-out test splits.

Two modes:

- ``--screen``: scores the empty instruction and "Let's think step by step." on ``--screen-n``
  examples of several BBH tasks (and GSM8K) and reports accuracy vs chance, to pick tasks on
  which the CPU scorer is clearly above chance; the three best BBH tasks (by the better of the
  two accuracies minus chance) are written to ``bench/results/opro_instructions-screen.json`` and
  become the default ``--datasets`` of the main mode.
- main: for each model (optimizer = scorer), constrained mode and dataset, OPRO searches an
  instruction on a small train split (each cell's search gets its share of ``--time-budget``),
  then the found instruction, the baselines ("", "Let's think step by step.", "Let's solve the
  problem.") and instructions the OPRO paper reports as found (:data:`PAPER_INSTRUCTIONS`) are
  scored on the held-out test split, and the found one is compared with each in a paired test
  (McNemar exact, and a bootstrap of the paired accuracy difference with its 95 % interval,
  :mod:`promptopt.evaluators.stats`).

Scorer answers are capped per dataset (:data:`ANSWER_TOKENS`), requests are cached in
``bench/results/opro_instructions.cache.sqlite`` (temperature 0: the baselines' test answers are
computed once per model and reused by every cell), and finished cells are kept in
``bench/results/opro_instructions.cells.jsonl`` (a rerun skips them).

Run: ``python bench/opro_instructions.py --screen`` then ``python bench/opro_instructions.py
[--datasets bbh:navigate ...] [--models local] [--constrained off] [--quick]``; GSM8K as its own
run: ``--datasets gsm8k``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from _common import (
    ResultBook,
    add_model_flags,
    add_threads_flag,
    constrained_modes,
    emit,
    figure,
    finish_book,
    fmt_minutes,
    make_opro,
    md_table,
    note,
    open_model,
    r,
    run_header,
    run_main,
    run_plan,
    seconds_per_call,
    try_plot,
)

from promptopt.errors import ConfigError
from promptopt.evaluators.accuracy import aevaluate_many
from promptopt.evaluators.stats import compare_paired
from promptopt.llm.base import run_sync
from promptopt.llm.budget import Budget
from promptopt.tasks.instructions import task as ins
from promptopt.tasks.instructions.datasets import load_dataset

BENCH = "opro_instructions"
SCREEN_TASKS = (
    "boolean_expressions", "sports_understanding", "web_of_lies", "causal_judgement", "navigate",
    "date_understanding",
)  # fmt: skip
FALLBACK_DATASETS = ("bbh:sports_understanding", "bbh:navigate", "bbh:web_of_lies")
#: Instructions the OPRO paper (Yang et al. 2024, Table 1, GSM8K) reports as found by its optimizers
#: (scorer PaLM 2-L / text-bison); shown on every dataset as points of comparison.
PAPER_INSTRUCTIONS: dict[str, str] = {
    "paper_palm2_it": "Take a deep breath and work on this problem step-by-step.",
    "paper_palm2": "Break this down.",
    "paper_gpt35": "A little bit of arithmetic and a logical approach will help us quickly arrive at the solution to this problem.",
    "paper_gpt4": "Let's combine our numerical command and clear thinking to quickly and accurately decipher the answer.",
}
#: scorer answer cap (max_tokens) per dataset kind: long enough to finish a short chain of thought
ANSWER_TOKENS = {"gsm8k": 192, "bbh": 128}


def answer_tokens(dataset: str, given: int | None) -> int:
    return given if given is not None else ANSWER_TOKENS["gsm8k" if dataset == "gsm8k" else "bbh"]


def data_dir(args: argparse.Namespace) -> str | None:
    return (
        args.data_dir
        or os.environ.get("PROMPTOPT_DATA_DIR")
        or ("/work/shared/data/opro" if os.path.isdir("/work/shared/data/opro") else None)
    )


def chance(examples: Any) -> float | None:
    """Expected accuracy of guessing (percent): 1/options for choices, ½ for yes/no, else None."""
    vals = []
    for ex in examples:
        if ex.options:
            vals.append(len(ex.accepted or (1,)) / len(ex.options))
        elif ex.kind == "boolean":
            vals.append(0.5)
        else:
            return None
    return 100.0 * sum(vals) / len(vals) if vals else None


# --------------------------------------------------------------------------- screen


def screen(args: argparse.Namespace) -> None:
    import random

    name = BENCH + "-screen" + ("-quick" if args.quick else "")
    names = args.screen_tasks or SCREEN_TASKS
    tasks = [t if ":" in t else f"bbh:{t}" for t in (names[:1] if args.quick else names)]
    n = 4 if args.quick else args.screen_n
    book = ResultBook(name)
    model = args.models[0]
    todo = [t for t in tasks if book.get(f"{model}|{t}|n={n}") is None]
    est = sum(2 * n * seconds_per_call(model, 200, answer_tokens(t, args.answer_tokens) // 2) for t in todo)
    note(
        f"{BENCH} --screen: {len(tasks)} tasks x 2 instructions x {n} examples; estimated {fmt_minutes(est)}"
    )
    start = time.perf_counter()
    backend, llm, _ = open_model(
        model, args.threads, cache_policy="deterministic", cache=book.path(".cache.sqlite")
    )
    try:
        for t in todo:
            ds = load_dataset(t, data_dir=data_dir(args))
            exs = list(ds.pool)
            random.Random(0).shuffle(exs)
            exs = exs[:n]
            evs = run_sync(aevaluate_many(llm, ["", "Let's think step by step."], exs,
                                          max_tokens=answer_tokens(t, args.answer_tokens)))  # fmt: skip
            ch = chance(exs)
            row = {"model": model, "dataset": t, "n": n, "chance": r(ch, 1),
                   "empty": r(evs[0].accuracy, 1), "step_by_step": r(evs[1].accuracy, 1),
                   "margin": r(max(evs[0].accuracy or 0, evs[1].accuracy or 0) - (ch or 0), 1)}  # fmt: skip
            book.add(f"{model}|{t}|n={n}", row)
            emit(BENCH, "screen", **row)
    finally:
        run_sync(backend.aclose())
    cells = [c for c in book.cells() if c["model"] == model and c["n"] == n]
    picked = [c["dataset"] for c in sorted(cells, key=lambda c: -(c["margin"] or -1e9))[:3]]
    md = ["# Instruction search: screening BBH tasks", "", f"model {model}, {n} examples each", ""]
    md += md_table(["task", "chance", "empty", "step by step", "best − chance"],
                   [[c["dataset"], c["chance"], c["empty"], c["step_by_step"], c["margin"]] for c in cells])  # fmt: skip
    md += ["", f"Picked (default --datasets of the main mode): {', '.join(picked)}", ""]
    book.write({"model": model, "n": n, "picked": picked}, cells, {"picked": picked}, "\n".join(md))
    book.close()
    emit(BENCH, "picked", datasets=picked, wall_s=r(time.perf_counter() - start, 1))


def default_datasets() -> list[str]:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", BENCH + "-screen.json")
    try:
        with open(path, encoding="utf-8") as fh:
            picked = json.load(fh)["summary"]["picked"]
        if picked:
            return list(picked)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    note(f"{BENCH}: no screen result yet (run --screen first); using {', '.join(FALLBACK_DATASETS)}")
    return list(FALLBACK_DATASETS)


# --------------------------------------------------------------------------- main mode


def run_cell(
    args: argparse.Namespace, llm: Any, dataset: str, constrained: bool, share: float
) -> dict[str, Any]:
    cap = answer_tokens(dataset, args.answer_tokens)
    task = ins.create(dataset=dataset, data_dir=data_dir(args), scorer=llm, seed=0, num_train=args.num_train,
                      num_val=args.num_val, num_test=args.num_test, max_tokens=cap, val_top_k=3)  # fmt: skip
    opro = make_opro(
        constrained, steps=args.steps, per_step=args.per_step, max_tokens=args.max_tokens, seed=0
    )
    optimizer = llm
    if args.optimizer:
        from promptopt.llm.factory import build_llm

        optimizer = build_llm(args.optimizer, cache=args.optimizer_cache, cache_policy="all")
    t0 = time.perf_counter()
    result = opro.optimize(task, llm=optimizer, budget=Budget(max_seconds=share))
    search_s = time.perf_counter() - t0
    report = result.report["task"]
    per_ex = report["per_example"]
    test = task.splits.test
    extra = {
        k: v
        for k, v in PAPER_INSTRUCTIONS.items()
        if dataset == "gsm8k" or k in ("paper_palm2_it", "paper_palm2")
    }
    evs = run_sync(
        aevaluate_many(task.scorer, list(extra.values()), test, position=task.position, max_tokens=cap)
    )
    accs = {name: row["accuracy"] for name, row in report["test"].items()}
    instrs = {name: row["instruction"] for name, row in report["test"].items()}
    for (name, text), ev in zip(extra.items(), evs, strict=True):
        per_ex[name] = [None if x.correct is None else int(x.correct) for x in ev.records]
        accs[name], instrs[name] = ev.accuracy, text
    comparisons = {
        other: compare_paired(per_ex["best"], per_ex[other], seed=0).to_json()
        for other in per_ex
        if other != "best"
    }
    return {
        "dataset": dataset,
        "optimizer": args.optimizer or "(the scorer)",
        "constrained": constrained,
        "found": report["instruction"],
        "selected_by": report["selected_by"],
        "stop_reason": result.stop_reason,
        "steps_done": result.steps,
        "status_counts": result.report["search"].get("status_counts"),
        "n_test": len(test),
        "answer_tokens": cap,
        "accuracy": {k: r(v, 2) for k, v in accs.items()},
        "instructions": instrs,
        "paired_vs_found": comparisons,
        "per_example": per_ex,
        "search_s": r(search_s, 1),
        "wall_s": r(time.perf_counter() - t0, 1),
    }


def markdown(cells: list[dict[str, Any]], header: dict[str, Any], plot: str | None) -> str:
    lines = ["# OPRO instruction search: held-out test accuracy", "",
             f"{header['date']} · commit {header['commit']} · sizes: {header['sizes']}", "",
             "Paired test of the found instruction against each other one on the same test questions: "
             "difference in accuracy (points) with a 95 % bootstrap interval, McNemar's exact p.", ""]  # fmt: skip
    for c in cells:
        lines += [f"## {c['dataset']} — scorer {c['model']}, optimizer {c.get('optimizer', c['model'])}, constrained {'on' if c['constrained'] else 'off'} "
                  f"(n = {c['n_test']}, answers ≤ {c['answer_tokens']} tokens)", "",
                  f"Found ({c['selected_by']}, {c['steps_done']} steps): `{c['found']}`", ""]  # fmt: skip
        rows = [["found", c["instructions"]["best"], c["accuracy"]["best"], "", "", ""]]
        for name, cmp in c["paired_vs_found"].items():
            rows.append([name, c["instructions"][name], c["accuracy"][name], r(cmp["diff"], 1),
                         f"[{r(cmp['ci_low'], 1)}, {r(cmp['ci_high'], 1)}]", r(cmp["p_value"], 3)])  # fmt: skip
        lines += md_table(["name", "instruction", "accuracy", "found − this", "95 % CI", "McNemar p"], rows)
        lines.append("")
    if plot:
        lines += [f"![accuracy with intervals]({plot.rsplit('/', 1)[-1]})", ""]
    return "\n".join(lines)


def plot_accuracy(cells: list[dict[str, Any]], path: str) -> str:
    """Per cell: each instruction's accuracy; error bars = the paired interval vs the found one."""
    fig = figure(9, 1.2 + 2.2 * max(1, len(cells)))
    for i, c in enumerate(cells):
        ax = fig.add_subplot(len(cells), 1, i + 1)
        names = ["best", *c["paired_vs_found"]]
        accs = [c["accuracy"][n] or 0 for n in names]
        err_lo = [0.0] + [max(0.0, -cmp["ci_low"] + cmp["diff"]) for cmp in c["paired_vs_found"].values()]
        err_hi = [0.0] + [max(0.0, cmp["ci_high"] - cmp["diff"]) for cmp in c["paired_vs_found"].values()]
        ax.bar(range(len(names)), accs, yerr=[err_lo, err_hi], capsize=3,
               color=["C3"] + ["C0"] * (len(names) - 1))  # fmt: skip
        ax.set_xticks(range(len(names)), ["found" if n == "best" else n for n in names], fontsize=7)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(
            f"{c['dataset']} · {c['model']} · constrained {'on' if c['constrained'] else 'off'}", fontsize=9
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(
        description="OPRO instruction search vs baselines, paired tests (resumable)."
    )
    ap.add_argument(
        "--screen", action="store_true", help="score two baselines on several BBH tasks vs chance"
    )
    ap.add_argument("--screen-n", type=int, default=24, help="examples per task in --screen (24)")
    ap.add_argument("--screen-tasks", nargs="+", default=None, help="BBH task names to screen (default: six)")
    add_model_flags(ap, constrained="off", models_help="model specs; optimizer = scorer (local)")
    ap.add_argument("--datasets", nargs="+", default=None, help="default: the screen's pick (3 BBH tasks)")
    ap.add_argument("--steps", type=int, default=4, help="OPRO steps (4)")
    ap.add_argument("--per-step", type=int, default=2, help="proposals per step (2)")
    ap.add_argument("--max-tokens", type=int, default=200, help="optimizer tokens per proposal (200)")
    ap.add_argument("--answer-tokens", type=int, default=None, help="scorer answer cap (gsm8k 192, bbh 128)")
    ap.add_argument("--num-train", type=int, default=10, help="train examples per score (10)")
    ap.add_argument(
        "--num-val", type=int, default=0, help="validation examples (0: report the training best)"
    )
    ap.add_argument("--num-test", type=int, default=40, help="held-out test examples (40)")
    ap.add_argument(
        "--time-budget", type=float, default=1500.0, help="seconds for all searches together (1500)"
    )
    ap.add_argument(
        "--optimizer", default=None, help="optimizer model spec (default: each scorer model optimizes itself)"
    )
    add_threads_flag(ap)
    ap.add_argument("--data-dir", default=None, help="OPRO data folder (else PROMPTOPT_DATA_DIR)")
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, < 1 min")
    args = ap.parse_args()
    if args.screen:
        return screen(args)
    datasets = args.datasets or default_datasets()
    name = BENCH
    if args.quick:
        datasets, args.steps, args.per_step, args.num_train, args.num_test = datasets[:1], 1, 1, 2, 2
        args.time_budget, args.max_tokens, args.answer_tokens, args.models = 20.0, 64, 24, args.models[:1]
        name = BENCH + "-quick"
    for n, label in ((args.num_train, "--num-train"), (args.num_test, "--num-test")):
        if n < 1:
            raise ConfigError(f"{label} must be a positive integer, got {n}")
    modes = constrained_modes(args.constrained)
    sizes = {k: getattr(args, k) for k in ("steps", "per_step", "max_tokens", "answer_tokens", "num_train",
                                            "num_val", "num_test", "time_budget", "threads")}  # fmt: skip
    if args.optimizer:
        sizes["optimizer"] = args.optimizer
    book = ResultBook(name)
    args.optimizer_cache = book.path(".optimizer.cache.sqlite")
    plan = [(m, c, d) for m in args.models for c in modes for d in datasets]

    def key(m: str, c: bool, d: str) -> str:
        return f"{m}|c={int(c)}|{d}|{json.dumps(sizes, sort_keys=True)}"

    todo = [p for p in plan if book.get(key(*p)) is None]
    n_extra = lambda d: 4 if d == "gsm8k" else 2  # noqa: E731
    test_calls = sum(args.num_test * (1 + 3 + n_extra(d)) for _, _, d in todo)
    est_test = sum(args.num_test * (1 + 3 + n_extra(d)) * seconds_per_call(m, 220, answer_tokens(d, args.answer_tokens) // 2)
                   for m, _, d in todo)  # fmt: skip
    note(f"{BENCH}: {len(plan)} cells ({len(plan) - len(todo)} done); searches share {fmt_minutes(args.time_budget)}; "
         f"test scoring up to {test_calls} scorer calls (baselines cached across cells) ~ {fmt_minutes(est_test)}; "
         f"estimated total {fmt_minutes(min(args.time_budget, est_test * 3) + est_test)} at most")  # fmt: skip
    start = time.perf_counter()
    try:
        run_plan(
            BENCH,
            book,
            args,
            todo,
            key,
            lambda llm, p, share: run_cell(args, llm, p[2], p[1], share),
            start=start,
            min_share=10.0,
            open_options=lambda model: {
                "cache_policy": "deterministic",
                "cache": book.path(f".{model.replace(':', '_')}.cache.sqlite"),
            },
            shown=lambda row: {k: v for k, v in row.items() if k != "per_example"},
        )
        cells = book.cells(key(*p) for p in plan)
        header = run_header(models=args.models, datasets=datasets, sizes=sizes)
        plot = try_plot(lambda: plot_accuracy(cells, book.path("_accuracy.png")))
        summary = [{"model": c["model"], "dataset": c["dataset"], "constrained": c["constrained"],
                    "found": c["found"], "accuracy": c["accuracy"]} for c in cells]  # fmt: skip
        finish_book(
            BENCH, book, header, cells, summary, markdown(cells, header, plot), plot=plot, start=start
        )
    finally:
        book.close()


if __name__ == "__main__":
    run_main(main)
