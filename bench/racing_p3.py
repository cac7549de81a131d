"""P3: scorer calls of racing vs full evaluation in OPRO's instruction search (issue 12).

For each task and seed, two OPRO runs on the same candidate stream:

1. ``full``: OPRO with the optimizer model, every candidate scored on every training example;
2. ``racing``: ``scoring="racing"``, fed the *same proposals* by a replay optimizer (the full run's
   raw outputs by request seed), so the two runs differ in scoring only. (``--e2e`` gives the
   racing run the real optimizer instead: its meta-prompts show partial scores, so its
   trajectory may differ; that measures the whole loop, with more noise.)

Reported per (task, seed): training scorer requests of each run (``report.task.scoring``), their
ratio, and the validation / test accuracy of each run's final pick (made on full validation
scores in both). Goal (issue 12): racing asks <= 0.5x the training requests of full evaluation,
with the same final validation score, in at least 4 of 5 seeds, per task.

Cheap to rerun: the scorer sits behind the request cache (``--cache``, default
bench/results/racing_p3.cache.sqlite), and the racing run asks a subset of what the full run
asked, so it is answered from the cache. Counts are of requests *asked* (above the cache): the
cost of the strategy, whatever this machine's cache holds. Cells are kept in
``bench/results/racing_p3[-quick].cells.jsonl`` as they finish; a rerun skips done cells.

``--quick``: a simulated scorer (an instruction "... (acc NN)" answers question i right iff a fixed
pseudo-random draw of (instruction, i) is below NN) and a simulated optimizer (proposals around
the best score its meta-prompt shows) on synthetic questions: < 1 min, no model, no data.

Run (from the repository root):
    python bench/racing_p3.py --quick
    PROMPTOPT_DATA_DIR=/path/to/opro/data python bench/racing_p3.py --scorer local --optimizer local \
        [--tasks bbh:navigate bbh:boolean_expressions gsm8k] [--seeds 0 1 2 3 4] [--steps 5 --per-step 8]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import InstrumentedLLM, figure, machine, r, run_main, try_plot

from promptopt.llm.base import LLM, LLMServerError, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.opro.history import derive_seed
from promptopt.optimizers.opro.optimizer import OPRO
from promptopt.runs import read_journal
from promptopt.tasks.instructions.scoring import SCORER_SEED
from promptopt.tasks.instructions.task import create

BENCH = "racing_p3"
RESULTS = Path(__file__).resolve().parent / "results"
REAL_TASKS = ("bbh:navigate", "bbh:boolean_expressions", "gsm8k")
#: synthetic tasks of --quick: (name, training examples) — BBH-like and GSM8K-subset-like sizes
QUICK_TASKS = (("sim-bbh", 50), ("sim-gsm8k", 260))


# --------------------------------------------------------------------------- simulated models


def _draw(*parts: object) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sim_scorer_reply(request: Request, _i: int) -> str:
    """Right iff 100 * (0.7 * difficulty(i) + 0.3 * luck(instruction, i)) < acc: shared hard
    questions, plus some per-instruction luck."""
    text = request_text(request)
    m = re.search(r"\(acc (\d+)\)", text)
    acc = int(m.group(1)) if m else 50
    a = int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]
    ins = m.group(0) if m else ""
    right = 100 * (0.7 * _draw("q", a) + 0.3 * _draw("luck", ins, a)) < acc
    return f"The answer is {2 * a if right else 2 * a + 1}."


def sim_optimizer_reply(request: Request, _i: int) -> str:
    """A proposal around the best score the meta-prompt shows (mostly worse, sometimes better)."""
    scores = [int(s) for s in re.findall(r"score:\n(\d+)", request_text(request))]
    rng = random.Random(request.seed)
    acc = max(5, min(98, round(max(scores, default=50) + rng.gauss(-12, 9))))
    return f"<INS>Solve it with approach {rng.randrange(10**6)} (acc {acc}).</INS>"


def sim_dataset(tmp: Path) -> Path:
    path = tmp / "sim.jsonl"
    path.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(600))
    )
    return path


class ReplayLLM(FakeLLM):
    """The optimizer of the racing run: the full run's raw proposal for each request seed."""

    def __init__(self, raws: dict[int, str]) -> None:
        super().__init__(
            fn=lambda req, _i: raws.get(req.seed, LLMServerError("no such proposal")), name="replay"
        )


def proposals_of(run_dir: Path, seed: int) -> dict[int, str]:
    out: dict[int, str] = {}
    for rec in read_journal(run_dir / "journal.jsonl"):
        t = rec.get("trial") if rec.get("event") == "trial" else None
        if t and t["step"] > 0 and t.get("raw") is not None:
            out[derive_seed(seed, int(t["step"]), int(t["index"]))] = t["raw"]
    return out


