"""The IFBench proof table of issue 21: every measured method on the same held-out test prompts, in one table.

Runs no model. It reads what the other benches wrote into ``bench/results/`` and pairs them example
by example, because the claim of issue 21 ("the search beats no prompt, a hand-written prompt and
GEPA on the same prompts, the same target and the same budget") needs one table whose rows provably
share the test prompts and the sizes; separate tables cannot show that. Sources (a registry,
:data:`LOADERS`):

- ``fixed``: ``ifbench_fixed-<tag>.json`` (``bench/ifbench_fixed.py``): rows ``none`` and ``handwritten``,
  deterministic (temperature 0), so one run pairs with every seed of another row.
- ``reflect``: ``reflect-<tag>.cells.jsonl`` (``bench/reflect.py``), one cell per (method, seed), its
  values in the task's test order; the (file, method → row) mapping is :data:`REFLECT` (``--reflect``).
  A reflect cell records no example ids: it is aligned through the fixed file's ``example_ids`` (or
  the peers' ``test_ids``), and checked against the test ids its run directory's ``answers.jsonl``
  names when that directory is here.
- ``peers``: ``ifbench_peers-<tag>.json`` + ``.examples.jsonl`` (``bench/ifbench_peers.py``): rows
  ``gepa``, ``mipro``, ``dspy-gepa`` per seed, values keyed by example id. The json's ``cells`` are the
  cells of the run's plan (the ``.cells.jsonl`` journal may hold cells of other sizes too).
- ``rewriter`` (off unless ``--rewriter TAG``): ``ifbench_rewriter-<tag>.json`` + ``.examples.jsonl``
  (``bench/ifbench_rewriter.py``): BPO's rewriter rows, deterministic like the fixed ones.

Every row also gets its test answers' lengths (``ifbench_lengths``: the share of answers of at most 3
words and the median word count, from the run directories, the peers' ``test.jsonl`` and the fixed
file's ``words``): a row that answers mostly with a bare word is named *degenerate* under the table
and never chosen as the best promptopt row of the goals, because IFBench's checkers pass a bare word
on many constraint kinds.

Checks before anything is written (one line, exit 2): the same test ids in every source, the same
sizes (train / val / test / answer tokens / budget, where a file records them), no smoke run. The
fixed ``none`` row must equal the reflect cells' no-instruction values (the same requests at
temperature 0); a difference is a warning in the table, not an error (a server can be
nondeterministic). Writes ``bench/results/ifbench.{json,md,png}`` (``--out``)::

    python bench/ifbench_table.py
    python bench/ifbench_table.py --fixed reflect --peers ifbench \\
        --reflect ifbench:opro=opro,reflective=reflective-v1 --reflect ifbench-general:reflective=reflective
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, figure, git_commit, machine, md_table, note, r, run_main, try_plot
from ifbench_lengths import (
    DEGENERATE_SHARE,
    SHORT_WORDS,
    degenerate,
    fixed_words,
    peer_words,
    read_cell_answers,
    summary,
)

from promptopt.errors import ConfigError, DataError
from promptopt.evaluators.stats import bootstrap_mean_ci
from promptopt.journal import read_journal
from promptopt.runs import atomic_write_json, atomic_write_text

BENCH = "ifbench_table"
#: reflect file tag → {method → row name}; a method found but not named keeps its own name
REFLECT: dict[str, dict[str, str]] = {
    "ifbench": {"opro": "opro", "reflective": "reflective"},
    # the reflection prompt with a generality paragraph (commit b6e3b51, measured and left out), then
    # the demo rows: OPRO's and the reflective proposer (the shipped prompt) with --demos 3
    "ifbench-general": {
        "reflective": "reflective-generality",
        "demos": "demos",
        "reflective+demos": "reflective+demos",
    },
}
FIXED_ROWS = ("none", "handwritten")
PEER_ROWS = ("gepa", "mipro", "dspy-gepa")  # their order in the table
#: rewriter method → row name (its ``no-rewrite`` / ``instruction`` rows repeat the fixed ones)
REWRITER_ROWS = {"rewriter": "bpo-rewriter", "instruction+rewriter": "instruction+bpo-rewriter"}
GROUPS = ("fixed", "promptopt", "rewriter", "peer")  # the table's order of rows
#: the rows every other row is compared with, paired over (seed, example)
AGAINST = ("none", "handwritten", "gepa")
SIZE_KEYS = ("train", "val", "test", "answer_tokens", "budget")
FOUND_CHARS = 200


class TableError(DataError):
    """The sources cannot make one table (different test prompts or sizes, a smoke run, a torn file)."""


Seed = int | None  # None: a fixed row (deterministic, one run for every seed)


@dataclass
class Row:
    """One method's per-example values on the test prompts, per seed, in the reference id order."""

    name: str
    group: str
    source: str
    values: dict[Seed, list[float]] = field(default_factory=dict)
    metric_calls: dict[Seed, int | None] = field(default_factory=dict)
    found: dict[Seed, str] = field(default_factory=dict)
    #: per seed: the word count of each test answer (None: the answers are not here), see ifbench_lengths
    words: dict[Seed, list[int] | None] = field(default_factory=dict)
    words_from: str | None = None  # where the words came from, when not from the row's own source

    @property
    def fixed(self) -> bool:
        return list(self.values) == [None]

    def add(
        self,
        seed: Seed,
        values: list[float],
        metric_calls: int | None,
        found: str,
        words: list[int] | None = None,
    ) -> None:
        if seed in self.values:
            raise TableError(f"{self.source}: row {self.name!r} has seed {seed} twice")
        self.values[seed], self.metric_calls[seed], self.found[seed] = values, metric_calls, found
        self.words[seed] = words


