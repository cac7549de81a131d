"""A model's answers to IFBench test prompts, as JSON Lines ``{"key", "response"}``.

Input for ``bench/ifbench_reference.py run --answers LABEL=FILE`` (the differential test's "answers
generated here": ``local-0.5b`` in the stored verdicts is ``--model local --n 40 --max-tokens 320``,
greedy, no system prompt). Every ``len(rows) // n``-th prompt is taken, so the prompts are spread
over the file.

Run: ``python bench/ifbench_answers.py --model local --n 40 --out FILE``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import run_main

from promptopt.llm.base import Message, Request
from promptopt.llm.factory import build_llm
from promptopt.tasks.ifbench.data import load_ifbench_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="local", help="model spec (default: the embedded model)")
    ap.add_argument("--n", type=int, default=40, help="how many prompts")
    ap.add_argument("--max-tokens", type=int, default=320)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows, _ = load_ifbench_rows()
    picked = rows[:: max(1, len(rows) // args.n)][: args.n]
    llm = build_llm(args.model, cache_policy="off")
    requests = [Request(messages=(Message("user", r["prompt"]),), max_tokens=args.max_tokens) for r in picked]
    answers = llm.generate(requests)
    with args.out.open("w", encoding="utf-8") as f:
        for row, answer in zip(picked, answers, strict=True):
            f.write(json.dumps({"key": row["key"], "response": answer.text}, ensure_ascii=False) + "\n")
    print(f"{len(picked)} answers -> {args.out}")


if __name__ == "__main__":
    run_main(main)