# --------------------------------------------------------------------------- one cell


def picked(report: dict[str, Any]) -> dict[str, Any]:
    """Validation and test accuracy of a run's final pick."""
    ins = report.get("instruction")
    val = next(
        (row.get("val_accuracy") for row in report.get("validation") or [] if row["instruction"] == ins), None
    )
    return {
        "instruction": ins,
        "val": val,
        "test": (report.get("test") or {}).get("best", {}).get("accuracy"),
    }


#: the bench's strategies: full scoring, racing against the best so far (``racing``: the first rule,
#: kept under its old name so earlier cells stay valid) and against the validation shortlist
STRATEGIES = ("full", "racing", "racing-shortlist")
RACE_TARGET_OF = {"racing": "best", "racing-shortlist": "shortlist"}
#: key suffix of a strategy's figures in a pair (``ratio``, ``same_val``; ``ratio_shortlist``, ...)
SUFFIX = {"racing": "", "racing-shortlist": "_shortlist"}


def versus(full: dict[str, Any], race: dict[str, Any]) -> dict[str, Any]:
    """A racing run against the full run of the same seed: request ratio, same final validation score."""
    ratio = r(race["train_requests"] / full["train_requests"]) if full["train_requests"] else None
    same = full["val"] == race["val"] if full["val"] is not None else full["test"] == race["test"]
    return {"ratio": ratio, "same_val": same}


def run_cell(args: argparse.Namespace, task: str, seed: int, strategy: str, tmp: Path) -> dict[str, Any]:
    quick = bool(args.quick)
    if quick:
        n_train = dict(QUICK_TASKS)[task]
        scorer: LLM = FakeLLM(fn=sim_scorer_reply, name="sim-scorer")
        opts: dict[str, Any] = {"dataset": f"jsonl:{sim_dataset(tmp)}", "num_train": n_train,
                                "train_ratio": 0.6, "num_val": 60, "num_test": 40,
                                "initial": ["Let's solve the problem (acc 55)."]}  # fmt: skip
    else:
        from promptopt.llm.factory import build_llm

        scorer = build_llm(
            args.scorer, cache=args.cache, **({"n_threads": args.threads} if args.threads else {})
        )
        opts = {"dataset": task, "data_dir": args.data_dir, "max_tokens": args.answer_tokens}
        if args.split_seed is not None:
            opts["split_seed"] = args.split_seed
        if args.num_train:
            opts["num_train"] = args.num_train
        if task == "gsm8k":
            opts.update(num_val=args.gsm8k_val, num_test=args.gsm8k_test)
        else:
            opts.update({k: v for k, v in (("num_val", args.bbh_val), ("num_test", args.bbh_test)) if v})
    counted = InstrumentedLLM(scorer)
    race = {"race_delta": args.race_delta, "race_first": args.race_first, "race_growth": args.race_growth}
    if strategy != "full":
        race["race_target"] = RACE_TARGET_OF[strategy]
    t = create(scorer=counted, seed=seed, scoring="full" if strategy == "full" else "racing", **opts, **race)
    run_dir = (
        RESULTS
        / f"{BENCH}_runs"
        / ("quick" if quick else "real")
        / f"{task.replace(':', '_')}-s{seed}-{strategy}"
    )
    full_dir = run_dir.parent / f"{task.replace(':', '_')}-s{seed}-full"
    if strategy != "full" and not args.e2e:
        optimizer: LLM = ReplayLLM(proposals_of(full_dir, seed))
    elif quick:
        optimizer = FakeLLM(fn=sim_optimizer_reply, name="sim-optimizer")
    else:
        from promptopt.llm.factory import build_llm

        optimizer = build_llm(args.optimizer, cache=args.cache, cache_policy="all")
    shutil.rmtree(run_dir, ignore_errors=True)  # a cell not in the book is redone (the cache replays it)
    res = OPRO(steps=args.steps, per_step=args.per_step, seed=seed).optimize(t, llm=optimizer, run=run_dir)
    report = res.report.get("task") or {}
    scoring = report.get("scoring") or {}
    search = baselines_vs_found(t, report) if strategy == "full" and not quick else {}
    return {
        "task": task, "seed": seed, "strategy": strategy, "stop_reason": res.stop_reason,
        "train_requests": scoring.get("train_requests"), "candidates": scoring.get("candidates"),
        "stopped_early": scoring.get("stopped_early"), "train_examples": scoring.get("train_examples"),
        "scorer_requests_all": counted.requests, "best_train": res.best_score, **picked(report),
        **search,
    }  # fmt: skip