@dataclass
class Source:
    """What one result file contributes: rows, the test ids it records, sizes and facts for the header."""

    kind: str
    files: list[str]
    rows: list[Row]
    ids: list[str] | None  # the ids of its values' order; None: the task's test order, ids unrecorded
    sizes: dict[str, Any]
    facts: dict[str, Any]
    #: per reflect cell: (label, its no-instruction values) and (label, the test ids its run directory answered)
    empty: list[tuple[str, list[float]]] = field(default_factory=list)
    id_sets: list[tuple[str, set[str]]] = field(default_factory=list)
    #: a reflect file's no-instruction answers' word counts (the first cell that logged them)
    empty_words: list[int] | None = None


# --------------------------------------------------------------------------- reading


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TableError(f"cannot read {path.name} ({exc}); if a bench is writing it, run again") from None


def value(x: Any) -> float:
    """A per-example value; a failed request (None) counts 0, as in every accuracy figure."""
    return 0.0 if x is None else float(x)


def by_id(rows: Sequence[dict[str, Any]], ids: Sequence[str], where: str) -> list[float]:
    """``rows`` (dicts with ``id`` and ``value``) as values in the order of ``ids``; all must be there."""
    got = {row["id"]: value(row.get("value")) for row in rows}
    if set(got) != set(ids) or len(got) != len(rows):
        raise TableError(f"{where}: its {len(got)} example ids are not the file's {len(ids)} test ids")
    return [got[i] for i in ids]


def load_fixed(results: Path, tag: str) -> Source | None:
    path = results / f"ifbench_fixed-{tag}.json"
    if not path.exists():
        return None
    doc = read_json(path)
    rows, ids = [], None
    for name, row in doc.get("rows", {}).items():
        if ids is None:
            ids = list(row["example_ids"])
        elif list(row["example_ids"]) != ids:
            raise TableError(f"{path.name}: row {name!r} is on other test ids than the first row")
        out = Row(name, "fixed", path.name)
        out.add(None, [value(x) for x in row["per_example"]], None, row.get("system_prompt", ""),
                fixed_words(row))  # fmt: skip
        rows.append(out)
    facts = {k: doc.get(k) for k in ("date_utc", "commit", "busy", "scorer", "position", "command")}
    return Source("fixed", [path.name], rows, ids, dict(doc.get("sizes") or {}), facts)


