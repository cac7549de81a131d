"""The IFBench table's test answers re-judged with the content gate: which rows carry out the requests?

Why: IFBench's checkers test the form of an answer, and a bare "Yes" passes many of them vacuously,
so two rows of ``bench/results/ifbench.md`` (``demos``, ``mipro``) gained by making the 0.5B target
answer "Yes" to everything. The length guard of the table (``ifbench_lengths``) flags such rows; this
bench measures them with promptopt's own content gate, the ``judge:responsive`` metric
(:class:`~promptopt.evaluators.metrics.responsive.ResponsiveMetric`: a yes/no judge of "does the
response carry out the request"), and recomputes every row as ``all:ifbench&judge:responsive`` would
have scored it: the ifbench value times the verdict.

What it reads (nothing of its own): the table's rows, values and checks come from
``bench/ifbench_table.py``'s ``build`` (the same sources, flags and refusals); the answer texts from
``ifbench_lengths``' readers (the reflect cells' run directories, the peers' ``test.jsonl``). The
fixed rows store word counts, not texts: ``none`` takes a reflect cell's no-instruction answers (the
same requests at temperature 0; the first cell whose values equal the fixed row's), and the other
fixed rows (``handwritten``) are asked again through the product's task and request cache exactly
as ``bench/ifbench_fixed.py`` asked them (free when cached; a cache miss is a real scorer call,
checked against the stored word counts and values). ``--skip-fixed-rerun`` leaves them out instead.
Rewriter rows store no answers and are left out.

Per row, pooled over seeds: answers (failed requests are none), the share the judge says do **not**
carry out the request (a blank answer is "no" without a call; an unreadable verdict counts as
carrying out, the metric's rule), plain and gated accuracy (instruction-level, the table's values ×
the verdict) and gated − ``none`` with a paired bootstrap 95 % interval (as the table pairs: a fixed
row with every seed). A seed whose answers are not all here is left out of both accuracies.

Verdicts are journalled in ``bench/results/ifbench_gate_runs/`` (git-ignored: the answers hold the
test prompts), one file per judge model, keyed by the judge request (so identical (prompt, answer)
pairs, such as the ``none`` answers every cell shares, are judged once, and a rerun judges only what
is missing). Prints the number of judge calls first. Writes ``bench/results/ifbench_gate.{json,md}``::

    OPENAI_API_KEY=EMPTY python bench/ifbench_gate.py --judge-model openai:qwen15@http://127.0.0.1:8015/v1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ifbench_table as table
from _common import RESULTS_DIR, git_commit, machine, md_table, model_slug, note, r, run_main
from ifbench_lengths import peer_texts, read_cell_texts

from promptopt import __version__
from promptopt.errors import ConfigError, DataError, PromptoptError
from promptopt.evaluators.metrics.base import MetricItem, Score
from promptopt.evaluators.metrics.responsive import (
    DEFAULT_RESPONSIVE_MAX_TOKENS,
    EMPTY_ANSWER,
    ResponsiveMetric,
)
from promptopt.journal import Journal, read_journal
from promptopt.llm.base import LLM, canonical_json, run_sync
from promptopt.runs import atomic_write_json, atomic_write_text

BENCH = "ifbench_gate"
WORK = "ifbench_gate_runs"
GATED_SPEC = "all:ifbench&judge:responsive"
#: judge requests per batch; each batch's verdicts are journalled before the next is asked
CHUNK = 64

Seed = int | None
#: per seed: the answer texts in the table's test-id order (None: no answer for that example),
#: or None when the seed's answers are not here
Texts = dict[Seed, list[str | None] | None]


class GateError(DataError):
    """The gate cannot be computed (a judge request failed, a test id is not an IFBench prompt)."""


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """The judge's verdict on one (prompt, answer) pair: ``value`` 1.0 carries out, 0.0 does not;
    ``label`` yes / no / unreadable (counted as carrying out) / blank (no call made)."""

    value: float
    label: str


def verdict_of(score: Score) -> Verdict:
    """A ResponsiveMetric score as a verdict (the metric's own rules: blank → 0, unreadable → 1)."""
    if score.feedback == EMPTY_ANSWER:
        return Verdict(0.0, "blank")
    if score.prediction in ("yes", "no"):
        return Verdict(score.value, score.prediction)
    return Verdict(score.value, "unreadable")


@dataclass(frozen=True)
class Pair:
    """One (test example, answer) pair to judge; ``key``: a hash of the judge request it makes."""

    key: str
    example_id: str
    answer: str


def pair_key(metric: ResponsiveMetric, example: Any, answer: str) -> str:
    """The judge request's identity (prompt template, question, answer, sampling): equal pairs share it."""
    blob = canonical_json(metric.request(example, answer).canonical())
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def load_verdicts(path: Path) -> dict[str, Verdict]:
    """The verdicts a work file holds (none when it is not there; the last one of a key wins)."""
    return {
        str(rec["key"]): Verdict(float(rec["value"]), str(rec["verdict"]))
        for rec in read_journal(path)
        if "key" in rec and "value" in rec
    }


def judge_missing(
    metric: ResponsiveMetric,
    pairs: Sequence[Pair],
    examples: Mapping[str, Any],
    journal: Journal,
    judge_spec: str,
    chunk: int = CHUNK,
) -> tuple[dict[str, Verdict], list[str]]:
    """Judge ``pairs`` in batches of ``chunk``, journalling each batch's verdicts before the next is
    asked; the verdicts and the errors of the requests that failed (not journalled: a rerun asks
    them again)."""
    got: dict[str, Verdict] = {}
    errors: list[str] = []
    for start in range(0, len(pairs), chunk):
        batch = pairs[start : start + chunk]
        items = [MetricItem(examples[p.example_id], p.answer) for p in batch]
        for p, score in zip(batch, run_sync(metric.ascore(items)), strict=True):
            if score.error is not None:
                errors.append(f"{p.example_id}: {score.error}")
                continue
            v = verdict_of(score)
            journal.append({"key": p.key, "id": p.example_id, "verdict": v.label, "value": v.value,
                            "judge": judge_spec, "feedback": score.feedback})  # fmt: skip
            got[p.key] = v
        note(f"{BENCH}: judged {min(start + chunk, len(pairs))} of {len(pairs)}")
    return got, errors


# --------------------------------------------------------------------------- answer texts


@dataclass
class Context:
    """What the text finders need: where the sources are, the table's test ids and flags."""

    results: Path
    ids: list[str]
    reflect_map: dict[str, dict[str, str]]
    peers: str
    fixed_tag: str
    notices: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: fixed rows whose answers must be asked again (filled by :func:`fixed_texts`)
    rerun: list[str] = field(default_factory=list)

    @property
    def repo(self) -> Path:
        return self.results.parent.parent  # run directories are relative to the repository root


def aligned(texts: Mapping[str, str | None] | None, ids: Sequence[str]) -> list[str | None] | None:
    """Texts by example id as a list in ``ids`` order (None where an id has none)."""
    return None if not texts else [texts.get(i) for i in ids]


def reflect_cells(ctx: Context) -> list[tuple[str, str, dict[str, Any]]]:
    """(cells file name, row name, cell) of every reflect cell the table shows, in file order."""
    out = []
    for tag, mapping in ctx.reflect_map.items():
        path = ctx.results / f"reflect-{tag}.cells.jsonl"
        if not path.exists():
            continue
        for cell in read_journal(path):
            name = mapping.get(cell["method"], cell["method"])
            if name != "-":
                out.append((path.name, name, cell))
    return out


def reflect_texts(ctx: Context, row: table.Row) -> Texts:
    """A reflect row's answers: each cell's reported instruction with its demos, from its run directory."""
    out: Texts = {}
    for source, name, cell in reflect_cells(ctx):
        if source == row.source and name == row.name:
            got = read_cell_texts(ctx.repo, cell)
            out[cell["seed"]] = aligned(got.best if got else None, ctx.ids)
    return out


def peer_row_texts(ctx: Context, row: table.Row) -> Texts:
    """A peers row's answers: each seed's ``test.jsonl`` (bench/ifbench_peers.py's work folder)."""
    return {seed: aligned(peer_texts(ctx.results, ctx.peers, row.name, seed), ctx.ids) for seed in row.values}


def differing(a: Sequence[float], b: Sequence[float]) -> int:
    """How many positions of two value lists differ (a missing position differs)."""
    return sum(1 for x, y in zip(a, b, strict=False) if x != y) + abs(len(a) - len(b))


def fixed_texts(ctx: Context, row: table.Row) -> Texts:
    """``none``: a reflect cell's no-instruction answers (the same requests at temperature 0), the first
    cell whose values equal the fixed row's; any other fixed row (or ``none`` without such a cell) is
    put on ``ctx.rerun``, its answers asked again later (:func:`rerun_fixed`)."""
    if row.name == "none":
        picked = None
        for source, name, cell in reflect_cells(ctx):
            got = read_cell_texts(ctx.repo, cell)
            if got is None or not got.empty:
                continue
            empty = [table.value(x) for x in (cell.get("per_example") or {}).get("empty") or []]
            label = f"{source}: {name} seed {cell['seed']}"
            if empty == row.values[None]:
                ctx.notices.append(f"none: the no-instruction answers of {label}")
                return {None: aligned(got.empty, ctx.ids)}
            picked = picked or (label, got.empty, differing(empty, row.values[None]))
        if picked is not None:
            ctx.warnings.append(f"none: no reflect cell's no-instruction values equal the fixed row's; the "
                                f"answers of {picked[0]} are judged ({picked[2]} values differ)")  # fmt: skip
            return {None: aligned(picked[1], ctx.ids)}
    ctx.rerun.append(row.name)
    return {None: None}


def no_texts(ctx: Context, row: table.Row) -> Texts:
    """A row whose source stores no answers (the rewriter's): left out."""
    ctx.notices.append(f"{row.name}: its source ({row.source}) stores no answer texts: left out")
    return dict.fromkeys(row.values)


#: the table's row group → where its answer texts are found
FINDERS: dict[str, Callable[[Context, table.Row], Texts]] = {
    "fixed": fixed_texts,
    "promptopt": reflect_texts,
    "peer": peer_row_texts,
    "rewriter": no_texts,
}


def rerun_fixed(
    ctx: Context, rows: Sequence[table.Row], scorer: LLM | str | None, cache: str | None
) -> dict[str, list[str | None]]:
    """The fixed rows' answers asked again as ``bench/ifbench_fixed.py`` asked them (the fixed file's
    scorer, sizes and position, the product's task and request cache); checked against the stored
    values and word counts. Returns row name → answers (per the ``None`` seed)."""
    from promptopt.llm.factory import build_llm
    from promptopt.tasks.ifbench.task import create

    path = ctx.results / f"ifbench_fixed-{ctx.fixed_tag}.json"
    doc = table.read_json(path)
    sizes = doc.get("sizes") or {}
    spec = scorer if scorer is not None else doc.get("scorer")
    if not spec:
        raise ConfigError(f"{path.name} names no scorer: give --scorer")
    llm = build_llm(spec, **({"cache": cache} if cache else {})) if isinstance(spec, str) else spec
    try:
        task = create(scorer=llm, position=doc.get("position") or "system", max_tokens=sizes["answer_tokens"],
                      train=sizes["train"], val=sizes["val"], test=sizes["test"], keep_answers=False)  # fmt: skip
        evaluations = run_sync(
            task.aevaluate("test", [doc["rows"][row.name]["system_prompt"] for row in rows])
        )
    finally:
        if isinstance(spec, str):
            run_sync(llm.aclose())
    out: dict[str, list[str | None]] = {}
    for row, ev in zip(rows, evaluations, strict=True):
        stored = doc["rows"][row.name]
        if [rec.example_id for rec in ev.records] != list(stored["example_ids"]):
            raise GateError(f"{path.name}: the re-created {row.name} answers are on other test prompts")
        by_id = {rec.example_id: rec for rec in ev.records}
        out[row.name] = [by_id[i].response if by_id[i].correct is not None else None for i in ctx.ids]
        cached = sum(1 for rec in ev.records if rec.cached)
        ctx.notices.append(f"{row.name}: answers asked again through the request cache "
                           f"({cached} of {len(ev.records)} cached)")  # fmt: skip
        differ = recreated_differ(ev.records, stored)
        if differ:
            ctx.warnings.append(f"{row.name}: {differ} of {len(ev.records)} re-created answers differ from the "
                                "stored ones (value or word count): cache misses answered differently; their gated values mix runs")  # fmt: skip
    return out


def recreated_differ(records: Sequence[Any], stored: Mapping[str, Any]) -> int:
    """How many re-created answers differ from what ``bench/ifbench_fixed.py`` stored: the value, and
    the word count where the file has them (its ``words``)."""
    from ifbench_lengths import words

    values = [table.value(v) for v in stored["per_example"]]
    counts = stored.get("words") or [None] * len(values)
    return sum(1 for rec, v, n in zip(records, values, counts, strict=True)
               if rec.score != v or (n is not None and n != words(rec.response)))  # fmt: skip


# --------------------------------------------------------------------------- the gate


@dataclass
class Gated:
    """One row's figures: per seed judged, the plain and the gated values (the table's id order)."""

    row: table.Row
    plain: dict[Seed, list[float]] = field(default_factory=dict)
    gated: dict[Seed, list[float]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)  # the verdict of every answer, pooled
    missing: list[Seed] = field(default_factory=list)  # seeds left out (answers not all here)


def seed_pairs(
    metric: ResponsiveMetric, examples: Mapping[str, Any], ids: Sequence[str], texts: Sequence[str | None] | None,
    values: Sequence[float],
) -> list[Pair | None] | None:  # fmt: skip
    """The pairs of one seed in id order (None: no answer, a failed request with value 0); None when
    the seed cannot be gated (its answers are not here, or an example with a value has no answer)."""
    if texts is None or any(t is None and v > 0 for t, v in zip(texts, values, strict=True)):
        return None
    out: list[Pair | None] = []
    for i, t in zip(ids, texts, strict=True):
        if i not in examples:
            raise GateError(f"test id {i} is not one of IFBench's prompts (another IFBench file?)")
        out.append(None if t is None else Pair(pair_key(metric, examples[i], t), i, t))
    return out


def gate_row(
    row: table.Row, pairs: Mapping[Seed, list[Pair | None] | None], verdicts: Mapping[str, Verdict]
) -> Gated:
    """Value × verdict per example of every seed that has its pairs (a missing answer gates to 0)."""
    out = Gated(row)
    for seed, values in row.values.items():
        ps = pairs.get(seed)
        if ps is None:
            out.missing.append(seed)
            continue
        out.plain[seed] = list(values)
        out.gated[seed] = [
            0.0 if p is None else v * verdicts[p.key].value for p, v in zip(ps, values, strict=True)
        ]
        out.labels += [verdicts[p.key].label for p in ps if p is not None]
    return out


def as_row(g: Gated, which: str) -> table.Row:
    """A table Row holding the gated (or plain) values, so the table's pairing and bootstrap apply."""
    out = table.Row(g.row.name, g.row.group, g.row.source)
    out.values = dict(getattr(g, which))
    return out


def figures(g: Gated, none: Gated | None) -> dict[str, Any]:
    """A row's JSON figures (accuracies in points, mean over seeds like the table)."""
    seeds = sorted(g.gated, key=lambda s: -1 if s is None else s)
    plain = [table.accuracy(g.plain[s]) for s in seeds]
    gated = [table.accuracy(g.gated[s]) for s in seeds]
    n = len(g.labels)
    count = {label: g.labels.count(label) for label in ("yes", "no", "unreadable", "blank")}
    vs = None
    if none is not None and g.gated and none.gated and g is not none:
        vs = {"gated": table.paired(as_row(g, "gated"), as_row(none, "gated")),
              "plain": table.paired(as_row(g, "plain"), as_row(none, "plain"))}  # fmt: skip
    return {
        "row": g.row.name, "group": g.row.group, "source": g.row.source, "fixed": g.row.fixed,
        "seeds": seeds, "missing_seeds": g.missing, "answers": n, "verdicts": count,
        "not_carried_out": r(100.0 * (count["no"] + count["blank"]) / n, 1) if n else None,
        "plain": [r(a, 2) for a in plain], "plain_mean": r(table.mean(plain), 2),
        "gated": [r(a, 2) for a in gated], "gated_mean": r(table.mean(gated), 2),
        "gated_vs_none": vs and vs["gated"], "plain_vs_none": vs and vs["plain"],
    }  # fmt: skip


# --------------------------------------------------------------------------- output


def fmt_seeds(t: dict[str, Any], key: str) -> str:
    if not t[key]:
        return "—"
    mean = f"{t[f'{key}_mean']:.1f}"
    return f"{mean} (fixed)" if t["fixed"] else f"{mean} ({' / '.join(f'{a:.1f}' for a in t[key])})"


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    busy = " · *busy*" if doc["busy"] else ""
    md = ["# IFBench: the table's test answers through the content gate", "",
          f"{doc['date']} UTC · commit {doc['commit']} · {m['cpus']} CPUs {m['machine']}, Python {m['python']} "
          f"(load {m['loadavg']}){busy} · promptopt {doc['promptopt']}", "",
          f"Judge: `{doc['judge_model']}` through promptopt's `judge:responsive` metric (temperature 0, yes/no "
          f"\"does the response carry out the request\"); gated = `{GATED_SPEC}`: the ifbench value × the "
          f"verdict. Sources: {', '.join(doc['sources'])} (read through bench/ifbench_table.py; "
          f"{doc['test']} test prompts).", "",
          f"Judge requests: {doc['judge_calls']['asked']} asked in this run, {doc['judge_calls']['reused']} "
          f"verdicts from the work file, {doc['judge_calls']['distinct']} distinct (prompt, answer) pairs in all.",
          ""]  # fmt: skip
    for w in doc["warnings"]:
        md += [f"**Warning:** {w}", ""]
    md += ["Answers = test answers judged, pooled over seeds (failed requests are none). Not carried out = "
           "share the judge says do not carry out the request (a blank answer counts, an unreadable verdict "
           "does not: the metric's rule). Accuracy = mean ifbench value ×100 (instruction-level strict), mean "
           "over seeds (per seed in brackets), on the seeds judged. Gated − none: points, paired over (seed, "
           "test example) pairs pooled over seeds (a fixed row pairs with every seed), 95 % bootstrap "
           "interval over the test prompts (a prompt's seeds resampled together).", ""]  # fmt: skip
    head = ["row", "answers", "not carried out", "plain accuracy", "gated accuracy", "plain − none",
            "gated − none (95 % CI)"]  # fmt: skip
    rows = [[t["row"], t["answers"] or None,
             None if t["not_carried_out"] is None else f"{t['not_carried_out']:.1f} %",
             fmt_seeds(t, "plain"), fmt_seeds(t, "gated"),
             table.fmt_diff(t["plain_vs_none"]), table.fmt_diff(t["gated_vs_none"])] for t in doc["rows"]]  # fmt: skip
    md += md_table(head, rows)
    unreadable = [
        f"{t['row']} {t['verdicts']['unreadable']}" for t in doc["rows"] if t["verdicts"]["unreadable"]
    ]
    md += ["", "Unreadable verdicts (counted as carrying out): " + (", ".join(unreadable) or "none") + "."]
    partial = [f"{t['row']} (seeds {', '.join(map(str, t['missing_seeds']))})" for t in doc["rows"]
               if t["missing_seeds"] and t["seeds"]]  # fmt: skip
    if partial:
        md += ["", "Seeds left out (their answers are not all here): " + "; ".join(partial) + "."]
    if doc["left_out"]:
        md += ["", "Rows left out (no answers here): " + ", ".join(doc["left_out"]) + "."]
    if doc["notices"]:
        md += ["", "Where the answers came from:", "", *(f"- {n}" for n in doc["notices"])]
    md += ["", f"Command: `{doc['command']}`"]
    return "\n".join(md) + "\n"


# --------------------------------------------------------------------------- main


def parse(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judge-model", required=True, help="the judge's model spec (e.g. openai:qwen15@URL)")
    ap.add_argument(
        "--results-dir", default=RESULTS_DIR, help="where the table's sources are and the results go"
    )
    ap.add_argument("--out", default=BENCH, help="the results' file stem: <out>.json, .md")
    ap.add_argument("--fixed", default="reflect", help="ifbench_fixed-TAG.json (as bench/ifbench_table.py)")
    ap.add_argument("--reflect", action="append", default=None, metavar="TAG:METHOD=ROW[,METHOD=ROW]",
                    help="as bench/ifbench_table.py (default: its rows)")  # fmt: skip
    ap.add_argument("--peers", default="ifbench", help="ifbench_peers-TAG.* ('' for none)")
    ap.add_argument("--limit-rows", default=None, metavar="ROW[,ROW]",
                    help="judge only these rows (none is always judged: it is the intervals' baseline)")  # fmt: skip
    ap.add_argument("--scorer", default=None, help="the scorer spec for re-creating the fixed rows' answers "
                    "(default: the one the fixed file records)")  # fmt: skip
    ap.add_argument("--skip-fixed-rerun", action="store_true",
                    help="leave out the fixed rows whose answers must be asked again (handwritten)")  # fmt: skip
    ap.add_argument("--cache", default=None, help="request cache (default: promptopt's)")
    ap.add_argument("--estimate-only", action="store_true", help="print the number of judge calls and stop")
    ap.add_argument("--busy", action="store_true", help="mark the figures: the machine was busy")
    args = ap.parse_args(list(argv))
    args.argv = ["bench/ifbench_gate.py", *argv]
    args.reflect_map = table.parse_reflect(args.reflect) if args.reflect else table.REFLECT
    args.rewriter = ""
    return args


def pick_rows(rows: list[table.Row], limit: str | None) -> list[table.Row]:
    """The rows to judge: all, or ``--limit-rows`` and ``none``; an unknown name is an error."""
    if not limit:
        return rows
    wanted = {n.strip() for n in limit.split(",") if n.strip()} | {"none"}
    unknown = wanted - {row.name for row in rows} - {"none"}
    if unknown:
        raise ConfigError(f"--limit-rows: no row {', '.join(sorted(unknown))} in the table "
                          f"({', '.join(row.name for row in rows)})")  # fmt: skip
    return [row for row in rows if row.name in wanted]


def estimate(all_pairs: Mapping[str, Pair], done: Mapping[str, Verdict], rerun: Sequence[str], n: int) -> int:
    """Print how many judge calls this run makes (before any call); return that number."""
    todo = sum(1 for k, p in all_pairs.items() if k not in done and p.answer.strip())
    extra = f"; up to {n} more for each re-created fixed row ({', '.join(rerun)})" if rerun else ""
    note(f"{BENCH}: estimate: {todo} judge calls ({len(all_pairs)} distinct (prompt, answer) pairs, "
         f"{sum(1 for k in all_pairs if k in done)} already judged){extra}; cached requests cost nothing")  # fmt: skip
    if rerun:
        note(f"{BENCH}: estimate: {n * len(rerun)} scorer requests to re-create {', '.join(rerun)} "
             "(free when the request cache has them)")  # fmt: skip
    return todo


AllPairs = dict[str, dict[Seed, list[Pair | None] | None]]  # row name → seed → pairs


def distinct(pairs: AllPairs) -> dict[str, Pair]:
    """Every pair once, by key: identical (prompt, answer) pairs of several rows or seeds are one."""
    return {
        p.key: p for by_seed in pairs.values() for ps in by_seed.values() for p in ps or () if p is not None
    }


def add_fixed(
    ctx: Context, rows: Sequence[table.Row], pairs: AllPairs, pair_of: Callable[..., Any], args: argparse.Namespace,
    scorer_llm: LLM | None,
) -> None:  # fmt: skip
    """The pairs of the fixed rows on ``ctx.rerun``: their answers asked again, or (with
    ``--skip-fixed-rerun``, or when the scorer cannot answer) the rows left out with a notice."""
    if not ctx.rerun:
        return
    names = ", ".join(ctx.rerun)
    if args.skip_fixed_rerun:
        ctx.notices.append(f"{names}: the answers are not stored and --skip-fixed-rerun: left out")
        return
    try:
        got = rerun_fixed(
            ctx, [row for row in rows if row.name in ctx.rerun], scorer_llm or args.scorer, args.cache
        )
    except PromptoptError as exc:
        why = " ".join(str(exc).split())
        note(f"{BENCH}: cannot re-create {names} ({why}): left out")
        ctx.notices.append(f"{names}: the answers could not be asked again ({why}): left out")
        return
    for row in rows:
        if row.name in got:
            pairs[row.name] = {None: pair_of(got[row.name], row.values[None])}


def judge_todo(
    todo: Sequence[Pair], examples: Mapping[str, Any], path: Path, args: argparse.Namespace,
    judge_llm: LLM | None,
) -> dict[str, Verdict]:  # fmt: skip
    """Judge the pairs not judged yet into the work file ``path`` (the judge model and the file are
    opened only now); raise when some failed."""
    if not todo:
        return {}
    blank = sum(1 for p in todo if not p.answer.strip())
    note(f"{BENCH}: judging {len(todo) - blank} answers ({blank} blank: no call)")
    llm = judge_llm or _build_judge(args.judge_model, args.cache)
    journal = Journal(path, error=DataError)
    try:
        got, errors = judge_missing(ResponsiveMetric(llm), todo, examples, journal, args.judge_model)
    finally:
        journal.close()
        if judge_llm is None:
            run_sync(llm.aclose())
    if errors:
        raise GateError(f"{len(errors)} of {len(todo)} judge requests failed (first: {errors[0]}); "
                        "the verdicts of the others are kept: run again to judge only those")  # fmt: skip
    return got


def run(
    args: argparse.Namespace, *, judge_llm: LLM | None = None, scorer_llm: LLM | None = None
) -> dict[str, Any]:
    """Read the table, find the answers, judge what is missing, write the results (see the module
    docstring); ``judge_llm`` / ``scorer_llm``: models to use instead of the specs (tests)."""
    from promptopt.tasks.ifbench.data import example_of, load_ifbench_rows

    doc_table, all_rows = table.build(args)
    ids = doc_table["test_ids"]
    if not ids:
        raise GateError("no source records the test example ids: the answers cannot be paired with values")
    rows = pick_rows(all_rows, args.limit_rows)
    ctx = Context(Path(args.results_dir), list(ids), args.reflect_map, args.peers, args.fixed)
    texts = {row.name: FINDERS[row.group](ctx, row) for row in rows}
    examples = {ex.id: ex for ex in map(example_of, load_ifbench_rows()[0])}
    keys = ResponsiveMetric(_no_model())  # the judge request's shape, for the keys: no call

    def pair_of(got: Sequence[str | None] | None, values: Sequence[float]) -> list[Pair | None] | None:
        return seed_pairs(keys, examples, ids, got, values)

    pairs: AllPairs = {
        row.name: {seed: pair_of(got, row.values[seed]) for seed, got in texts[row.name].items()}
        for row in rows
    }
    work = ctx.results / WORK / f"verdicts-{model_slug(args.judge_model)}.jsonl"
    verdicts = load_verdicts(work)
    estimate(distinct(pairs), verdicts, [] if args.skip_fixed_rerun else ctx.rerun, len(ids))
    if args.estimate_only:
        return {}
    add_fixed(ctx, rows, pairs, pair_of, args, scorer_llm)
    known = distinct(pairs)
    todo = [p for k, p in known.items() if k not in verdicts]
    verdicts.update(judge_todo(todo, examples, work, args, judge_llm))
    calls = {"asked": sum(1 for p in todo if p.answer.strip()), "reused": len(known) - len(todo),
             "distinct": len(known)}  # fmt: skip
    return write(args, doc_table, ctx, [gate_row(row, pairs[row.name], verdicts) for row in rows], calls)


def write(
    args: argparse.Namespace,
    doc_table: dict[str, Any],
    ctx: Context,
    gated: list[Gated],
    calls: dict[str, int],
) -> dict[str, Any]:
    """``<out>.json`` and ``.md``, one JSON line per row on stdout; the document."""
    none = next((g for g in gated if g.row.name == "none"), None)
    rows = [figures(g, none) for g in gated]
    here = machine()
    doc = {
        "bench": BENCH, "date": here["date_utc"], "commit": git_commit(), "machine": here, "busy": args.busy,
        "promptopt": __version__, "judge_model": args.judge_model, "metric": GATED_SPEC,
        "judge_max_tokens": DEFAULT_RESPONSIVE_MAX_TOKENS,
        "sources": [f for s in doc_table["sources"].values() if s for f in s["files"]], "test": len(ctx.ids),
        "sizes": doc_table["sizes"], "models": doc_table["models"], "judge_calls": calls, "rows": rows,
        "left_out": [t["row"] for t in rows if not t["seeds"]], "notices": ctx.notices, "warnings": ctx.warnings,
        "command": " ".join(["python", *args.argv]),
    }  # fmt: skip
    results = Path(args.results_dir)
    atomic_write_json(results / f"{args.out}.json", doc)
    atomic_write_text(results / f"{args.out}.md", markdown(doc))
    for t in rows:
        print(json.dumps({"bench": BENCH, "row": t["row"], "answers": t["answers"],
                          "not_carried_out": t["not_carried_out"], "plain": t["plain_mean"],
                          "gated": t["gated_mean"], "gated_vs_none": t["gated_vs_none"]}))  # fmt: skip
    for w in ctx.warnings:
        note(f"{BENCH}: warning: {w}")
    note(f"{BENCH}: wrote {results / args.out}.json, .md")
    return doc


def _build_judge(spec: str, cache: str | None) -> LLM:
    from promptopt.llm.factory import build_llm

    return build_llm(spec, **({"cache": cache} if cache else {}))  # temperature 0: cached


def _no_model() -> LLM:
    """A model that is never called: the metric builds request keys before any judge is needed."""
    from promptopt.llm.fake import FakeLLM

    return FakeLLM(default=ConfigError("bench bug: the key-only judge was called"))


def main(argv: Sequence[str] | None = None) -> None:
    run(parse(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    run_main(main)
