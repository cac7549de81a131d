"""How often the answer-extraction turn changes a verdict on real model answers (issue 23, item 9).

The grader reads an answer by rules; where they cannot settle on one reading it says so
(``Graded.undecided``) and the answer is not credited. ``--extract-answer undecided`` asks the
scorer once more for those ("Therefore, the answer (arabic numerals) is", Kojima et al. 2022) and
grades the continuation; ``always`` asks for every answer. This script measures, on answers a real
model gave, what each mode would change: how many answers the rules call undecided, how many
verdicts the turn flips (wrong → right and right → wrong), the accuracy under each mode, and the
extra scorer calls.

Answers come from either

- an existing run (``--run-dir RUN``: its ``answers.jsonl`` and ``config.json``; every logged
  answer of every instruction and split, the examples rebuilt from the run's dataset), or
- the scorer itself (default): the sampled examples of ``--datasets`` answered once with
  ``--instruction`` at ``--position`` (the embedded ``local`` model by default).

The turn is always asked for every answer (``always``), so both modes are measured on one set of
requests: ``undecided`` uses the turn only where the rules were undecided. All scorer requests
are greedy and cached (the default request cache), so a rerun costs nothing.

Writes ``bench/results/extraction_turn.json`` and ``.md`` (date, commit, machine, model, sizes,
per-dataset rows, the answers whose verdict changed); ``--tag T`` writes ``extraction_turn-T.*``.

Full run (the lead schedules it; ~1 h on 2 CPU cores with the 0.5B embedded model)::

    python bench/extraction_turn.py --scorer local --datasets gsm8k bbh:navigate bbh:date_understanding \\
        --n 60 --max-tokens 400

Smoke run (what was run when the script was written; ~2 min)::

    python bench/extraction_turn.py --n 2 --max-tokens 200 --tag smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, git_commit, machine, note, run_main

from promptopt.evaluators.accuracy import aevaluate_many
from promptopt.evaluators.answers.extraction import Extracted, ExtractionMetric
from promptopt.evaluators.metrics.base import MetricItem
from promptopt.llm.factory import build_llm
from promptopt.tasks.instructions.answer_log import ANSWERS_FILE, load_answers
from promptopt.tasks.instructions.datasets import Example, load_dataset

BENCH = "extraction_turn"
DEFAULT_DATASETS = ("gsm8k", "bbh:navigate", "bbh:date_understanding")


def _sample(spec: str, data_dir: str | None, n: int, seed: int) -> list[Example]:
    """``n`` seeded examples of ``spec`` (from its test set when it has one, else its pool)."""
    ds = load_dataset(spec, data_dir=data_dir)
    pool = list(ds.test or ds.pool)
    return random.Random(f"{seed}:{spec}").sample(pool, min(n, len(pool)))


def _from_run(run_dir: Path) -> list[tuple[str, Example, str]]:
    """(dataset, example, answer) of every answer in ``run_dir``'s answer log."""
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    opts = config.get("task_config") or {}
    ds = load_dataset(
        str(opts.get("dataset", "gsm8k")),
        data_dir=opts.get("data_dir"),
        input_field=opts.get("input_field"),
        target_field=opts.get("target_field"),
        answer_type=opts.get("answer_type"),
        hf_config=opts.get("hf_config"),
        template=opts.get("template"),
    )
    by_id = {ex.id: ex for ex in [*ds.pool, *(ds.test or ())]}
    logged = load_answers(run_dir / ANSWERS_FILE)
    out: list[tuple[str, Example, str]] = []
    missing = 0
    for per_example in logged.answers.values():
        for ex_id, rec in per_example.items():
            ex = by_id.get(ex_id)
            if ex is None or rec.get("answer") is None:
                missing += 1
                continue
            out.append((ds.name, ex, str(rec["answer"])))
    if missing:
        note(f"{missing} logged answers skipped (example not in the dataset, or no answer text)")
    return out