def load_reflect(results: Path, tag: str, mapping: dict[str, str]) -> Source | None:
    path = results / f"reflect-{tag}.cells.jsonl"
    if not path.exists():
        return None
    summary_path = results / f"reflect-{tag}.json"
    summary = read_json(summary_path) if summary_path.exists() else {}
    repo = results.parent.parent
    rows: dict[str, Row] = {}
    empty, id_sets = [], []
    empty_words: list[int] | None = None
    for cell in read_journal(path):
        method, seed = cell["method"], cell["seed"]
        name = mapping.get(method, method)
        if name == "-":  # mapped away
            continue
        row = rows.setdefault(name, Row(name, "promptopt", path.name))
        calls = cell.get("metric_calls")
        found = cell.get("instruction") or ""
        if cell.get("demos"):
            found += f" [+{cell['demos']} demos]"
        answers = read_cell_answers(repo, cell)  # None: the (git-ignored) run directory is not here
        row.add(seed, [value(x) for x in cell["per_example"]["best"]], calls.get("used") if calls else None,
                found, answers.best if answers else None)  # fmt: skip
        label = f"{method} seed {seed}"
        if "empty" in cell["per_example"]:
            empty.append((label, [value(x) for x in cell["per_example"]["empty"]]))
        if answers is not None:
            id_sets.append((label, answers.test_ids))
            empty_words = empty_words or answers.empty
    sizes = dict(summary.get("sizes") or {})
    if "budget_metric_calls" in sizes:
        sizes["budget"] = sizes.pop("budget_metric_calls")
    facts = {k: summary.get(k) for k in ("busy", "commit", "models", "versions", "command")}
    facts["date_utc"] = (summary.get("machine") or {}).get("date_utc")
    files = [path.name] + ([summary_path.name] if summary else [])
    if not summary:
        note(f"{BENCH}: {summary_path.name} is missing: sizes of reflect-{tag} unchecked")
    return Source("reflect", files, list(rows.values()), None, sizes, facts, empty, id_sets, empty_words)


def refuse_smoke(doc: dict[str, Any], name: str) -> None:
    if doc.get("smoke") or doc.get("standin"):
        raise TableError(f"{name} is a smoke run (tiny sizes or a stand-in model), not a result")


def found_text(found: Any) -> str:
    """A peer's result as text: its system prompt or instruction, and how many demos it adds."""
    if not isinstance(found, dict):
        return "" if found is None else str(found)
    text = str(found.get("system_prompt") or found.get("instruction") or "")
    return text + (f" [+{found['demos']} demos]" if found.get("demos") else "")


def load_peers(results: Path, tag: str) -> Source | None:
    path, examples = results / f"ifbench_peers-{tag}.json", results / f"ifbench_peers-{tag}.examples.jsonl"
    if not path.exists() or not examples.exists():
        return None
    doc = read_json(path)
    refuse_smoke(doc, path.name)
    ids = [str(i) for i in doc.get("test_ids") or []]
    per_cell: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rec in read_journal(examples):
        per_cell.setdefault((rec["method"], rec["seed"]), []).append(rec)
    rows: dict[str, Row] = {}
    for cell in doc.get("cells", []):
        method, seed = cell["method"], cell["seed"]
        if (method, seed) not in per_cell:  # the json is written after the examples: a torn pair
            note(f"{BENCH}: {path.name}: {method} seed {seed} has no examples yet: left out")
            continue
        row = rows.setdefault(method, Row(method, "peer", path.name))
        values = by_id(per_cell[(method, seed)], ids, f"{examples.name} {method} seed {seed}")
        row.add(seed, values, cell.get("metric_calls"), found_text(cell.get("found")),
                peer_words(results, tag, method, seed))  # fmt: skip
    setup = doc.get("setup") or {}
    sizes = {k: setup.get(k) for k in ("train", "val", "answer_tokens", "budget")}
    sizes["test"] = len(ids)
    facts = {k: doc.get(k) for k in ("date", "commit", "note", "versions")}
    facts["models"] = {"target": f"{setup.get('task_model')} @ {setup.get('task_base')}",
                       "reflection": f"{setup.get('reflection_model')} @ {setup.get('reflection_base')}"}  # fmt: skip
    return Source("peers", [path.name, examples.name], list(rows.values()), ids, sizes, facts)


def load_rewriter(results: Path, tag: str) -> Source | None:
    """The hook for BPO's rewriter rows (``--rewriter TAG``); fixed rows like ``none``."""
    path, examples = (
        results / f"ifbench_rewriter-{tag}.json",
        results / f"ifbench_rewriter-{tag}.examples.jsonl",
    )
    if not path.exists() or not examples.exists():
        return None
    doc = read_json(path)
    refuse_smoke(doc, path.name)
    per_method: dict[str, list[dict[str, Any]]] = {}
    for rec in read_journal(examples):
        per_method.setdefault(rec["method"], []).append(rec)
    ids = [str(rec["id"]) for rec in next(iter(per_method.values()), [])]
    rows = []
    for method, name in REWRITER_ROWS.items():
        if method in per_method:
            row = Row(name, "rewriter", path.name)
            system = doc.get("instruction") if "instruction" in method else None  # the plain row has none
            found = f"{system or '(no system prompt)'} [rewriter: {doc.get('note') or doc.get('rewriter')}]"
            row.add(None, by_id(per_method[method], ids, f"{examples.name} {method}"), None, found)
            rows.append(row)
    split = doc.get("split") or {}
    sizes = {"val": split.get("val"), "test": len(ids), "answer_tokens": doc.get("answer_tokens")}
    facts = {k: doc.get(k) for k in ("date", "commit", "target", "rewriter")}
    return Source("rewriter", [path.name, examples.name], rows, ids, sizes, facts)


