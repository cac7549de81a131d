"""The IFBench table's sources: what each result file contributes, read and checked for one file at a time.

Why a module of its own: every source kind (``fixed``, ``reflect``, ``peers``, ``rewriter``) is written
by another bench in its own format, and the table's claims rest on reading each exactly (its example
order, its sizes, whether it is a smoke run). Keeping the readers apart from the cross-source checks
(:mod:`ifbench_table_checks`) and from the figures lets a new source kind or a second target's files be
added without touching the arithmetic. A loader returns ``None`` when its files are not there (the
table names it in one line); a torn or smoke file is a :class:`TableError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import note
from ifbench_lengths import counts, fixed_id_words, fixed_words, id_counts, peer_texts, read_cell_answers

from promptopt.errors import DataError
from promptopt.journal import read_journal

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
    #: per seed: the same word counts by example id (a failed request left out; None: not here), which
    #: pair each answer's length with its value (the gain split by answer length); ``words`` keeps none
    #: of the order (a reflect cell's come in its answer log's order)
    words_by_id: dict[Seed, dict[str, int] | None] = field(default_factory=dict)
    words_from: str | None = None  # where the words came from, when not from the row's own source
    #: a reflect row named after its method because no mapping named it: the file tag that qualifies the
    #: name if another source gives a row of the same name (None: the name was given, it is kept)
    unnamed_from: str | None = None

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
        words_by_id: dict[str, int] | None = None,
    ) -> None:
        if seed in self.values:
            raise TableError(f"{self.source}: row {self.name!r} has seed {seed} twice")
        self.values[seed], self.metric_calls[seed], self.found[seed] = values, metric_calls, found
        self.words[seed], self.words_by_id[seed] = words, words_by_id


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
    empty_words_by_id: dict[str, int] | None = None  # the same cell's, by example id
    #: the rewriter's own constraint-preservation figures (``by rule`` / ``by judge``), for its goal
    preservation: dict[str, Any] = field(default_factory=dict)


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


def refuse_smoke(doc: dict[str, Any], name: str) -> None:
    if doc.get("smoke") or doc.get("standin"):
        raise TableError(f"{name} is a smoke run (tiny sizes or a stand-in model), not a result")


def found_text(found: Any) -> str:
    """A peer's result as text: its system prompt or instruction, and how many demos it adds."""
    if not isinstance(found, dict):
        return "" if found is None else str(found)
    text = str(found.get("system_prompt") or found.get("instruction") or "")
    return text + (f" [+{found['demos']} demos]" if found.get("demos") else "")


# --------------------------------------------------------------------------- the loaders


def add_stored(row: Row, seed: Seed, stored: dict[str, Any], ids: list[str] | None, where: str) -> list[str]:
    """Add one stored evaluation (``bench/ifbench_fixed.evaluation_fields`` with its ``system_prompt``,
    ``metric_calls`` when searched) to ``row`` as ``seed``; the test ids of the first one read, which every
    later one must share (``ids``), else one line naming ``where``."""
    got = [str(i) for i in stored["example_ids"]]
    if ids is not None and got != ids:
        raise TableError(f"{where} is on other test ids than the first row")
    row.add(seed, [value(x) for x in stored["per_example"]], stored.get("metric_calls"),
            stored.get("system_prompt", ""), fixed_words(stored), fixed_id_words(stored))  # fmt: skip
    return got if ids is None else ids


def load_fixed(results: Path, tag: str) -> Source | None:
    path = results / f"ifbench_fixed-{tag}.json"
    if not path.exists():
        return None
    doc = read_json(path)
    rows: list[Row] = []
    ids: list[str] | None = None
    for name, stored in doc.get("rows", {}).items():
        rows.append(Row(name, "fixed", path.name))
        ids = add_stored(rows[-1], None, stored, ids, f"{path.name}: row {name!r}")
    facts = {k: doc.get(k) for k in ("date_utc", "commit", "busy", "scorer", "position", "command")}
    return Source("fixed", [path.name], rows, ids, dict(doc.get("sizes") or {}), facts)


