"""The metric-call budget (``max_metric_calls``, ``opro run --budget-metric-calls N``): GEPA's unit.

Why a budget in metric calls: comparing proposers (OPRO's meta-prompt, reflective proposals) is
only fair at equal scoring effort, and the scorer's answers — one per (candidate, example) — are
what a search spends. One metric call is one candidate evaluated on one example, counted whether or
not the request cache answered it, so a resumed run counts exactly what an uninterrupted one does.

What counts: every evaluation the *search* makes — OPRO's training scores (``info["requests"]``
under racing, else ``info["total"]`` of each scored trial; a task without per-example scores counts
one per candidate), and the reflective proposer's minibatch and validation evaluations. What does
not: the final report (the validation pick among the shortlist and the held-out test), which GEPA
also leaves outside its budget for the test set; the report's own numbers say what it cost.

A run stops *before* a step that could cross the limit (``stop_reason`` ``"metric_calls"``, apart
from ``"budget"``, which is the LLM call / token / dollar budget): each proposer gives an upper bound
of its next step's calls. The first evaluation of the starting candidates always runs, so a limit
below it is refused before the run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from promptopt.errors import ConfigError
from promptopt.optimizers.base import LoopState, Trial

#: the stop reason of a run ended by its metric-call budget
STOP_CODE = "metric_calls"


@dataclass
class MetricCalls:
    """The metric calls a run has spent (``used``), its limit (None: unlimited) and an upper bound
    of what the next step may spend (``next_cost``). A :class:`~promptopt.optimizers.base.StopCondition`."""

    limit: int | None
    used: int = 0
    next_cost: int = 0
    code: ClassVar[str] = STOP_CODE

    def check(self, state: LoopState) -> str | None:
        if self.limit is None or self.used + self.next_cost <= self.limit:
            return None
        return (
            f"{self.used} of {self.limit} metric calls used; the next step could need {self.next_cost}, "
            "more than is left"
        )

    def add(self, n: int) -> None:
        self.used += int(n)

    def summary(self, limit: int | None = None) -> dict[str, Any]:
        """What result.json reports (``report["metric_calls"]``); ``limit``: the run's whole limit
        when this counter's is the search's share of it (``--demos``)."""
        return {"used": self.used, "max": self.limit if limit is None else limit}


#: With ``--demos`` and a metric-call limit, the share of the limit the instruction search may
#: spend; the demo phase gets the rest (MIPROv2 spends its whole budget on the joint search, after
#: proposing instructions without scoring them; here the instructions come from a scored search).
SEARCH_SHARE = 0.5


def search_share(limit: int | None, demos: int | None) -> int | None:
    """The instruction search's metric-call limit: all of ``limit`` without demos, else its share."""
    if limit is None or not demos:
        return limit
    return max(1, int(limit * SEARCH_SHARE))


def check_limit(limit: Any) -> int | None:
    """``limit`` if it is None or a positive integer, else a ConfigError."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"max_metric_calls must be a positive integer, got {limit!r}")
    return limit


def require_first(limit: int | None, first: int, what: str) -> None:
    """Refuse a limit below the first evaluation's ``first`` calls (it always runs)."""
    if limit is not None and first > limit:
        raise ConfigError(
            f"max_metric_calls {limit} is less than the {first} metric calls of {what}; "
            f"give at least {first} (--budget-metric-calls)"
        )


def trial_metric_calls(t: Trial) -> int:
    """The metric calls an OPRO trial's scoring made: the examples it was scored on (racing:
    ``requests``), or one for a task without per-example scores; none for a dropped proposal."""
    if t.status not in ("scored", "initial") and not (t.status == "failed" and t.text):
        return 0
    info = t.info or {}
    n = info.get("requests", info.get("total"))
    return int(n) if isinstance(n, int) and not isinstance(n, bool) else 1


def candidate_metric_calls(task: Any) -> int:
    """An upper bound of one OPRO candidate's metric calls: its training split's size when the task
    scores on one (instruction search), else one."""
    train = getattr(getattr(task, "splits", None), "train", None)
    return max(1, len(train)) if train is not None else 1