#: source kind → how it is read (``None``: its files are not there yet)
LOADERS: dict[str, Callable[..., Source | None]] = {
    "fixed": load_fixed,
    "reflect": load_reflect,
    "peers": load_peers,
    "rewriter": load_rewriter,
}


# --------------------------------------------------------------------------- checks


def align(sources: list[Source]) -> list[str] | None:
    """Put every row in one test-id order (the first source that records ids: fixed, peers, rewriter);
    raise when a source is on other test prompts. The reference ids, or None when no file names them."""
    ref_src = next((s for s in sources if s.ids is not None), None)
    ref = ref_src.ids if ref_src else None
    n = len(ref) if ref is not None else None
    for s in sources:
        if s.ids is not None and ref_src is not None and s is not ref_src:
            if set(s.ids) != set(ref) or len(s.ids) != len(ref):
                shared = len(set(s.ids) & set(ref))
                raise TableError(f"{s.files[0]} is on other test prompts than {ref_src.files[0]} "
                                 f"({len(s.ids)} vs {len(ref)} ids, {shared} shared)")  # fmt: skip
            order = {i: k for k, i in enumerate(s.ids)}
            for row in s.rows:
                row.values = {seed: [v[order[i]] for i in ref] for seed, v in row.values.items()}
        for row in s.rows:
            for seed, v in row.values.items():
                n = len(v) if n is None else n
                if len(v) != n:
                    raise TableError(
                        f"{s.files[0]}: {row.name} seed {seed} has {len(v)} test values, not {n}"
                    )
        for label, ids in s.id_sets:
            if ref is not None and ids != set(ref):
                raise TableError(f"{s.files[0]}: the run directory of {label} answered other test prompts "
                                 f"than {ref_src.files[0]} ({len(ids & set(ref))} of {len(ref)} shared)")  # fmt: skip
    return list(ref) if ref is not None else None


def check_sizes(sources: list[Source]) -> dict[str, Any]:
    """The common sizes; raise naming the first size two sources disagree on."""
    common: dict[str, Any] = {}
    for key in SIZE_KEYS:
        seen = {s.files[0]: s.sizes[key] for s in sources if s.sizes.get(key) is not None}
        if len(set(seen.values())) > 1:
            raise TableError(
                f"the sources differ in {key}: " + ", ".join(f"{v} ({f})" for f, v in seen.items())
            )
        common[key] = next(iter(seen.values()), None)
    return common


def check_none(sources: list[Source]) -> list[str]:
    """Warnings: where the fixed ``none`` row and the reflect cells' no-instruction values differ."""
    none = next((row for s in sources for row in s.rows if row.name == "none" and s.kind == "fixed"), None)
    cells = [c for s in sources if s.kind == "reflect" for c in s.empty]
    if none is None or not cells:
        return []
    base = none.values[None]
    bad = [(label, sum(1 for a, b in zip(base, v, strict=True) if a != b)) for label, v in cells]
    bad = [(label, k) for label, k in bad if k]
    if not bad:
        return []
    worst = max(k for _, k in bad)
    return [f"the fixed `none` row differs from the reflect cells' no-instruction values in {len(bad)} of "
            f"{len(cells)} cells (up to {worst} of {len(base)} examples: " + ", ".join(f"{lab}: {k}" for lab, k in bad)
            + "); the same requests at temperature 0, so the server was nondeterministic"]  # fmt: skip


def check_scorer(sources: list[Source]) -> list[str]:
    """Warnings: a reflect file scored by another model than the fixed rows (the same spec format)."""
    fixed = next((s.facts.get("scorer") for s in sources if s.kind == "fixed"), None)
    other = [
        (s.files[0], (s.facts.get("models") or {}).get("scorer")) for s in sources if s.kind == "reflect"
    ]
    return [f"{name} was scored by {spec}, the fixed rows by {fixed}" for name, spec in other
            if fixed and spec and spec != fixed]  # fmt: skip


