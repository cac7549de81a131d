"""The IFBench table's goals, computed from its numbers (issue 21), and their lines in the table.

Why a module of its own: the goals are the table's verdicts ("met" / "not met"), so each is a rule
written down once, next to the words the table prints for it; the table's figures
(:mod:`ifbench_table_stats`) and the markdown around them (:mod:`ifbench_table_render`) do not decide
anything. The goals:

- the best promptopt row (by test mean, so optimistic; never a degenerate row, nor one with a seed at
  ``SEED_SHORT_SHARE`` % bare answers: :func:`gamed`) beats ``none`` and
  ``handwritten`` (the paired interval's low end above 0) and is not below ``gepa`` (mean over seeds);
- BPO's rewriter drops a constraint in at most :data:`REWRITER_DROP_GOAL` % of the test prompts, read
  from the rewriter source's own preservation figures, by rule and by judge (both shown; met when
  every figure there is meets it). A separate entry (``rewriter_goal``), since it is about no row.
"""

from __future__ import annotations

from typing import Any

from ifbench_lengths import DEGENERATE_SHARE, SEED_SHORT_SHARE, SHORT_WORDS, collapsed_seeds
from ifbench_table_sources import Source
from ifbench_table_stats import fmt_diff

#: the rewriter's goal (issue 21, bench/ifbench_rewriter.py): at most this share (%) of the prompts
#: lose a constraint in the rewrite
REWRITER_DROP_GOAL = 5.0
#: the preservation figures of bench/ifbench_rewriter.py: key in :attr:`Source.preservation` → words
MEASURES = {"rule": "by rule", "judge": "by the judge"}


def gamed(t: dict[str, Any]) -> bool:
    """Whether a row is left out of the best-row choice: degenerate pooled (more than
    ``DEGENERATE_SHARE`` % of all its answers at most ``SHORT_WORDS`` words), or with one seed at
    ``SEED_SHORT_SHARE`` % or more. Why the seed rule too: a method whose search games the checkers
    with bare-word answers on one seed in three has not shown that it makes the model follow
    constraints; its mean is lifted by that seed (measured: the 1.5B retest's reflective row from the
    hand-written prompt, +8.3 over it with seed 0 at 56 % bare answers, +4.0 [-1.0, +9.2] without)."""
    return bool(t["degenerate"] or collapsed_seeds(t.get("short_by_seed") or []))