#: the OPRO paper's best-known found instruction (PaLM 2-L-IT optimizer), scored as one more baseline
PAPER_INSTRUCTION = "Take a deep breath and work on this problem step-by-step."


def baselines_vs_found(task: Any, report: dict[str, Any]) -> dict[str, Any]:
    """The instruction-search table of a full run (issue 10): the pick's held-out test accuracy
    against each baseline the task scored (empty, step by step, solve) and the OPRO paper's found
    instruction, each as a paired difference with its bootstrap 95 % interval and McNemar's p."""
    from promptopt.evaluators.accuracy import aevaluate_many
    from promptopt.evaluators.stats import compare_paired
    from promptopt.llm.base import run_sync

    per_ex = dict(report.get("per_example") or {})
    accs = {
        name: row.get("accuracy") for name, row in (report.get("test") or {}).items() if isinstance(row, dict)
    }
    if "best" not in per_ex:
        return {}

    async def paper() -> list[Any]:
        try:
            return await aevaluate_many(
                task.scorer,
                [PAPER_INSTRUCTION],
                task.splits.test,
                position=task.position,
                max_tokens=task.max_tokens,
                seed=SCORER_SEED,  # greedy: shared by every seed, as the task does
            )
        finally:  # this loop's HTTP clients die with it: close them while it still runs
            await task.scorer.aclose()

    (ev,) = run_sync(paper())  # fmt: skip
    per_ex["paper"] = [None if x.correct is None else int(x.correct) for x in ev.records]
    accs["paper"] = ev.accuracy
    cmp = {
        name: compare_paired(per_ex["best"], per_ex[name], seed=0).to_json()
        for name in per_ex
        if name not in ("best", "train_best")
    }
    return {"test_accuracy": {k: r(v, 2) for k, v in accs.items()}, "vs_found": cmp, "per_example": per_ex}


# --------------------------------------------------------------------------- book keeping


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_cells(path: Path) -> dict[str, dict[str, Any]]:
    cells: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a torn last line from a kill
                continue
            cells[rec["key"]] = rec
    return cells