def none_words(sources: list[Source]) -> None:
    """Give the fixed ``none`` row the reflect cells' no-instruction answer lengths when its file has
    none (one from before bench/ifbench_fixed.py stored them): the same requests at temperature 0."""
    none = next((row for s in sources for row in s.rows if row.name == "none" and s.kind == "fixed"), None)
    if none is None or none.words.get(None):
        return
    got = next(((s.files[0], s.empty_words) for s in sources if s.kind == "reflect" and s.empty_words), None)
    if got is not None:
        none.words[None], none.words_from = got[1], f"{got[0]}: a cell's no-instruction answers"


def models_of(sources: list[Source]) -> dict[str, str]:
    """``"<kind> <role>"`` → model spec(s), for the header (distinct specs joined)."""
    out: dict[str, list[str]] = {}
    for s in sources:
        roles = dict(s.facts.get("models") or {})
        if s.facts.get("scorer"):
            roles["scorer"] = s.facts["scorer"]
        for role, spec in roles.items():
            seen = out.setdefault(f"{s.kind} {role}", [])
            if spec and spec not in seen:
                seen.append(spec)
    return {k: " / ".join(v) for k, v in out.items() if v}


# --------------------------------------------------------------------------- figures


def accuracy(values: Sequence[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else float("nan")


def prompt_level(values: Sequence[float]) -> float:
    return 100.0 * sum(1 for v in values if v == 1.0) / len(values) if values else float("nan")


def mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def paired(a: Row, b: Row) -> dict[str, Any] | None:
    """``a − b`` in points, pooled over (seed, example) pairs (a fixed row pairs with every seed of the
    other; two searched rows pair seed with seed), with the bootstrap 95 % interval of the mean."""
    if a.fixed or b.fixed:
        pairs = [(sa, sb) for sa in a.values for sb in b.values]
    else:
        pairs = [(s, s) for s in a.values if s in b.values]
    diffs = [x - y for sa, sb in pairs for x, y in zip(a.values[sa], b.values[sb], strict=True)]
    if not diffs:
        return None
    lo, hi = bootstrap_mean_ci(diffs, seed=0)
    return {"n": len(diffs), "seeds": sorted({s for p in pairs for s in p if s is not None}),
            "diff": r(100.0 * sum(diffs) / len(diffs), 2), "ci95": [r(lo, 2), r(hi, 2)]}  # fmt: skip


def summarize(rows: list[Row]) -> list[dict[str, Any]]:
    by_name = {row.name: row for row in rows}
    out = []
    for row in rows:
        seeds = sorted(row.values, key=lambda s: -1 if s is None else s)
        acc = [accuracy(row.values[s]) for s in seeds]
        pl = [prompt_level(row.values[s]) for s in seeds]
        vs = {f"vs_{o}": paired(row, by_name[o]) for o in AGAINST if o in by_name and o != row.name}
        answers = summary(row.words, row.words_from)
        out.append({
            "row": row.name, "group": row.group, "source": row.source, "fixed": row.fixed, "seeds": seeds,
            "accuracy": [r(a, 2) for a in acc], "mean": r(mean(acc), 2),
            "prompt_level": [r(p, 2) for p in pl], "prompt_level_mean": r(mean(pl), 2),
            "metric_calls": [row.metric_calls[s] for s in seeds],
            "found": [row.found[s] for s in seeds], "answers": answers, "degenerate": degenerate(answers), **vs,
        })  # fmt: skip
    return out


def degenerate_rows(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose answers are mostly a bare word or three, with their figures (for the note)."""
    return [{"row": t["row"], "group": t["group"], **t["answers"]} for t in table if t["degenerate"]]


def goals(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's three goals, computed: the best promptopt row (by test mean, so optimistic) against
    ``none`` and ``handwritten`` (the interval's low end above 0) and against ``gepa`` (mean not below).
    A degenerate row (mostly bare-word answers, see ifbench_lengths) is never the best row: its
    accuracy is the checkers passing a bare word, not instruction following; each goal names the rows
    left out (``left_out``)."""
    searched = [t for t in table if t["group"] == "promptopt" and t["mean"] is not None]
    left_out = [t["row"] for t in searched if t["degenerate"]]
    searched = [t for t in searched if not t["degenerate"]]
    if not searched:
        why = "every promptopt row is degenerate: " + ", ".join(left_out) if left_out else "no promptopt row"
        return [{"goal": "a promptopt row", "met": None, "why": why, "left_out": left_out}]
    best = max(searched, key=lambda t: t["mean"])
    by_name = {t["row"]: t for t in table}
    out: list[dict[str, Any]] = []
    for other in ("none", "handwritten"):
        d = best.get(f"vs_{other}")
        if d is None:
            out.append({"goal": f"{best['row']} > {other}", "met": None, "why": f"no {other} row",
                        "left_out": left_out})  # fmt: skip
            continue
        out.append({"goal": f"{best['row']} > {other}", "row": best["row"], "against": other, "paired": d,
                    "met": d["ci95"][0] > 0, "rule": "met when the 95 % interval's low end is above 0",
                    "left_out": left_out})  # fmt: skip
    gepa = by_name.get("gepa")
    if gepa is None:
        return [
            *out,
            {"goal": f"{best['row']} ≥ gepa", "met": None, "why": "no gepa row", "left_out": left_out},
        ]
    out.append({"goal": f"{best['row']} ≥ gepa", "row": best["row"], "against": "gepa",
                "paired": best.get("vs_gepa"), "means": [best["mean"], gepa["mean"]],
                "met": best["mean"] >= gepa["mean"], "rule": "met when the mean over seeds is not below gepa's",
                "left_out": left_out})  # fmt: skip
    return out


# --------------------------------------------------------------------------- output


def fmt_diff(d: dict[str, Any] | None) -> str | None:
    return None if not d else f"{d['diff']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"


def fmt_seeds(t: dict[str, Any], key: str) -> str:
    if t["fixed"]:
        return f"{t[key][0]:.4g} (fixed)"
    return " / ".join("—" if x is None else f"{x:.4g}" for x in t[key])


def fmt_short(a: dict[str, Any] | None) -> str | None:
    """A row's short-answer share, with the seeds pooled when some seed's answers are missing."""
    if not a:
        return None
    partial = f" (seeds {', '.join(map(str, a['seeds']))})" if a.get("missing_seeds") else ""
    return f"{a['short']:.1f} %{partial}"


def fmt_words(n: float) -> str:
    return f"{n:g} word" + ("" if n == 1 else "s")


def degenerate_note(doc: dict[str, Any]) -> list[str]:
    """The computed note under the table: which rows answer mostly with a bare word, and why their
    accuracy says nothing about instruction following."""
    bad = doc["degenerate"]
    rule = f"more than {DEGENERATE_SHARE:g} % of its test answers at ≤ {SHORT_WORDS} words"
    if not bad:
        return [f"Degenerate answers: none (no row has {rule})."]
    rows = "; ".join(f"**{b['row']}** ({b['short']:.1f} % of {b['n']} answers ≤ {SHORT_WORDS} words, median "
                     f"{fmt_words(b['median_words'])})" for b in bad)  # fmt: skip
    return [f"**Degenerate answers** ({rule}): {rows}. Their accuracy must not be read as instruction "
            "following: IFBench's checkers pass a bare word on many constraint kinds (every n-th word in "
            "a language, one word a line, sentence-type ratios with no sentences), so a row that answers "
            "\"Yes\" to everything scores without following anything."]  # fmt: skip


def goals_choice(doc: dict[str, Any]) -> str:
    """The Goals block's line on how its best promptopt row was chosen and which rows were left out."""
    left = [b for b in doc["degenerate"] if b["group"] == "promptopt"]
    why = ", ".join(f"{b['row']} ({b['short']:.1f} % short answers)" for b in left)
    rule = f"more than {DEGENERATE_SHARE:g} % of answers ≤ {SHORT_WORDS} words"
    line = "- Best promptopt row: the highest test mean among the non-degenerate rows; " + (
        f"left out as degenerate ({rule}, accuracy not instruction following): {why}" if left
        else f"none left out (no promptopt row has {rule})"
    )  # fmt: skip
    unknown = [t["row"] for t in doc["table"] if t["group"] == "promptopt" and t["answers"] is None]
    if unknown:
        line += f"; answer lengths not here, so not checked: {', '.join(unknown)}"
    return line + "."


def one_line(text: str, limit: int = FOUND_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def plot(table: list[dict[str, Any]], path: Path) -> str:
    """Left: each row's mean (bar) and seeds (points); right: the paired difference vs ``none`` with its
    95 % interval."""
    fig = figure(11, 4.2)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    xs = list(range(len(table)))
    names = [t["row"] for t in table]
    left.bar(xs, [t["mean"] or 0.0 for t in table], color="#9ecae1")
    for x, t in zip(xs, table, strict=True):
        left.scatter([x] * len(t["accuracy"]), t["accuracy"], color="#08519c", s=14, zorder=3)
    left.set_xticks(xs, names, rotation=30, ha="right")
    left.set_ylabel("test accuracy (instruction-level strict, %)")
    left.set_title("mean over seeds (bar) and per seed (points)")
    diffs = [(x, t["vs_none"]) for x, t in zip(xs, table, strict=True) if t.get("vs_none")]
    for x, d in diffs:
        right.errorbar([x], [d["diff"]], yerr=[[d["diff"] - d["ci95"][0]], [d["ci95"][1] - d["diff"]]],
                       fmt="o", color="#08519c", capsize=4)  # fmt: skip
    right.axhline(0.0, color="grey", lw=0.8)
    right.set_xticks(xs, names, rotation=30, ha="right")
    right.set_xlim(-0.5, len(xs) - 0.5)
    right.set_ylabel("− none (points)")
    right.set_title("paired difference vs none, pooled, 95 % bootstrap CI")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return str(path)


def markdown(doc: dict[str, Any], png: str | None) -> str:
    m, sizes = doc["machine"], doc["sizes"]
    md = ["# IFBench: every method on the same held-out test prompts (issue 21)", "",
          f"{doc['date']} UTC · commit {doc['commit']} · {m['cpus']} CPUs {m['machine']}, Python {m['python']} "
          f"(load {m['loadavg']})", ""]  # fmt: skip
    md += ["Sources:", ""]
    for kind, s in doc["sources"].items():
        if s is None:
            md.append(f"- {kind}: **missing** ({doc['missing'][kind]})")
            continue
        busy = " · *busy*" if s["facts"].get("busy") else ""
        md.append(f"- {kind}: {', '.join(s['files'])} · {s['facts'].get('date_utc') or s['facts'].get('date')} · "
                  f"commit {s['facts'].get('commit')}{busy}")  # fmt: skip
    models = "; ".join(f"{k} `{v}`" for k, v in doc["models"].items()) or "—"
    versions = doc["peer_versions"] or "— (no peers source)"
    md += ["", f"Models: {models}", "",
           f"Sizes: {sizes['train']} train / {sizes['val']} val / {sizes['test']} test prompts, answers ≤ "
           f"{sizes['answer_tokens']} tokens, temperature 0; budget {sizes['budget']} metric calls per search.",
           "", f"Peer versions: {versions}", ""]  # fmt: skip
    for w in doc["warnings"]:
        md += [f"**Warning:** {w}", ""]
    md += ["Test accuracy = mean ifbench value ×100 (instruction-level strict); prompt-level = share of "
           "prompts with every constraint followed. Differences in points, paired over (seed, test "
           "example) pairs pooled over seeds (a fixed row pairs with every seed), 95 % bootstrap interval. "
           f"Short answers = share of test answers of at most {SHORT_WORDS} words (whitespace split), median "
           "words = median word count per answer, both pooled over seeds (— where the answers are not here: "
           "run directories are git-ignored).", ""]  # fmt: skip
    head = ["row", "source", "accuracy per seed", "mean", "prompt-level mean", "short answers", "median words",
            "metric calls per seed", "− none (95 % CI)", "− handwritten (95 % CI)", "− gepa (95 % CI)"]  # fmt: skip
    rows = [[t["row"], t["source"], fmt_seeds(t, "accuracy"), t["mean"], t["prompt_level_mean"],
             fmt_short(t["answers"]), t["answers"]["median_words"] if t["answers"] else None,
             None if t["fixed"] else fmt_seeds(t, "metric_calls"),
             *(fmt_diff(t.get(f"vs_{o}")) for o in AGAINST)] for t in doc["table"]]  # fmt: skip
    md += md_table(head, rows)
    md += ["", *degenerate_note(doc)]
    for t in doc["table"]:
        if t["answers"] and t["answers"].get("from"):
            md += ["", f"Answer lengths of **{t['row']}** from {t['answers']['from']}."]
    md += ["", "## Goals", "", goals_choice(doc)]
    for g in doc["goals"]:
        verdict = {True: "**met**", False: "**not met**", None: "n/a"}[g["met"]]
        if "against" not in g:
            md.append(f"- {g['goal']}: {verdict} ({g['why']})")
            continue
        d = fmt_diff(g["paired"]) or "no pairs"
        extra = f"; means {g['means'][0]} vs {g['means'][1]}" if "means" in g else ""
        md.append(f"- {g['goal']}: {verdict} — paired {d}{extra} ({g['rule']}; best promptopt row chosen by its "
                  "test mean, so optimistic)")  # fmt: skip
    md += ["", "## Found prompts", ""]
    for t in doc["table"]:
        for seed, text in zip(t["seeds"], t["found"], strict=True):
            label = "fixed" if seed is None else f"seed {seed}"
            shown = f"`{one_line(text).replace('`', chr(39))}`" if text.strip() else "(no system prompt)"
            md.append(f"- **{t['row']}** {label}: {shown}")
    if png:
        md += ["", f"![mean per row and difference vs none]({os.path.basename(png)})"]
    md += ["", f"Command: `{doc['command']}`"]
    return "\n".join(md) + "\n"


# --------------------------------------------------------------------------- main


def parse_reflect(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``TAG:METHOD=ROW,METHOD=ROW`` (``ROW`` ``-``: leave the method out) → the reflect mapping."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
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


def build(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    """Read, check and summarize every source (nothing written): the document and the rows."""
    results = Path(args.results_dir)
    wanted: list[tuple[str, str, tuple[Any, ...]]] = [("fixed", f"fixed ({args.fixed})", (args.fixed,))]
    wanted += [("reflect", f"reflect ({tag})", (tag, m)) for tag, m in args.reflect_map.items()]
    if args.peers:
        wanted.append(("peers", f"peers ({args.peers})", (args.peers,)))
    if args.rewriter:
        wanted.append(("rewriter", f"rewriter ({args.rewriter})", (args.rewriter,)))
    sources: list[Source] = []
    found: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for kind, label, extra in wanted:
        s = LOADERS[kind](results, *extra)
        if s is None:
            missing[label] = "its result files are not there yet"
            found[label] = None
            note(f"{BENCH}: {label}: missing, left out")
        else:
            sources.append(s)
            found[label] = {"files": s.files, "facts": s.facts, "sizes": s.sizes}
    if not any(s.rows for s in sources):
        raise TableError(f"no rows: none of the sources is in {results}")
    ids = align(sources)
    sizes = check_sizes(sources)
    warnings = check_none(sources) + check_scorer(sources)
    none_words(sources)
    rows = [row for s in sources for row in s.rows]
    names = [row.name for row in rows]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two sources give a row {dup!r}: name one of them with --reflect")
    order = {n: k for k, n in enumerate((*FIXED_ROWS, *PEER_ROWS))}
    rows.sort(key=lambda row: (GROUPS.index(row.group), order.get(row.name, len(order))))  # stable otherwise
    table = summarize(rows)
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
        "sizes": sizes,
        "peer_versions": by_kind["peers"].facts.get("versions") if "peers" in by_kind else None,
        "warnings": warnings,
        "test_ids": ids,
        "table": table,
    }
    doc["degenerate"] = degenerate_rows(table)
    doc["goals"] = goals(table)
    return doc, rows


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", default=RESULTS_DIR, help="where the sources are and the table goes")
    ap.add_argument("--out", default="ifbench", help="the table's file stem: <out>.json, .md, .png")
    ap.add_argument(
        "--fixed", default="reflect", help="ifbench_fixed-TAG.json (bench/ifbench_fixed.py --tag)"
    )
    ap.add_argument("--reflect", action="append", default=None, metavar="TAG:METHOD=ROW[,METHOD=ROW]",
                    help="a reflect-TAG.cells.jsonl and its rows (repeatable; replaces the default "
                         + " ".join(f"{t}:{','.join(f'{a}={b}' for a, b in m.items())}" for t, m in REFLECT.items())
                         + "); other methods found keep their own name, ROW - leaves one out")  # fmt: skip
    ap.add_argument("--peers", default="ifbench", help="ifbench_peers-TAG.* ('' for none)")
    ap.add_argument("--rewriter", default="", help="ifbench_rewriter-TAG.* (off by default)")
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
