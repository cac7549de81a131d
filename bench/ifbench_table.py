"""The IFBench proof table of issue 21: every measured method on the same held-out test prompts, in one table.

Runs no model. It reads what the other benches wrote into ``bench/results/`` and pairs them example
by example, because the claim of issue 21 ("the search beats no prompt, a hand-written prompt and
GEPA on the same prompts, the same target and the same budget") needs one table whose rows provably
share the test prompts and the sizes; separate tables cannot show that. This file is the command
line and the assembly; each step has a module of its own:

- :mod:`ifbench_table_sources`: reading each source kind (a registry, ``LOADERS``):

  - ``fixed``: ``ifbench_fixed-<tag>.json`` (``bench/ifbench_fixed.py``): rows ``none`` and
    ``handwritten``, deterministic (temperature 0), so one run pairs with every seed of another row.
  - ``reflect``: ``reflect-<tag>.cells.jsonl`` (``bench/reflect.py``), one cell per (method, seed),
    its values in the task's test order; every method it has (``opro``, ``reflective``, ``demos``,
    ``reflective+demos``) is a row; the (file, method → row) mapping is ``REFLECT`` (``--reflect``),
    a method it does not name keeps its own name (qualified with its tag if another source has that
    name). A reflect cell records no example ids: it is aligned through the fixed file's
    ``example_ids`` (or the peers' ``test_ids``), and checked against the test ids its run
    directory's ``answers.jsonl`` names when that directory is here.
  - ``peers``: ``ifbench_peers-<tag>.json`` + ``.examples.jsonl`` (``bench/ifbench_peers.py``): rows
    ``gepa``, ``mipro``, ``dspy-gepa`` per seed, values keyed by example id. The json's ``cells`` are
    the cells of the run's plan (the ``.cells.jsonl`` journal may hold cells of other sizes too).
  - ``rewriter`` (off unless ``--rewriter TAG``): ``ifbench_rewriter-<tag>.json`` + ``.examples.jsonl``
    (``bench/ifbench_rewriter.py``): BPO's rewriter rows, deterministic like the fixed ones, and the
    rewriter's constraint-preservation figures.
  - ``retest`` (off unless ``--retest TAG``): ``ifbench_retest-<tag>.json`` (``bench/ifbench_retest.py``):
    the fixed prompts and the searches' found system prompts answered again by one harness on a larger
    test set; each row keeps its group and seeds. Usually alone (``--fixed none --reflect none --peers
    none``), since its test set is larger than the searches'.

- :mod:`ifbench_table_checks`: the checks across sources; :mod:`ifbench_table_stats`: the figures;
  :mod:`ifbench_table_goals`: the goals; :mod:`ifbench_table_render`: the markdown and the figure.

Every row also gets its test answers' lengths (``ifbench_lengths``: the share of answers of at most 3
words and the median word count, from the run directories, the peers' ``test.jsonl`` and the fixed
file's ``words``): a row that answers mostly with a bare word is named *degenerate* under the table
and never chosen as the best promptopt row of the goals, because IFBench's checkers pass a bare word
on many constraint kinds; a row whose answers are not here is named as not checked. Each seed's own
share is kept too, and a seed with half or more of its answers that short is named (a warning: the
pooled rule can hide one collapsed seed). The differences against ``none`` and ``handwritten`` are
also split by the length of the row's answer, over the same pairs (section "Gain by answer length"):
how much of a gain answers of at most 3 words carry.

Checks before anything is written (one line, exit 2): the same test ids in every source, the same
sizes (train / val / test / answer tokens / budget, where a file records them), the same target
model, no smoke run. The fixed ``none`` row must equal the reflect cells' no-instruction values (the
same requests at temperature 0); a difference is a warning in the table, not an error (a server can be
nondeterministic). A source whose files are not there is one line in the table, not an error.

Another target model (e.g. the 1.5B) is another set of tags and another output stem; ``none`` (or
``''``) leaves a source out. Writes ``bench/results/<out>.{json,md,png}`` (``--out``, default
``ifbench``)::

    python bench/ifbench_table.py --rewriter reflect
    python bench/ifbench_table.py --fixed reflect --peers ifbench \\
        --reflect ifbench:opro=opro,reflective=reflective-v1 --reflect ifbench-general:reflective=reflective
    python bench/ifbench_table.py --fixed reflect15 --reflect ifbench15 --peers none --rewriter none \\
        --out ifbench-qwen15
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, git_commit, machine, note, run_main, try_plot
from ifbench_table_checks import (
    align,
    check_none,
    check_scorer,
    check_sizes,
    check_target,
    models_of,
    none_words,
    unique_names,
)
from ifbench_table_goals import goals, rewriter_goal
from ifbench_table_render import markdown, plot
from ifbench_table_sources import (
    BENCH,
    FILES,
    FIXED_ROWS,
    LOADERS,
    PEER_ROWS,
    REFLECT,
    Row,
    Source,
    TableError,
    read_json,
    value,
)
from ifbench_table_stats import accuracy, degenerate_rows, fmt_diff, mean, paired, summarize

from promptopt.errors import ConfigError
from promptopt.runs import atomic_write_json, atomic_write_text

#: what other benches (bench/ifbench_gate.py) and the tests use from here, wherever it now lives
__all__ = ["REFLECT", "Row", "TableError", "accuracy", "build", "fmt_diff", "goals", "main", "mean",
           "paired", "parse_reflect", "read_json", "value"]  # fmt: skip

GROUPS = ("fixed", "promptopt", "rewriter", "peer")  # the table's order of rows
#: a source tag that leaves the source out (``--peers none``)
OFF = ("", "none")


# --------------------------------------------------------------------------- main


def is_off(tag: str | None) -> bool:
    """Whether a source flag leaves its source out (``''`` or ``none``)."""
    return (tag or "").strip().lower() in OFF


def parse_reflect(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``TAG:METHOD=ROW,METHOD=ROW`` (``ROW`` ``-``: leave the method out) → the reflect mapping;
    ``none`` alone: no reflect source."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        if is_off(item) and item.strip():
            continue
        tag, _, pairs = item.partition(":")
        mapping: dict[str, str] = {}
        for pair in filter(None, pairs.split(",")):
            method, eq, name = pair.partition("=")
            if not eq or not method or not name:
                raise ConfigError(f"--reflect {item!r}: expected TAG:METHOD=ROW[,METHOD=ROW...]")
            mapping[method.strip()] = name.strip()
        if not tag:
            raise ConfigError(f"--reflect {item!r}: the file tag is missing")
        out[tag] = mapping
    return out


def wanted_sources(args: argparse.Namespace) -> list[tuple[str, str, str, tuple[Any, ...]]]:
    """(kind, label, tag, loader arguments) of every source the flags ask for, in the table's order."""
    wanted = [] if is_off(args.fixed) else [("fixed", f"fixed ({args.fixed})", args.fixed, ())]
    wanted += [("reflect", f"reflect ({tag})", tag, (m,)) for tag, m in args.reflect_map.items()]
    for kind in ("peers", "rewriter", "retest"):
        tags = getattr(args, kind, "")  # a caller may build its args without the newer sources
        for tag in (
            tags.split(",") if kind == "rewriter" and not is_off(tags) else [tags]
        ):  # several rewriters
            if not is_off(tag):
                wanted.append((kind, f"{kind} ({tag.strip()})", tag.strip(), ()))
    return wanted