def append_cell(path: Path, rec: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def summarise(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    by_task: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        by_task.setdefault(p["task"], []).append(p)
    out: dict[str, Any] = {}
    for task, rows in by_task.items():
        out[task] = {"seeds": len(rows)}
        for strategy in STRATEGIES[1:]:
            sx = SUFFIX[strategy]
            have = [p for p in rows if p.get(f"ratio{sx}") is not None]
            ok = [p for p in have if p[f"ratio{sx}"] <= 0.5 and p[f"same_val{sx}"]]
            out[task][strategy] = {
                "race_target": RACE_TARGET_OF[strategy],
                "median_ratio": r(statistics.median(p[f"ratio{sx}"] for p in have)) if have else None,
                "same_val_seeds": sum(bool(p[f"same_val{sx}"]) for p in have),
                "goal_seeds": len(ok),
                "goal_met": len(ok) >= 4 and len(rows) >= 5,
            }
        search = [best_baseline(p["full"]) for p in rows if p["full"].get("vs_found")]
        if search:
            out[task]["search"] = {
                "seeds": len(search),
                "found_above_best_baseline": sum(s["diff"] > 0 for s in search),
                "ci_above_zero": sum(s["ci_low"] > 0 for s in search),
                "median_diff": r(statistics.median(s["diff"] for s in search)),
            }
    return out


BASELINE_NAMES = ("empty", "step_by_step", "solve", "paper")


def best_baseline(full: dict[str, Any]) -> dict[str, Any]:
    """The paired comparison of a full run's pick with the baseline that scored best on the test
    split (the hardest one to beat, chosen after the fact: conservative for the found one)."""
    accs = full["test_accuracy"]
    name = max((n for n in BASELINE_NAMES if n in full["vs_found"]), key=lambda n: accs.get(n) or 0.0)
    return {"name": name, **full["vs_found"][name]}


def search_table(pairs: list[dict[str, Any]]) -> list[str]:
    """Issue 10's instruction-search table from the full runs: the pick vs each baseline on the
    held-out test split, and the paired difference with the best of them."""
    rows = [p for p in pairs if p["full"].get("vs_found")]
    if not rows:
        return []
    lines = ["", "## Instruction search (full runs): the pick vs the baselines on the held-out test split", "",
             "Baselines: empty, \"Let's think step by step.\", \"Let's solve the problem.\", and the OPRO paper's "
             f"\"{PAPER_INSTRUCTION}\". Difference = pick − best baseline on the same questions (points), "
             "95 % paired bootstrap interval, McNemar's exact p.", "",
             "| task | seed | picked instruction | pick | empty | step by step | solve | paper | best baseline | "
             "pick − best [95 % CI] | McNemar p |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in rows:
        f = p["full"]
        a = f["test_accuracy"]
        b = best_baseline(f)
        ins = (f.get("instruction") or "").replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {p['task']} | {p['seed']} | {ins[:90]}{'…' if len(ins) > 90 else ''} | {r(a.get('best'))} | "
            f"{r(a.get('empty'))} | {r(a.get('step_by_step'))} | {r(a.get('solve'))} | {r(a.get('paper'))} | "
            f"{b['name']} | {r(b['diff'], 1)} [{r(b['ci_low'], 1)}, {r(b['ci_high'], 1)}] | {r(b['p_value'], 3)} |"
        )
    return lines


def markdown(pairs: list[dict[str, Any]], summary: dict[str, Any], header: dict[str, Any]) -> str:
    lines = [f"# {BENCH}: racing vs full scoring", "", "```", json.dumps(header, indent=1), "```", "",
             "Training scorer requests of each racing run over the full run's (same proposals, replayed), "
             "candidates stopped early, and the validation / test accuracy of each run's final pick. "
             "`racing`: race against the best so far (race_target=best); `shortlist`: against the "
             "validation shortlist's k-th best (race_target=shortlist, the default).", "",
             "| task | seed | full train requests | racing: requests, ratio, stopped | shortlist: requests, ratio, stopped | "
             "full val / test | racing val / test | shortlist val / test |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in pairs:
        f, g, h = p["full"], p["racing"], p.get("racing-shortlist") or {}

        def cost(x: dict[str, Any], sx: str, p: dict[str, Any] = p) -> str:
            if not x:
                return "—"
            return f"{x['train_requests']}, {p[f'ratio{sx}']}, {x['stopped_early']}/{x['candidates']}"

        def picks(x: dict[str, Any], sx: str | None, p: dict[str, Any] = p) -> str:
            if not x:
                return "—"
            mark = "" if sx is None or p[f"same_val{sx}"] else " (differs)"
            return f"{r(x['val'])} / {r(x['test'])}{mark}"

        lines.append(
            f"| {p['task']} | {p['seed']} | {f['train_requests']} | {cost(g, '')} | {cost(h, '_shortlist')} | "
            f"{picks(f, None)} | {picks(g, '')} | {picks(h, '_shortlist')} |"
        )
    lines += ["", "| task | seeds | strategy | median ratio | same val | ratio <= 0.5 and same val | goal (>= 4 of 5) |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for task, s in summary.items():
        for strategy in STRATEGIES[1:]:
            v = s[strategy]
            lines.append(
                f"| {task} | {s['seeds']} | {strategy} (target {v['race_target']}) | {v['median_ratio']} | "
                f"{v['same_val_seeds']} | {v['goal_seeds']} | {v['goal_met']} |"
            )
    lines += search_table(pairs)
    return "\n".join(lines) + "\n"


def plot(pairs: list[dict[str, Any]], path: Path) -> str | None:
    """Left: training-request ratio racing / full per task and seed (the P3 goal line at 0.5).
    Right: pick − best baseline on the test split with its paired 95 % interval, per task and seed."""
    if not pairs:
        return None
    fig = figure(11, 4)
    tasks = list(dict.fromkeys(p["task"] for p in pairs))
    ax = fig.add_subplot(1, 2, 1)
    for strategy, dx, color in (("racing", -0.08, "C0"), ("racing-shortlist", 0.08, "C2")):
        sx = SUFFIX[strategy]
        for i, task in enumerate(tasks):
            ys = [p[f"ratio{sx}"] for p in pairs if p["task"] == task and p.get(f"ratio{sx}") is not None]
            ax.scatter([i + dx] * len(ys), ys, color=color, label=strategy if i == 0 else None)
    ax.axhline(0.5, color="C3", linestyle="--", linewidth=1, label="goal ≤ 0.5")
    ax.set_xticks(range(len(tasks)), [t.split(":")[-1] for t in tasks], fontsize=7, rotation=15)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("racing / full training requests")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 2, 2)
    rows = [(p["task"], p["seed"], best_baseline(p["full"])) for p in pairs if p["full"].get("vs_found")]
    for task, seed, b in rows:
        x = tasks.index(task) + (seed - 2) * 0.12
        ax.errorbar([x], [b["diff"]], yerr=[[b["diff"] - b["ci_low"]], [b["ci_high"] - b["diff"]]],
                    fmt="o", color=f"C{tasks.index(task)}", capsize=2)  # fmt: skip
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_xticks(range(len(tasks)), [t.split(":")[-1] for t in tasks], fontsize=7, rotation=15)
    ax.set_ylabel("pick − best baseline, test (points, 95 % CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="simulated scorer and optimizer (< 1 min)")
    ap.add_argument("--tasks", nargs="+", default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=None, help="OPRO steps (default 5; --quick 6)")
    ap.add_argument("--per-step", type=int, default=8)
    ap.add_argument("--scorer", default="local")
    ap.add_argument("--optimizer", default="local")
    ap.add_argument("--threads", type=int, default=None, help="n_threads for local models")
    ap.add_argument("--data-dir", default=os.environ.get("PROMPTOPT_DATA_DIR"))
    ap.add_argument("--num-train", type=int, default=None, help="cap the training split")
    ap.add_argument("--answer-tokens", type=int, default=256, help="scorer answer cap (256)")
    ap.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="one data split for every seed (default: each seed draws its own)",
    )
    ap.add_argument("--bbh-val", type=int, default=None, help="BBH validation subset")
    ap.add_argument("--bbh-test", type=int, default=None, help="BBH test subset")
    ap.add_argument("--gsm8k-val", type=int, default=100, help="GSM8K validation subset")
    ap.add_argument("--gsm8k-test", type=int, default=200, help="GSM8K test subset")
    ap.add_argument("--cache", default=str(RESULTS / f"{BENCH}.cache.sqlite"))
    ap.add_argument("--e2e", action="store_true", help="racing run with the real optimizer, not a replay")
    ap.add_argument("--race-delta", type=float, default=0.1, help="race_delta task option")
    ap.add_argument("--race-first", type=int, default=10, help="race_first task option")
    ap.add_argument("--race-growth", type=float, default=1.5, help="race_growth task option")
    args = ap.parse_args()
    args.steps = args.steps or (6 if args.quick else 5)
    tasks = args.tasks or [name for name, _ in QUICK_TASKS] if args.quick else args.tasks or list(REAL_TASKS)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{BENCH}{'-quick' if args.quick else ''}{'-e2e' if args.e2e else ''}"
    book = RESULTS / f"{name}.cells.jsonl"
    cells = load_cells(book)
    model = "simulated" if args.quick else f"scorer {args.scorer}, optimizer {args.optimizer}"
    sizes = (
        f"steps={args.steps},per_step={args.per_step},num_train={args.num_train},"
        f"race={args.race_delta}/{args.race_first}/{args.race_growth}"
    )
    if not args.quick:
        sizes += f",answer_tokens={args.answer_tokens},bbh={args.bbh_val}/{args.bbh_test},gsm8k={args.gsm8k_val}/{args.gsm8k_test}"
        if args.split_seed is not None:
            sizes += f",split_seed={args.split_seed}"
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            for seed in args.seeds:
                row: dict[str, Any] = {}
                for strategy in STRATEGIES:
                    key = f"{model}|{sizes}|{task}|{seed}|{strategy}"
                    if key not in cells:
                        cells[key] = {"key": key, **run_cell(args, task, seed, strategy, Path(tmp))}
                        append_cell(book, cells[key])
                        sys.stderr.write(f"{BENCH}: {task} seed {seed} {strategy} done\n")
                    row[strategy] = cells[key]
                pair: dict[str, Any] = {"task": task, "seed": seed, **row}
                for strategy in STRATEGIES[1:]:
                    pair.update(
                        {f"{k}{SUFFIX[strategy]}": v for k, v in versus(row["full"], row[strategy]).items()}
                    )
                pairs.append(pair)
    summary = summarise(pairs)
    header = {"bench": BENCH, "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
              "commit": git_commit(), "model": model, "sizes": sizes, "e2e": args.e2e,
              "machine": machine()}  # fmt: skip
    (RESULTS / f"{name}.json").write_text(
        json.dumps({**header, "summary": summary, "pairs": pairs}, indent=1)
    )
    md = markdown(pairs, summary, header)
    if not args.quick and try_plot(lambda: plot(pairs, RESULTS / f"{name}.png")):
        md += f"\n![racing ratio and instruction search]({name}.png)\n"
    (RESULTS / f"{name}.md").write_text(md)
    print(json.dumps({"bench": BENCH, "summary": summary, "results": str(RESULTS / f"{name}.md")}))


if __name__ == "__main__":
    run_main(main)