def load_reflect(results: Path, tag: str, mapping: dict[str, str]) -> Source | None:
    """Every cell of ``reflect-<tag>.cells.jsonl``, whatever its method (bench/reflect.py's ``METHODS``:
    ``opro``, ``reflective``, ``demos``, ``reflective+demos``), one row per method; ``mapping`` renames
    (``-``: leaves out), a method it does not name keeps its own name (see :attr:`Row.unnamed_from`)."""
    path = results / f"reflect-{tag}.cells.jsonl"
    if not path.exists():
        return None
    summary_path = results / f"reflect-{tag}.json"
    summary = read_json(summary_path) if summary_path.exists() else {}
    repo = results.parent.parent
    rows: dict[str, Row] = {}
    empty, id_sets = [], []
    empty_words: list[int] | None = None
    empty_words_by_id: dict[str, int] | None = None
    for cell in read_journal(path):
        method, seed = cell["method"], cell["seed"]
        name = mapping.get(method, method)
        if name == "-":  # mapped away
            continue
        row = rows.setdefault(name, Row(name, "promptopt", path.name))
        if method not in mapping:
            row.unnamed_from = tag
        calls = cell.get("metric_calls")
        found = cell.get("instruction") or ""
        if cell.get("demos"):
            found += f" [+{cell['demos']} demos]"
        answers = read_cell_answers(repo, cell)  # None: the (git-ignored) run directory is not here
        row.add(seed, [value(x) for x in cell["per_example"]["best"]], calls.get("used") if calls else None,
                found, answers.best if answers else None, answers.best_ids if answers else None)  # fmt: skip
        label = f"{method} seed {seed}"
        if "empty" in cell["per_example"]:
            empty.append((label, [value(x) for x in cell["per_example"]["empty"]]))
        if answers is not None:
            id_sets.append((label, answers.test_ids))
            if not empty_words and answers.empty:
                empty_words, empty_words_by_id = answers.empty, answers.empty_ids
    sizes = dict(summary.get("sizes") or {})
    if "budget_metric_calls" in sizes:
        sizes["budget"] = sizes.pop("budget_metric_calls")
    facts = {k: summary.get(k) for k in ("busy", "commit", "models", "versions", "command")}
    facts["date_utc"] = (summary.get("machine") or {}).get("date_utc")
    files = [path.name] + ([summary_path.name] if summary else [])
    if not summary:
        note(f"{BENCH}: {summary_path.name} is missing: sizes of reflect-{tag} unchecked")
    return Source("reflect", files, list(rows.values()), None, sizes, facts, empty, id_sets, empty_words,
                  empty_words_by_id)  # fmt: skip


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
        texts = peer_texts(results, tag, method, seed)
        row.add(seed, values, cell.get("metric_calls"), found_text(cell.get("found")),
                counts(texts.values()) if texts else None, id_counts(texts))  # fmt: skip
    setup = doc.get("setup") or {}
    sizes = {k: setup.get(k) for k in ("train", "val", "answer_tokens", "budget")}
    sizes["test"] = len(ids)
    facts = {k: doc.get(k) for k in ("date", "commit", "note", "versions")}
    facts["models"] = {"target": f"{setup.get('task_model')} @ {setup.get('task_base')}",
                       "reflection": f"{setup.get('reflection_model')} @ {setup.get('reflection_base')}"}  # fmt: skip
    return Source("peers", [path.name, examples.name], list(rows.values()), ids, sizes, facts)


def load_rewriter(results: Path, tag: str) -> Source | None:
    """BPO's rewriter rows (``--rewriter TAG``), fixed rows like ``none``, and the rewriter's own
    constraint-preservation figures (``preservation_rule`` / ``preservation_judge``) for its goal."""
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
            row = Row(name + (" (original kept)" if doc.get("keep_original") else ""), "rewriter", path.name)
            system = doc.get("instruction") if "instruction" in method else None  # the plain row has none
            found = f"{system or '(no system prompt)'} [rewriter: {doc.get('note') or doc.get('rewriter')}]"
            row.add(None, by_id(per_method[method], ids, f"{examples.name} {method}"), None, found)
            rows.append(row)
    split = doc.get("split") or {}
    sizes = {"val": split.get("val"), "test": len(ids), "answer_tokens": doc.get("answer_tokens")}
    facts = {k: doc.get(k) for k in ("date", "commit", "target", "rewriter")}
    preservation = {"rule": doc.get("preservation_rule"), "judge": doc.get("preservation_judge"),
                    "guard": doc.get("guard"), "keep_original": doc.get("keep_original")}  # fmt: skip
    return Source("rewriter", [path.name, examples.name], rows, ids, sizes, facts,
                  preservation=preservation)  # fmt: skip


def load_retest(results: Path, tag: str) -> Source | None:
    """``bench/ifbench_retest.py``'s rows: found prompts (and the fixed ones) answered again on a larger
    test set by one harness; each row keeps its group (``fixed``, ``promptopt``, ``peer``) and seeds."""
    path = results / f"ifbench_retest-{tag}.json"
    if not path.exists():
        return None
    doc = read_json(path)
    rows: list[Row] = []
    ids: list[str] | None = None
    for name, entry in doc.get("rows", {}).items():
        rows.append(Row(name, str(entry["group"]), path.name))
        for seed, stored in entry["seeds"].items():
            where = f"{path.name}: row {name!r} seed {seed}"
            ids = add_stored(rows[-1], None if seed == "fixed" else int(seed), stored, ids, where)
    facts = {k: doc.get(k) for k in ("date_utc", "commit", "busy", "scorer", "position", "command")}
    return Source("retest", [path.name], rows, ids, dict(doc.get("sizes") or {}), facts)


#: source kind → how it is read (``None``: its files are not there yet)
LOADERS: dict[str, Callable[..., Source | None]] = {
    "fixed": load_fixed,
    "reflect": load_reflect,
    "peers": load_peers,
    "rewriter": load_rewriter,
    "retest": load_retest,
}
#: source kind → the file names it reads for a tag (the table's line for a missing source names them)
FILES: dict[str, Callable[[str], list[str]]] = {
    "fixed": lambda tag: [f"ifbench_fixed-{tag}.json"],
    "reflect": lambda tag: [f"reflect-{tag}.cells.jsonl"],
    "peers": lambda tag: [f"ifbench_peers-{tag}.json", f"ifbench_peers-{tag}.examples.jsonl"],
    "rewriter": lambda tag: [f"ifbench_rewriter-{tag}.json", f"ifbench_rewriter-{tag}.examples.jsonl"],
    "retest": lambda tag: [f"ifbench_retest-{tag}.json"],
}