async def _generate(
    llm: Any, datasets: Sequence[str], data_dir: str | None, n: int, seed: int, args: argparse.Namespace
) -> list[tuple[str, Example, str]]:
    """The scorer's answers to ``n`` sampled examples of each dataset, one batch per dataset."""
    out: list[tuple[str, Example, str]] = []
    for spec in datasets:
        examples = _sample(spec, data_dir, n, seed)
        started = time.perf_counter()
        (ev,) = await aevaluate_many(
            llm, [args.instruction], examples, position=args.position, max_tokens=args.max_tokens, seed=0
        )
        note(f"{spec}: {len(examples)} answers in {time.perf_counter() - started:.0f} s")
        by_id = {ex.id: ex for ex in examples}
        out += [(spec, by_id[r.example_id], r.response) for r in ev.records if r.response is not None]
        args.cached_answers = getattr(args, "cached_answers", 0) + ev.cached
    return out


def _row(items: Sequence[tuple[str, Example, str]], found: Sequence[Extracted]) -> dict[str, Any]:
    """The figures of one group of answers (see the module docstring)."""
    n = len(found)
    undecided = [e for e in found if e.rules.undecided]
    in_undecided_mode = [e.final if e.rules.undecided else e.rules for e in found]
    flips_undecided = sum(g.correct != e.rules.correct for g, e in zip(in_undecided_mode, found, strict=True))
    flips_always = [e for e in found if e.changed]
    return {
        "answers": n,
        "undecided_by_rules": len(undecided),
        "undecided_share": round(len(undecided) / n, 4) if n else None,
        "undecided_settled_by_turn": sum(e.turn is not None and not e.turn.undecided for e in undecided),
        "accuracy_never": round(100 * sum(e.rules.correct for e in found) / n, 2) if n else None,
        "accuracy_undecided": round(100 * sum(g.correct for g in in_undecided_mode) / n, 2) if n else None,
        "accuracy_always": round(100 * sum(e.final.correct for e in found) / n, 2) if n else None,
        "verdicts_changed_undecided": flips_undecided,
        "verdicts_changed_always": len(flips_always),
        "always_wrong_to_right": sum(e.final.correct and not e.rules.correct for e in flips_always),
        "always_right_to_wrong": sum(e.rules.correct and not e.final.correct for e in flips_always),
        "extra_scorer_calls_undecided": len(undecided),
        "extra_scorer_calls_always": n,
    }


def _changed(items: Sequence[tuple[str, Example, str]], found: Sequence[Extracted]) -> list[dict[str, Any]]:
    """The answers whose verdict the turn changed (or that the rules left undecided), for reading."""
    out = []
    for (spec, ex, answer), e in zip(items, found, strict=True):
        if e.changed or e.rules.undecided:
            out.append(
                {
                    "dataset": spec,
                    "example": ex.id,
                    "target": ex.target,
                    "rules": {
                        "prediction": e.rules.prediction,
                        "correct": e.rules.correct,
                        "undecided": e.rules.undecided,
                    },  # fmt: skip
                    "turn": None
                    if e.turn is None
                    else {
                        "prediction": e.turn.prediction,
                        "correct": e.turn.correct,
                        "undecided": e.turn.undecided,
                    },
                    "continuation": e.continuation,
                    "answer": answer[-600:],
                }
            )
    return out


