"""One figure of every run's score over its progress: per step (left) and per metric call (right).

Why panels by what the score is: an OPRO run's accuracy, a rewriter's loss and an evaluation's
ΔWR share no axis; runs whose curves measure the same thing (:attr:`Curve.metric`) share a row,
so the runs a person compares (usually of one kind) are drawn on the same axes. A curve without
metric calls (a rewriter's training) is drawn on the left only.

``matplotlib.figure.Figure`` is used directly (no pyplot): no global state, no display needed. The
``plot`` extra provides matplotlib; without it :func:`plot_curves` raises ``MissingExtraError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from promptopt.extras import require
from promptopt.runs_compare.model import Curve, RunSummary

PLOT_FILE = "compare.png"


def plot_curves(summaries: Sequence[RunSummary], path: str | Path) -> Path | None:
    """Write the figure to ``path``; None (nothing written) when no run has a curve."""
    require("matplotlib", "plot", what="the runs compare plot")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves = [c for s in summaries for c in s.curves]
    if not curves:
        return None
    groups: dict[str, list[Curve]] = {}
    for c in curves:
        groups.setdefault(c.metric, []).append(c)
    fig = Figure(figsize=(11.0, 3.6 * len(groups)))
    for row, (metric, members) in enumerate(groups.items()):
        by_step = fig.add_subplot(len(groups), 2, 2 * row + 1)
        by_calls = fig.add_subplot(len(groups), 2, 2 * row + 2)
        for c in members:
            by_step.plot(c.steps, c.scores, marker="o", markersize=3, label=c.label)
            if c.metric_calls is not None:
                by_calls.plot(c.metric_calls, c.scores, marker="o", markersize=3, label=c.label)
        better = "lower is better" if all(c.direction == "min" for c in members) else "higher is better"
        unit = " / ".join(dict.fromkeys(c.step_unit for c in members))
        by_step.set_title(f"{metric} per {unit} ({better})", fontsize=9)
        by_step.set_xlabel(unit)
        by_calls.set_title(f"{metric} per metric call", fontsize=9)
        by_calls.set_xlabel("metric calls (one candidate on one example; bpo-eval: one item judged)")
        for ax in (by_step, by_calls):
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        by_step.legend(fontsize=7)
        if any(c.metric_calls is not None for c in members):
            by_calls.legend(fontsize=7)
        else:
            by_calls.text(0.5, 0.5, "no metric calls recorded", ha="center", va="center",
                          transform=by_calls.transAxes, fontsize=9)  # fmt: skip
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    return out
