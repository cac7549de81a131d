"""The IFBench table's outputs: the markdown page and the figure, from the finished document.

Why apart: rendering decides nothing (every figure and verdict is already in the document that
``bench/ifbench_table.py`` builds and writes as JSON), so the page can be reworded without any risk to
the numbers, and the numbers can be checked without rendering.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from _common import figure, md_table
from ifbench_lengths import DEGENERATE_SHARE, SEED_SHORT_SHARE, SHORT_WORDS, collapsed_seeds
from ifbench_table_goals import goal_lines
from ifbench_table_stats import AGAINST, BY_LENGTH, fmt_diff

FOUND_CHARS = 200


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
    accuracy says nothing about instruction following; the rows whose answers are not here are named
    as not checked (every row is checked where it can be, whatever its source)."""
    bad = doc["degenerate"]
    rule = f"more than {DEGENERATE_SHARE:g} % of its test answers at ≤ {SHORT_WORDS} words"
    unknown = [t["row"] for t in doc["table"] if t["answers"] is None]
    unchecked = f" Answer lengths not here, so not checked: {', '.join(unknown)}." if unknown else ""
    if not bad:
        return [f"Degenerate answers: none (no row has {rule}).{unchecked}"]
    rows = "; ".join(f"**{b['row']}** ({b['short']:.1f} % of {b['n']} answers ≤ {SHORT_WORDS} words, median "
                     f"{fmt_words(b['median_words'])})" for b in bad)  # fmt: skip
    return [f"**Degenerate answers** ({rule}): {rows}. Their accuracy must not be read as instruction "
            "following: IFBench's checkers pass a bare word on many constraint kinds (every n-th word in "
            "a language, one word a line, sentence-type ratios with no sentences), so a row that answers "
            f"\"Yes\" to everything scores without following anything.{unchecked}"]  # fmt: skip


def seed_note(doc: dict[str, Any]) -> list[str]:
    """One line per seed with at least :data:`SEED_SHORT_SHARE` % short answers: the degenerate rule
    pools the seeds, so a row whose one seed collapsed to bare words passes it; a warning only (the
    goals still go by the pooled rule)."""
    lines = []
    for t in doc["table"]:
        for s in collapsed_seeds(t.get("short_by_seed") or []):
            which = f"the fixed run of {t['row']}" if s["seed"] is None else f"seed {s['seed']} of {t['row']}"
            lines.append(f"- {which}: {s['short']:g} % of its {s['n']} answers ≤ {SHORT_WORDS} words")
    if not lines:
        return []
    return ["", f"Seeds with {SEED_SHORT_SHARE:g} % or more of their test answers at ≤ {SHORT_WORDS} words "
            "(a warning: the degenerate rule above pools the seeds, so one seed that collapsed can pass it):",
            "", *lines]  # fmt: skip


def fmt_part(points: float, n: int, what: str, first: bool) -> str:
    """One part of a split difference: ``+4.6 from 24 answers ≤ 3 words`` (the second part ``+ 3.3 …``)."""
    sign = f"{points:+.1f}" if first else f"{'+' if points >= 0 else '-'} {abs(points):.1f}"
    return f"{sign} from {n} {what}"


def fmt_split(d: dict[str, Any] | None, split: dict[str, Any] | None) -> str:
    """A paired difference and its split by answer length, ``+7.9 = +4.6 from 24 answers ≤ 3 words +
    3.3 from 96 others`` (— without a split: the row's answers are not here)."""
    if not d:
        return "—"
    if not split:
        return f"{d['diff']:+.1f} = — (answers not here)"
    short, long = split["short"], split["long"]
    answers = "answer" if short["n"] == 1 else "answers"
    text = (f"{d['diff']:+.1f} = {fmt_part(short['points'], short['n'], f'{answers} ≤ {SHORT_WORDS} words', True)} "
            f"{fmt_part(long['points'], long['n'], 'other' if long['n'] == 1 else 'others', False)}")  # fmt: skip
    return text + (f" ({split['no_answer']} of them without an answer)" if split.get("no_answer") else "")


def length_lines(doc: dict[str, Any]) -> list[str]:
    """The section "Gain by answer length": each row's paired difference against :data:`BY_LENGTH`
    split into the part its answers of at most ``SHORT_WORDS`` words carry and the rest; the rows whose
    answers are not here are named in one line (their split is —)."""
    keys = [f"vs_{o}" for o in BY_LENGTH]
    compared = [t for t in doc["table"] if any(t.get(k) for k in keys)]
    has = [t for t in compared if any(t.get(f"{k}_by_length") for k in keys)]
    lines = [f"- {t['row']}: " + "; ".join(f"{k.replace('_', ' ')} {fmt_split(t[k], t.get(f'{k}_by_length'))}"
                                          for k in keys if t.get(k)) for t in has]  # fmt: skip
    without = [t["row"] for t in compared if t not in has]
    if without:
        lines.append(f"- — (answers not here): {', '.join(without)}")
    if not lines:
        return []
    head = (f"Each paired difference (points, the same pairs as the table's) split by the row's answer: the "
            f"part carried by the pairs where it has at most {SHORT_WORDS} words, and by the others (the two "
            "add up to the difference, up to rounding). A gain carried by bare-word answers is no instruction "
            "following: IFBench's checkers pass a bare word on many constraint kinds.")  # fmt: skip
    return ["", "## Gain by answer length", "", head, "", *lines]


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
    right.set_title("paired difference vs none, 95 % CI (bootstrap over prompts)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return str(path)


def header(doc: dict[str, Any]) -> list[str]:
    """Title, when and where, the sources (a missing one in one line), models, sizes, warnings."""
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
    return md


def table_lines(doc: dict[str, Any]) -> list[str]:
    """The explanation, the table itself, the degenerate note and where answer lengths came from."""
    md = ["Test accuracy = mean ifbench value ×100 (instruction-level strict); prompt-level = share of "
          "prompts with every constraint followed. Differences in points, paired over (seed, test "
          "example) pairs pooled over seeds (a fixed row pairs with every seed), 95 % bootstrap interval over the "
          "test prompts (a prompt's seeds resampled together). "
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
    md += ["", *degenerate_note(doc), *seed_note(doc)]
    for t in doc["table"]:
        if t["answers"] and t["answers"].get("from"):
            md += ["", f"Answer lengths of **{t['row']}** from {t['answers']['from']}."]
    return md


def found_lines(doc: dict[str, Any]) -> list[str]:
    """Every row's found prompt per seed, on one line each."""
    md = []
    for t in doc["table"]:
        for seed, text in zip(t["seeds"], t["found"], strict=True):
            label = "fixed" if seed is None else f"seed {seed}"
            shown = f"`{one_line(text).replace('`', chr(39))}`" if text.strip() else "(no system prompt)"
            md.append(f"- **{t['row']}** {label}: {shown}")
    return md


def markdown(doc: dict[str, Any], png: str | None) -> str:
    md = [*header(doc), *table_lines(doc), *length_lines(doc)]
    md += ["", "## Goals", "", *goal_lines(doc)]
    md += ["", "## Found prompts", "", *found_lines(doc)]
    if png:
        md += ["", f"![mean per row and difference vs none]({os.path.basename(png)})"]
    md += ["", f"Command: `{doc['command']}`"]
    return "\n".join(md) + "\n"