def load_sources(
    results: Path, args: argparse.Namespace
) -> tuple[list[Source], dict[str, Any], dict[str, str]]:
    """The sources there are, the header's entry per label (None: missing), and why each missing one
    is (one line: its files are not there yet)."""
    sources: list[Source] = []
    found: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for kind, label, tag, extra in wanted_sources(args):
        s = LOADERS[kind](results, tag, *extra)
        if s is None:
            missing[label] = f"{' + '.join(FILES[kind](tag))}: not there yet"
            found[label] = None
            note(f"{BENCH}: {label}: missing, left out")
        else:
            sources.append(s)
            found[label] = {"files": s.files, "facts": s.facts, "sizes": s.sizes}
    return sources, found, missing


def build(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    """Read, check and summarize every source (nothing written): the document and the rows."""
    results = Path(args.results_dir)
    sources, found, missing = load_sources(results, args)
    if not any(s.rows for s in sources):
        raise TableError(f"no rows: none of the sources is in {results}")
    ids = align(sources)
    sizes = check_sizes(sources)
    target = check_target(sources)
    warnings = check_none(sources) + check_scorer(sources)
    none_words(sources)
    for line in unique_names(sources):
        note(f"{BENCH}: {line}")
    rows = [row for s in sources for row in s.rows]
    order = {n: k for k, n in enumerate((*FIXED_ROWS, *PEER_ROWS))}
    rows.sort(key=lambda row: (GROUPS.index(row.group), order.get(row.name, len(order))))  # stable otherwise
    table = summarize(rows, ids)
    by_kind = {s.kind: s for s in sources}
    here = machine()
    doc = {
        "bench": BENCH,
        "date": here["date_utc"],
        "commit": git_commit(),
        "machine": here,
        "command": " ".join(["python", *args.argv]),
        "sources": found,
        "missing": missing,
        "busy": {label: (s or {}).get("facts", {}).get("busy") for label, s in found.items()},
        "models": models_of(sources),
        "target": target,
        "sizes": sizes,
        "peer_versions": by_kind["peers"].facts.get("versions") if "peers" in by_kind else None,
        "warnings": warnings,
        "test_ids": ids,
        "table": table,
    }
    doc["degenerate"] = degenerate_rows(table)
    doc["goals"] = goals(table)
    rewriters = [s for s in sources if s.kind == "rewriter"]
    doc["rewriter_goals"] = [rewriter_goal(s) for s in rewriters] or [rewriter_goal(None)]
    doc["rewriter_goal"] = doc["rewriter_goals"][0]
    return doc, rows


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", default=RESULTS_DIR, help="where the sources are and the table goes")
    ap.add_argument("--out", default="ifbench", help="the table's file stem: <out>.json, .md, .png")
    ap.add_argument(
        "--fixed",
        default="reflect",
        help="ifbench_fixed-TAG.json (bench/ifbench_fixed.py --tag; none: no fixed rows)",
    )
    ap.add_argument("--reflect", action="append", default=None, metavar="TAG:METHOD=ROW[,METHOD=ROW]",
                    help="a reflect-TAG.cells.jsonl and its rows (repeatable; replaces the default "
                         + " ".join(f"{t}:{','.join(f'{a}={b}' for a, b in m.items())}" for t, m in REFLECT.items())
                         + "); other methods found keep their own name (with their tag if another source has it), "
                         "ROW - leaves one out")  # fmt: skip
    ap.add_argument("--peers", default="ifbench", help="ifbench_peers-TAG.* ('' or none: no peers)")
    ap.add_argument(
        "--rewriter",
        default="",
        help="ifbench_rewriter-TAG.* (off by default; none: off; TAG,TAG: several, e.g. with and without "
        "--keep-original)",
    )
    ap.add_argument("--retest", default="", help="ifbench_retest-TAG.json: found prompts on a larger test set "
                    "(bench/ifbench_retest.py; off by default)")  # fmt: skip
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    args.argv = ["bench/ifbench_table.py", *argv]
    args.reflect_map = parse_reflect(args.reflect) if args.reflect else REFLECT
    doc, _ = build(args)  # every check passes before anything is written
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    png = try_plot(lambda: plot(doc["table"], results / f"{args.out}.png"))
    doc["plot"] = png
    atomic_write_json(results / f"{args.out}.json", doc)
    atomic_write_text(results / f"{args.out}.md", markdown(doc, png))
    for t in doc["table"]:
        print(json.dumps({"bench": BENCH, "row": t["row"], "mean": t["mean"], "accuracy": t["accuracy"],
                          "vs_none": t.get("vs_none")}))  # fmt: skip
    for w in doc["warnings"]:
        note(f"{BENCH}: warning: {w}")
    note(f"{BENCH}: wrote {results / args.out}.json, .md" + (", .png" if png else ""))


if __name__ == "__main__":
    run_main(main)
