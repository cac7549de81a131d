"""The prompts the IFBench searches found, answered again on a larger held-out test set.

Why: the searches (``bench/reflect.py``, ``bench/ifbench_peers.py``) report on 40 test prompts, where
a paired interval is about ±7 points wide: a real gain of a few points cannot show. Searching costs
hours on these CPUs; answering a found prompt on more test prompts costs minutes. This bench takes
each found system prompt (per seed) from the searches' result files, plus the fixed rows (no system
prompt, the hand-written one), and answers a larger seeded test subset with **one** harness for all:
the product's own ``ifbench`` task (``promptopt.tasks.ifbench``; same splits and scorer options as
the searches, so the first 40 test prompts are the searches' own — ``test=N`` takes a prefix of one
seeded permutation — and promptopt's answers to them come from the request cache). A peer's prompt is
answered through promptopt too, not through its library, so every row meets the same requests.

Sources (``--from KIND:TAG:METHOD=ROW``, repeatable):

- ``reflect:TAG:METHOD=ROW``: the cells of ``reflect-TAG.cells.jsonl`` with ``method`` METHOD
  (their ``instruction``); a cell with demos is refused (demos are not a system prompt);
- ``peers:TAG:METHOD=ROW``: the cells of ``ifbench_peers-TAG.json`` with ``method`` METHOD whose
  ``found`` is a ``system_prompt`` (GEPA's); a DSPy program (MIPROv2) is refused: it is a structured
  prompt with demos that only DSPy's adapter renders.

Writes ``bench/results/ifbench_retest-<tag>.json``: one entry per row with its group (``fixed``,
``promptopt`` or ``peer``), and per seed the system prompt, the per-example ``ifbench`` values, the
example ids, each answer's word count (never its text) and where the prompt came from.
``bench/ifbench_table.py --retest TAG`` reads it. Resumable through the request cache.

    OPENAI_API_KEY=EMPTY python bench/ifbench_retest.py --tag retest15 \\
        --scorer openai:qwen15@http://127.0.0.1:8015/v1 --test 120 \\
        --from reflect:ifbench15-hw:reflective=reflective-from-handwritten --from peers:ifbench15-hw:gepa=gepa
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _common import run_main
from ifbench_fixed import PROMPTS, evaluation_fields, result_doc

from promptopt.errors import ConfigError, DataError

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KINDS = ("reflect", "peers")


def parse_source(text: str) -> tuple[str, str, str, str]:
    """``KIND:TAG:METHOD=ROW`` → its four parts (``=ROW`` may be left out: the row is METHOD)."""
    spec, _, row = text.partition("=")
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] not in KINDS or not all(parts):
        raise ConfigError(f"--from {text!r}: expected KIND:TAG:METHOD[=ROW], KIND one of {', '.join(KINDS)}")
    kind, tag, method = parts
    return kind, tag, method, row or method


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise DataError(f"{path} does not exist")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def found_prompts(kind: str, tag: str, method: str, results: Path = RESULTS) -> dict[int, dict[str, Any]]:
    """seed → ``{system_prompt, metric_calls, source}`` of every cell of ``method`` in the source."""
    out: dict[int, dict[str, Any]] = {}
    if kind == "reflect":
        name = f"reflect-{tag}.cells.jsonl"
        for cell in _lines(results / name):
            if cell.get("method") != method:
                continue
            if cell.get("demos"):
                raise ConfigError(
                    f"{name}: {method} seed {cell['seed']} has demos: not a system prompt alone"
                )
            calls = cell.get("metric_calls") or {}
            out[int(cell["seed"])] = {"system_prompt": cell.get("instruction") or "",
                                      "metric_calls": calls.get("used"), "source": f"{name} seed {cell['seed']}"}  # fmt: skip
    else:
        name = f"ifbench_peers-{tag}.json"
        path = results / name
        if not path.exists():
            raise DataError(f"{path} does not exist")
        for cell in json.loads(path.read_text()).get("cells", []):
            if cell.get("method") != method:
                continue
            found = cell.get("found")
            if not isinstance(found, dict) or "system_prompt" not in found:
                raise ConfigError(
                    f"{name}: {method} seed {cell['seed']} did not find a system prompt (a DSPy program?)"
                )
            out[int(cell["seed"])] = {"system_prompt": str(found["system_prompt"]),
                                      "metric_calls": cell.get("metric_calls"), "source": f"{name} seed {cell['seed']}"}  # fmt: skip
    if not out:
        raise DataError(f"{kind}:{tag}: no cell of method {method!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True, help="results name: ifbench_retest-<tag>.json")
    ap.add_argument("--scorer", required=True, help="the target, as the searches named it")
    ap.add_argument("--from", dest="sources", action="append", default=[], metavar="KIND:TAG:METHOD=ROW")
    ap.add_argument("--train", type=int, default=10, help="the searches' sizes (they fix the splits)")
    ap.add_argument("--val", type=int, default=10)
    ap.add_argument("--test", type=int, default=120, help="test prompts (a superset of the searches' 40)")
    ap.add_argument("--answer-tokens", type=int, default=300)
    ap.add_argument("--busy", action="store_true", help="mark the figures as measured on a busy machine")
    args = ap.parse_args()

    from promptopt.llm.base import run_sync
    from promptopt.tasks.ifbench.task import create

    rows: dict[str, dict[str, Any]] = {
        name: {"group": "fixed", "seeds": {"fixed": {"system_prompt": text, "metric_calls": None, "source": "fixed"}}}
        for name, text in PROMPTS.items()
    }  # fmt: skip
    for item in args.sources:
        kind, tag, method, row = parse_source(item)
        if row in rows:
            raise ConfigError(f"--from {item!r}: row {row!r} is named twice")
        found = found_prompts(kind, tag, method)
        rows[row] = {"group": "promptopt" if kind == "reflect" else "peer",
                     "seeds": {str(s): f for s, f in sorted(found.items())}}  # fmt: skip
    task = create(scorer=args.scorer, position="system", max_tokens=args.answer_tokens, train=args.train,
                  val=args.val, test=args.test, keep_answers=False)  # fmt: skip
    started = time.time()
    for name, row in rows.items():
        for seed, cell in row["seeds"].items():
            (ev,) = run_sync(task.aevaluate("test", [cell["system_prompt"]]))
            cell.update(evaluation_fields(ev))
            print(f"{name} {seed}: {ev.accuracy:.2f} (failed {ev.failed})", file=sys.stderr, flush=True)
    path = RESULTS / f"ifbench_retest-{args.tag}.json"
    path.write_text(json.dumps(result_doc("ifbench_retest", args, rows, started), indent=1) + "\n")
    print(path, file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