def _markdown(result: dict[str, Any]) -> str:
    cols = [
        ("answers", "answers"),
        ("undecided_by_rules", "undecided (rules)"),
        ("undecided_settled_by_turn", "settled by the turn"),
        ("accuracy_never", "acc. never"),
        ("accuracy_undecided", "acc. undecided"),
        ("accuracy_always", "acc. always"),
        ("verdicts_changed_undecided", "changed (undecided)"),
        ("verdicts_changed_always", "changed (always)"),
        ("always_wrong_to_right", "always: wrong→right"),
        ("always_right_to_wrong", "always: right→wrong"),
    ]
    lines = [
        "# Answer-extraction turn: how often it changes a verdict",
        "",
        f"- date (UTC): {result['machine']['date_utc']}; commit {result['commit']}; "
        f"machine: {result['machine']['cpus']} CPUs, {result['machine']['machine']}, "
        f"load {result['machine']['loadavg']}",
        f"- scorer: `{result['scorer']}` ({result['scorer_model']}); answers from: {result['source']}",
        f"- command: `{result['command']}`",
        f"- wall time: {result['seconds']:.0f} s"
        + (
            ""
            if result["cached_answers"] is None
            else f" ({result['cached_answers']} answers from the request cache)"
        ),
        "",
        "| dataset | " + " | ".join(label for _, label in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, row in [*result["datasets"].items(), ("**all**", result["all"])]:
        lines.append(f"| {name} | " + " | ".join(str(row.get(k)) for k, _ in cols) + " |")
    lines += [
        "",
        "`undecided`: the turn is asked only where the rules could not settle on one answer (those are not "
        "credited under `never`); `always`: for every answer, and its reading counts where it is decided. "
        "Extra scorer calls: one per undecided answer, or one per answer.",
    ]
    if result["small"]:
        lines += ["", f"**Smoke-size run ({result['all']['answers']} answers): the figures prove the script, "
                  "not the rate.**"]  # fmt: skip
    return "\n".join(lines) + "\n"


async def _main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    data_dir = args.data_dir  # None: $PROMPTOPT_DATA_DIR, else the Hub (load_dataset decides)
    llm = build_llm(args.scorer, cache_policy="deterministic")
    if args.run_dir:
        items = _from_run(Path(args.run_dir))
        source = f"run {args.run_dir} ({ANSWERS_FILE})"
    else:
        items = await _generate(llm, args.datasets, data_dir, args.n, args.seed, args)
        source = f"generated: instruction {args.instruction!r} at {args.position}, {args.max_tokens} tokens"
    metric = ExtractionMetric(llm, "always")
    found = await metric.aextract([MetricItem(ex, answer) for _, ex, answer in items])
    groups: dict[str, list[int]] = {}
    for i, (spec, _, _) in enumerate(items):
        groups.setdefault(spec, []).append(i)
    result = {
        "bench": BENCH,
        "commit": git_commit(),
        "machine": machine(),
        "scorer": args.scorer,
        "scorer_model": getattr(llm, "name", args.scorer),
        "source": source,
        "command": "python bench/extraction_turn.py " + " ".join(args.argv),
        "seconds": round(time.perf_counter() - started, 1),
        "cached_answers": None if args.run_dir else getattr(args, "cached_answers", 0),
        "small": len(items) < 30,
        "datasets": {
            spec: _row([items[i] for i in idx], [found[i] for i in idx]) for spec, idx in groups.items()
        },
        "all": _row(items, found),
        "cases": _changed(items, found),
    }
    name = BENCH if not args.tag else f"{BENCH}-{args.tag}"
    out_dir = Path(args.results_dir or RESULTS_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out_dir / f"{name}.md").write_text(_markdown(result), encoding="utf-8")
    print(json.dumps({"bench": BENCH, "figure": "all", **result["all"]}))
    note(f"wrote {out_dir / (name + '.json')} and .md")
    close = getattr(llm, "close", None)
    if callable(close):
        close()


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    raw = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scorer", default="local", help="scorer model spec (default: the embedded local model)")
    p.add_argument(
        "--run-dir", help="read the answers of this run's answers.jsonl instead of generating them"
    )
    p.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    p.add_argument(
        "--data-dir", help="OPRO's data files (default: $PROMPTOPT_DATA_DIR, else ../shared/data/opro)"
    )
    p.add_argument("--n", type=int, default=5, help="examples per dataset (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--instruction", default="Let's think step by step.")
    p.add_argument("--position", default="A_begin", help="Q_begin, Q_end, A_begin or system")
    p.add_argument("--max-tokens", type=int, default=400, help="tokens per answer (default 400)")
    p.add_argument("--tag", help="write extraction_turn-TAG.* instead")
    p.add_argument("--results-dir", help="where to write (default bench/results)")
    args = p.parse_args(raw)
    args.argv = raw
    if not args.data_dir and not os.environ.get("PROMPTOPT_DATA_DIR"):
        shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "opro"
        if shared.is_dir():
            args.data_dir = str(shared)
    asyncio.run(_main(args))


if __name__ == "__main__":
    run_main(main)
