"""Fixed system prompts on the ``ifbench`` task's held-out test split: the rows no search produced.

The proof table of issue 21 compares every optimizer against two prompts nobody searched for: **no
system prompt** and a **hand-written** one (the obvious thing a user would write first, "Follow every
constraint in the request exactly."). This bench answers the test prompts with each through the
product's own task (``promptopt.tasks.ifbench``: same splits, scorer options, request cache and
``ifbench`` metric as ``bench/reflect.py``'s cells, so the rows pair example by example) and writes
per-example values to ``bench/results/ifbench_fixed-<tag>.json``. Deterministic (temperature 0), so
one run is every seed's figure. It stores each answer's word count (``words``), never the answer
text: the table's guard against rows that game the checkers with one-word answers.

    OPENAI_API_KEY=EMPTY python bench/ifbench_fixed.py --tag reflect \\
        --scorer openai:qwen05@http://127.0.0.1:8005/v1 --train 10 --val 10 --test 40 --answer-tokens 300
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _common import git_commit, machine, run_main
from ifbench_lengths import words

HERE = Path(__file__).resolve().parent
#: name → system prompt ("" is none)
PROMPTS: dict[str, str] = {
    "none": "",
    "handwritten": "Follow every constraint in the request exactly.",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True)
    ap.add_argument("--scorer", required=True)
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--val", type=int, default=10)
    ap.add_argument("--test", type=int, default=40)
    ap.add_argument("--answer-tokens", type=int, default=300)
    ap.add_argument("--prompt", action="append", default=[], metavar="NAME=TEXT", help="more fixed prompts")
    ap.add_argument("--busy", action="store_true")
    args = ap.parse_args()

    from promptopt.llm.base import run_sync
    from promptopt.tasks.ifbench.task import create

    prompts = dict(PROMPTS)
    for item in args.prompt:
        name, _, text = item.partition("=")
        prompts[name] = text
    task = create(scorer=args.scorer, position="system", max_tokens=args.answer_tokens, train=args.train,
                  val=args.val, test=args.test, keep_answers=False)  # fmt: skip
    started = time.time()
    evaluations = run_sync(task.aevaluate("test", list(prompts.values())))
    rows = {}
    for (name, text), ev in zip(prompts.items(), evaluations, strict=True):
        rows[name] = {"system_prompt": text, **evaluation_fields(ev)}
        print(f"{name}: {ev.accuracy:.2f} (failed {ev.failed})", file=sys.stderr)
    path = HERE / "results" / f"ifbench_fixed-{args.tag}.json"
    path.write_text(json.dumps(result_doc("ifbench_fixed", args, rows, started), indent=1) + "\n")
    print(path, file=sys.stderr)


def evaluation_fields(ev: Any) -> dict[str, Any]:
    """One prompt's test evaluation as the result files store it (``bench/ifbench_table.py`` reads it)."""
    return {
        "accuracy": ev.accuracy,
        "failed": ev.failed,
        "per_example": [rec.score for rec in ev.records],
        "example_ids": [rec.example_id for rec in ev.records],
        # each answer's word count (None: failed), never its text: bench/ifbench_table.py's
        # "short answers" column, the guard against rows that answer every prompt with a bare word
        "words": [words(rec.response) for rec in ev.records],
    }


def result_doc(bench: str, args: argparse.Namespace, rows: dict[str, Any], started: float) -> dict[str, Any]:
    """The result file around ``rows``: when, where, which target and sizes (``args``: the benches' flags)."""
    return {
        "bench": bench,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "commit": git_commit(),
        "machine": machine(),
        "busy": args.busy,
        "scorer": args.scorer,
        "sizes": {
            "train": args.train,
            "val": args.val,
            "test": args.test,
            "answer_tokens": args.answer_tokens,
        },
        "position": "system",
        "metric": "ifbench (instruction-level strict)",
        "wall_s": round(time.time() - started, 1),
        "rows": rows,
        "command": "python " + " ".join(sys.argv),
    }


if __name__ == "__main__":
    run_main(main)