def goals(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's three goals, computed: the best promptopt row (by test mean, so optimistic) against
    ``none`` and ``handwritten`` (the interval's low end above 0) and against ``gepa`` (mean not below).
    A degenerate row (mostly bare-word answers, see ifbench_lengths) is never the best row: its
    accuracy is the checkers passing a bare word, not instruction following; each goal names the rows
    left out (``left_out``)."""
    searched = [t for t in table if t["group"] == "promptopt" and t["mean"] is not None]
    left_out = [t["row"] for t in searched if gamed(t)]
    searched = [t for t in searched if not gamed(t)]
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


def preservation_measure(how: str, fig: dict[str, Any], prompts: int | None) -> dict[str, Any] | None:
    """One preservation figure (``preservation_rule`` / ``preservation_judge``) as the goal reads it:
    prompts dropping any constraint, of how many, the share in %, met or not; None when unreadable."""
    n = fig.get("prompts") or prompts
    k = fig.get("prompts_dropping_any")
    share = fig.get("share_prompts_dropping_any")
    if share is None and k is not None and n:
        share = k / n
    if share is None:
        return None
    pct = round(100.0 * share, 1)
    out = {"by": how, "prompts_dropping_any": k, "prompts": n, "share": pct, "met": pct <= REWRITER_DROP_GOAL}
    if fig.get("model"):
        out["model"] = fig["model"]
    return out


def rewriter_goal(source: Source | None) -> dict[str, Any]:
    """The rewriter's goal from its source's own preservation figures (by rule, by judge): met when every
    figure there is at most :data:`REWRITER_DROP_GOAL` %; n/a without a rewriter source or figures."""
    goal = f"rewriter drops a constraint in ≤ {REWRITER_DROP_GOAL:g} % of prompts"
    if source is None:
        return {"goal": goal, "met": None, "why": "no rewriter source: --rewriter TAG adds one"}
    pres = source.preservation
    prompts = (pres.get("rule") or {}).get("prompts") or source.sizes.get("test")
    measures = [m for how in MEASURES if pres.get(how)
                for m in [preservation_measure(how, pres[how], prompts)] if m]  # fmt: skip
    out: dict[str, Any] = {"goal": goal, "source": source.files[0], "measures": measures}
    if not measures:
        return {**out, "met": None, "why": f"{source.files[0]} has no preservation figures"}
    guard = pres.get("guard")
    if guard:
        out["guard"] = guard.get("model")
    if pres.get("keep_original"):
        out["keep_original"] = True
    out["rule"] = f"met when every measure is ≤ {REWRITER_DROP_GOAL:g} %"
    return {**out, "met": all(m["met"] for m in measures)}


# --------------------------------------------------------------------------- lines


def goals_choice(doc: dict[str, Any]) -> str:
    """The Goals block's line on how its best promptopt row was chosen and which rows were left out."""
    left = [b for b in doc["degenerate"] if b["group"] == "promptopt"]
    why = ", ".join(f"{b['row']} ({b['short']:.1f} % short answers)" for b in left)
    pooled = {b["row"] for b in left}
    for t in doc["table"]:
        seeds = collapsed_seeds(t.get("short_by_seed") or [])
        if t["group"] == "promptopt" and seeds and t["row"] not in pooled:
            why += (", " if why else "") + f"{t['row']} (" + ", ".join(
                f"seed {s['seed']}: {s['short']:.1f} %" for s in seeds) + " short answers)"  # fmt: skip
            left.append(t)
    rule = (f"more than {DEGENERATE_SHARE:g} % of answers ≤ {SHORT_WORDS} words, or {SEED_SHORT_SHARE:g} % "
            "or more at one seed")  # fmt: skip
    line = "- Best promptopt row: the highest test mean among the non-degenerate rows; " + (
        f"left out as degenerate ({rule}, accuracy not instruction following): {why}" if left
        else f"none left out (no promptopt row has {rule})"
    )  # fmt: skip
    unknown = [t["row"] for t in doc["table"] if t["group"] == "promptopt" and t["answers"] is None]
    if unknown:
        line += f"; answer lengths not here, so not checked: {', '.join(unknown)}"
    return line + "."


def goal_lines(doc: dict[str, Any]) -> list[str]:
    """The Goals section's lines: how the best row was chosen, then one line per goal."""
    md = [goals_choice(doc)]
    for g in doc["goals"]:
        verdict = VERDICT[g["met"]]
        if "against" not in g:
            md.append(f"- {g['goal']}: {verdict} ({g['why']})")
            continue
        d = fmt_diff(g["paired"]) or "no pairs"
        extra = f"; means {g['means'][0]} vs {g['means'][1]}" if "means" in g else ""
        md.append(f"- {g['goal']}: {verdict} — paired {d}{extra} ({g['rule']}; best promptopt row chosen by its "
                  "test mean, so optimistic)")  # fmt: skip
    for g in doc.get("rewriter_goals") or ([doc["rewriter_goal"]] if "rewriter_goal" in doc else []):
        md.append(rewriter_goal_line(g))
    return md


VERDICT = {True: "**met**", False: "**not met**", None: "n/a"}


def rewriter_goal_line(g: dict[str, Any]) -> str:
    """``- rewriter drops a constraint in ≤ 5 % of prompts: **not met** — by rule 11 of 40 prompts
    (27.5 %, not met); by the judge `M` 5 of 40 (12.5 %, not met) (met when ...; FILE)``."""
    if not g.get("measures"):
        return f"- {g['goal']}: {VERDICT[g['met']]} ({g['why']})"
    parts = []
    for m in g["measures"]:
        who = MEASURES[m["by"]] + (f" `{m['model']}`" if m.get("model") else "")
        of = (
            f"{m['prompts_dropping_any']} of {m['prompts']} prompts "
            if m["prompts_dropping_any"] is not None
            else ""
        )
        parts.append(f"{who} {of}({m['share']:.1f} %, {'met' if m['met'] else 'not met'})")
    if "judge" not in {m["by"] for m in g["measures"]}:
        parts.append("no judge figure (the rewriter ran without --judge-model)")
    guard = f"; of the guarded prompts (guard `{g['guard']}`)" if g.get("guard") else ""
    guard += (
        "; original kept (--keep-original: the prompt as written, then the rewrite)"
        if g.get("keep_original")
        else ""
    )
    return f"- {g['goal']}: {VERDICT[g['met']]} — {'; '.join(parts)} ({g['rule']}; {g['source']}{guard})"
