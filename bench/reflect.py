"""OPRO's proposer vs the reflective proposer vs few-shot demos, at one metric-call budget (issue 20).

Each cell is one ``promptopt opro run`` (task × method × seed) with the same scorer, optimizer,
splits and ``--budget-metric-calls``; the methods are

- ``opro``: OPRO's own proposer (the paper's meta-prompt), scored on the whole training split;
- ``reflective``: GEPA-style reflection on minibatch failures with the metric's feedback, Pareto
  parents over per-example validation scores;
- ``demos``: OPRO's proposer for half the budget, then the demo phase (bootstrapped few-shot demos ×
  the best instructions, Optuna TPE) on the rest;
- ``reflective+demos``: the same with the reflective proposer.

Every cell's run directory is kept under ``bench/results/reflect/<tag>/`` and resumed if the bench
is restarted (one cell at a time; a finished cell is read back, not rerun). What is compared is the
held-out test accuracy of the reported prompt, per seed, and paired over the test examples: each
method against OPRO's proposer and against the no-instruction baseline, with a seeded paired
bootstrap 95 % interval of the difference (pooled over seeds: every (seed, example) pair is one
sample; per-seed figures are in the cells file).

Writes ``bench/results/reflect-<tag>.{json,md}`` and ``reflect-<tag>.cells.jsonl`` (date, commit,
models, machine, sizes, versions). Example (vLLM CPU servers as in bench/README.md)::

    python bench/reflect.py --tag date --dataset bbh:date_understanding \\
        --scorer openai:qwen05@http://127.0.0.1:8005/v1 --optimizer openai:qwen15@http://127.0.0.1:8015/v1 \\
        --budget 400 --seeds 0 1 2 --train 30 --val 20 --test 100 --answer-tokens 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import git_commit, machine, r, run_main

from promptopt.evaluators.stats import bootstrap_mean_ci

HERE = Path(__file__).resolve().parent
BENCH = "reflect"
#: method → the flags that make it (beside the shared ones)
METHODS: dict[str, list[str]] = {
    "opro": ["--proposer", "opro"],
    "reflective": ["--proposer", "reflective"],
    "demos": ["--proposer", "opro", "--demos", "3"],
    "reflective+demos": ["--proposer", "reflective", "--demos", "3"],
}


def cell_dir(tag: str, method: str, seed: int) -> Path:
    return HERE / "results" / BENCH / tag / f"{method.replace('+', '_')}-s{seed}"


def finished(run_dir: Path) -> bool:
    journal = run_dir / "journal.jsonl"
    return (run_dir / "result.json").exists() and journal.exists() and '"run_finished"' in journal.read_text()


def run_cell(args: argparse.Namespace, method: str, seed: int) -> dict[str, Any]:
    """Run (or resume, or read back) one cell; its test figures."""
    run_dir = cell_dir(args.tag, method, seed)
    started = time.time()
    if not finished(run_dir):
        if (run_dir / "config.json").exists():
            cmd = ["promptopt", "opro", "run", "--resume", "--run-dir", str(run_dir)]
        else:
            cmd = ["promptopt", "opro", "run", "--task", args.task, "--run-dir", str(run_dir),
                   "--scorer-model", args.scorer, "--optimizer-model", args.optimizer,
                   "--budget-metric-calls", str(args.budget), "--steps", str(args.steps), "--seed", str(seed),
                   "--scorer-max-tokens", str(args.answer_tokens), "--position", args.position,
                   "--val-top-k", "1", "--max-tokens", str(args.optimizer_tokens), *METHODS[method]]  # fmt: skip
            for text in args.initial or []:  # the starting instruction(s) instead of the task's
                cmd += ["--initial", text]
            if "reflective" not in method:  # OPRO's proposals per step (the reflective proposer makes one)
                cmd += ["--per-step", str(args.per_step)]
            if args.task == "ifbench":  # fixed IFBench splits: sizes are the task's own options
                cmd += ["--task-option", f"train={args.train}", "--task-option", f"val={args.val}",
                        "--task-option", f"test={args.test}"]  # fmt: skip
            if args.task == "instructions":
                cmd += ["--dataset", args.dataset, "--train", str(args.train), "--val", str(args.val),
                        "--test", str(args.test), "--split-seed", "0"]  # fmt: skip
                if args.data_dir:
                    cmd += ["--data-dir", args.data_dir]
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(cmd, check=True)
    result = json.loads((run_dir / "result.json").read_text())
    report = result["report"]["task"]
    test = report["test"]
    return {
        "method": method,
        "seed": seed,
        "run_dir": str(run_dir.relative_to(HERE.parent)),
        "instruction": report["instruction"],
        "demos": len(result.get("demos") or []),
        "test": {name: row.get("accuracy") for name, row in test.items()},
        "per_example": report["per_example"],
        "metric_calls": result["report"].get("metric_calls"),
        "stop_reason": result.get("stop_reason"),
        "steps": result.get("steps"),
        "usage": result.get("usage"),
        "wall_s_this_invocation": round(time.time() - started, 1),
    }


def paired(cells: list[dict[str, Any]], method: str, against: str, *, seed: int = 0) -> dict[str, Any]:
    """Pooled paired difference (points) of ``method``'s best vs ``against`` (a method's best, or a
    baseline name of the same cells) over (seed, example) pairs; bootstrap 95 % interval."""
    diffs: list[float] = []
    for c in cells:
        if c["method"] != method:
            continue
        mine = c["per_example"]["best"]
        if against in METHODS:
            other = next((o for o in cells if o["method"] == against and o["seed"] == c["seed"]), None)
            if other is None:
                continue
            theirs = other["per_example"]["best"]
        else:
            theirs = c["per_example"].get(against)
        if theirs is None:
            continue
        diffs += [a - b for a, b in zip(mine, theirs, strict=True) if a is not None and b is not None]
    if not diffs:
        return {"n": 0}
    lo, hi = bootstrap_mean_ci(diffs, seed=seed)
    return {
        "n": len(diffs),
        "diff": r(100.0 * sum(diffs) / len(diffs), 2),
        "ci95": [r(lo, 2), r(hi, 2)],  # bootstrap_mean_ci is in points already
    }


def fmt(d: dict[str, Any] | None) -> str:
    """A paired difference as "+x.x [lo, hi]" (empty when there is none)."""
    return f"{d['diff']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]" if d and d.get("n") else ""


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("promptopt", "optuna", "openai"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def write(args: argparse.Namespace, cells: list[dict[str, Any]], started: float) -> dict[str, Any]:
    methods = [m for m in METHODS if any(c["method"] == m for c in cells)]
    table = []
    for m in methods:
        mine = [c for c in cells if c["method"] == m]
        accs = [c["test"]["best"] for c in mine]
        table.append({
            "method": m,
            "seeds": [c["seed"] for c in mine],
            "test_accuracy": [r(a, 2) for a in accs],
            "mean": r(sum(accs) / len(accs), 2) if accs else None,
            "vs_opro": paired(cells, m, "opro") if m != "opro" else None,
            "vs_no_instruction": paired(cells, m, "empty"),
            "metric_calls": [c["metric_calls"]["used"] if c["metric_calls"] else None for c in mine],
        })  # fmt: skip
    baselines = {name: acc for name, acc in cells[0]["test"].items() if name not in ("best", "train_best",
                 "best_without_demos")} if cells else {}  # fmt: skip
    summary = {
        "bench": BENCH,
        "tag": args.tag,
        "commit": git_commit(),
        "machine": machine(),
        "busy": args.busy,
        "wall_s_this_invocation": round(time.time() - started, 1),
        "models": {"scorer": args.scorer, "optimizer": args.optimizer},
        "versions": versions(),
        "task": args.dataset if args.task == "instructions" else args.task,
        "sizes": {
            "budget_metric_calls": args.budget,
            "train": args.train,
            "val": args.val,
            "test": args.test,
            "answer_tokens": args.answer_tokens,
            "per_step": args.per_step,
            "position": args.position,
            "initial": args.initial,
            "demos": 3,
        },  # fmt: skip
        "baselines_test": baselines,
        "table": table,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    stem = HERE / "results" / f"{BENCH}-{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    md = [
        f"# OPRO vs reflective vs demos at {args.budget} metric calls — {summary['task']}",
        "",
        f"{summary['machine']['date_utc']} UTC · commit {summary['commit']} · {summary['machine']['cpus']} CPUs "
        f"(load {summary['machine'].get('loadavg')}){' · *busy*' if args.busy else ''} · scorer `{args.scorer}`, "
        f"optimizer / reflection `{args.optimizer}` · sizes {summary['sizes']} · versions {summary['versions']}",
        "",
        "Held-out test accuracy of the reported prompt per seed; paired differences pooled over seeds "
        "and test examples with a 95 % bootstrap interval.",
        "",
        "| method | test accuracy per seed | mean | − OPRO (95 % CI) | − no instruction (95 % CI) | metric calls |",
        "|---|---|---|---|---|---|",
    ]
    for row in table:
        vs = row["vs_opro"]
        vo = row["vs_no_instruction"]
        md.append(f"| {row['method']} | {row['test_accuracy']} | {row['mean']} | {fmt(vs)} | {fmt(vo)} | "
                  f"{row['metric_calls']} |")  # fmt: skip
    md += ["", f"Baselines on the same test split: {baselines}", "", f"Command: `{summary['command']}`"]
    stem.with_suffix(".md").write_text("\n".join(md) + "\n")
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True)
    ap.add_argument("--task", default="instructions", help="instructions (with --dataset) or ifbench")
    ap.add_argument("--dataset", default="bbh:date_understanding")
    ap.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data" / "opro"))
    ap.add_argument("--scorer", default="local")
    ap.add_argument("--optimizer", default="local:qwen2.5-coder-1.5b")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--steps", type=int, default=200, help="a cap far above what the budget allows")
    ap.add_argument("--per-step", type=int, default=4)
    ap.add_argument("--train", type=int, default=30)
    ap.add_argument("--val", type=int, default=20)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--answer-tokens", type=int, default=200)
    ap.add_argument("--optimizer-tokens", type=int, default=500, help="the optimizer's / reflection's tokens")
    ap.add_argument("--position", default="Q_begin")
    ap.add_argument("--initial", action="append", default=None, metavar="TEXT",
                    help="starting instruction (repeatable; default: the task's own), e.g. a hand-written prompt")  # fmt: skip
    ap.add_argument("--busy", action="store_true", help="mark the figures as measured on a busy machine")
    args = ap.parse_args()
    started = time.time()
    cells_file = HERE / "results" / f"{BENCH}-{args.tag}.cells.jsonl"
    cells: list[dict[str, Any]] = []
    for seed in args.seeds:  # seed-major: a stopped bench has whole seeds for every method
        for method in METHODS:  # cells of other methods already finished under this tag are read back
            if method not in args.methods and not finished(cell_dir(args.tag, method, seed)):
                continue
            cell = run_cell(args, method, seed)
            cells.append(cell)
            write(args, cells, started)
    cells_file.write_text("".join(json.dumps(c) + "\n" for c in cells))
    print(json.dumps(write(args, cells, started)["table"]))


if __name__ == "__main__":
    run_main(main)
