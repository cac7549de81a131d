"""What the demonstration search returns, and the events it records.

Why events and not a snapshot: the search is a sequence of evaluations driven by a seeded sampler,
so the journal of those evaluations is enough to replay it — a resumed search re-runs the sampler
with the same seed and answers each evaluation it already made from its event (see
:func:`promptopt.optimizers.demos.search.asearch_demos`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.errors import RunDirError
from promptopt.optimizers.demos.bootstrap import DemoSet
from promptopt.prompting import Demo

#: the ``event`` field of the search's records
BOOTSTRAP_EVENT = "demos_bootstrap"
TRIAL_EVENT = "demos_trial"
FULL_EVAL_EVENT = "demos_full_eval"
EVENTS: tuple[str, ...] = (BOOTSTRAP_EVENT, TRIAL_EVENT, FULL_EVAL_EVENT)


@dataclass(frozen=True)
class DemoChoice:
    """The (instruction, demo set) with the best full validation score.

    ``val_score`` is its validation accuracy (0–100, with its demos); ``metric_calls`` counts one
    per (combination, example) evaluated, bootstrap included; ``trials`` holds the minibatch trials
    and full evaluations in order (the rows for a report); ``sets`` every candidate set.
    """

    instruction: str
    demos: tuple[Demo, ...]
    val_score: float | None
    metric_calls: int
    trials: tuple[dict[str, Any], ...] = ()
    instruction_index: int = 0
    demo_set: int = 0
    sets: tuple[DemoSet, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "demos": [d.to_json() for d in self.demos],
            "val_score": self.val_score,
            "metric_calls": self.metric_calls,
            "instruction_index": self.instruction_index,
            "demo_set": self.demo_set,
            "sets": [{"kind": s.kind, "example_ids": list(s.example_ids)} for s in self.sets],
            "trials": [dict(t) for t in self.trials],
        }


class Replay:
    """The recorded events of an earlier (interrupted) search, looked up by position.

    Other events in ``records`` (a whole journal may be passed) are ignored.
    """

    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        mine = [dict(r) for r in records if r.get("event") in EVENTS]
        boots = [r for r in mine if r["event"] == BOOTSTRAP_EVENT]
        self.bootstrap: dict[str, Any] | None = boots[-1] if boots else None
        self.trials = {int(r["trial"]): r for r in mine if r["event"] == TRIAL_EVENT}
        self.full_evals = {int(r["index"]): r for r in mine if r["event"] == FULL_EVAL_EVENT}

    @staticmethod
    def check(recorded: Mapping[str, Any], expected: Mapping[str, Any], what: str) -> None:
        """A RunDirError when a recorded event disagrees with what the sampler asks now: the
        journal is of another search (other settings or candidates), and replaying it would be wrong."""
        for key, value in expected.items():
            if recorded.get(key) != value:
                raise RunDirError(
                    f"the journal's demonstration search differs at {what} ({key}: recorded "
                    f"{recorded.get(key)!r:.80}, now {value!r:.80}); it was run with other settings or "
                    "candidates — start a new run"
                )
