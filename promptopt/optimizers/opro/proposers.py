"""The proposers an OPRO run can use (``OPRO(proposer=...)``, ``opro run --proposer NAME``).

A proposer is how new candidates are written: ``opro`` (the paper's meta-prompt of scored past
solutions; the default, unchanged) or ``reflective`` (GEPA's reflection on a parent's minibatch
answers and the metric's feedback, with a Pareto pool: :mod:`promptopt.optimizers.reflective`).
Both run inside the same run directory, journal, budget, stop conditions and final report; each
entry says what differs: the loop, the OPRO parameters it does not use (recorded at fixed values so
config.json keeps one shape), its own defaults and parameters, and the check that refuses a task
it cannot run on (and a metric-call limit below its first evaluation) before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.errors import ConfigError, RunDirError
from promptopt.extras import require_installed
from promptopt.optimizers.metric_calls import candidate_metric_calls, check_limit, require_first
from promptopt.optimizers.opro.history import step_rng
from promptopt.optimizers.opro.loop import Loop
from promptopt.optimizers.reflective.loop import ReflectiveLoop, check_task, seed_texts
from promptopt.optimizers.reflective.report import iterations_section
from promptopt.tasks.base import Task

#: GEPA's default minibatch size (``reflection_minibatch_size``)
DEFAULT_MINIBATCH = 3


@dataclass(frozen=True)
class Proposer:
    """One proposer (see the module docstring)."""

    summary: str
    loop: Callable[..., Loop]
    check: Callable[[Task, Mapping[str, Any]], None]
    #: OPRO parameters this proposer does not use, at the values its runs record
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: its defaults for OPRO's parameters (before the task's and OPRO's own)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: parameters only this proposer takes, with their defaults
    own: Mapping[str, Any] = field(default_factory=dict)
    #: its own section of ``opro report`` (markdown lines from the journal's records)
    report: Callable[[Sequence[Mapping[str, Any]]], list[str]] | None = None


def _check_opro(task: Task, p: Mapping[str, Any]) -> None:
    if p.get("max_metric_calls") is None:  # nothing to check: a plain OPRO run is as it was
        return
    first = len(task.initial_candidates(step_rng(int(p["seed"]), 0))) * candidate_metric_calls(task)
    require_first(p.get("max_metric_calls"), first, "scoring the starting candidates")


def _check_reflective(task: Task, p: Mapping[str, Any]) -> None:
    check_task(task)
    mb = p.get("minibatch_size")
    if isinstance(mb, bool) or not isinstance(mb, int) or mb < 1:
        raise ConfigError(f"minibatch_size must be a positive integer, got {mb!r}")
    val = len(getattr(task, "splits").val)  # noqa: B009 - check_task made sure it is there
    first = len(seed_texts(task, int(p["seed"]))) * val
    require_first(
        p.get("max_metric_calls"), first, "scoring the starting instructions on the validation split"
    )


PROPOSERS: Mapping[str, Proposer] = {
    "opro": Proposer("the paper's meta-prompt of scored past solutions (default)", Loop, _check_opro),
    "reflective": Proposer(
        "GEPA: reflect on a parent's minibatch answers and the metric's feedback; Pareto pool",
        ReflectiveLoop,
        _check_reflective,
        fixed={"per_step": 1, "top_k": 0, "num_exemplars": 0, "max_reasks": 0, "constrained": False},
        defaults={"max_tokens": 2048},
        own={"minibatch_size": DEFAULT_MINIBATCH},
        report=iterations_section,
    ),
}
DEFAULT_PROPOSER = "opro"


def get_proposer(name: Any) -> Proposer:
    """The proposer called ``name``, or a ConfigError that lists them."""
    if isinstance(name, str) and name in PROPOSERS:
        return PROPOSERS[name]
    known = "; ".join(f"{k} ({v.summary})" for k, v in PROPOSERS.items())
    raise ConfigError(f"unknown proposer {name!r}; choose one of: {known}")


#: parameters a resumed run keeps (a different value is refused)
KEPT_ON_RESUME = ("proposer", "minibatch_size", "demos")


def proposer_params(given: Mapping[str, Any], run: Mapping[str, Any]) -> tuple[str, Proposer, dict[str, Any]]:
    """(proposer name, its entry, the parameters it adds to OPRO's): ``proposer``, its own
    parameters (``minibatch_size``), ``max_metric_calls`` and ``demos`` when set. ``given``: this optimizer's values (None: unset); ``run``: a resumed run's (its ``opro``
    block; ``{}`` for a new run). A value that differs from the run's is refused for
    :data:`KEPT_ON_RESUME`; ``max_metric_calls`` may change, like ``steps``."""
    for key in KEPT_ON_RESUME:
        mine = given.get(key)
        if mine is not None and key in run and run[key] != mine:
            raise RunDirError(f"{key} {mine!r} differs from the run's {run[key]!r}; a resumed run keeps it")
    name = given.get("proposer")
    name = name if name is not None else run.get("proposer", DEFAULT_PROPOSER)
    prop = get_proposer(name)
    out: dict[str, Any] = {"proposer": name}
    for key in sorted({k for p in PROPOSERS.values() for k in p.own}):
        mine = given.get(key)
        if key not in prop.own:
            if mine is not None:
                raise ConfigError(f"{key} applies to the {_owner(key)} proposer only, not {name!r}")
            continue
        out[key] = mine if mine is not None else run.get(key, prop.own[key])
    limit = given.get("max_metric_calls")
    if check_limit(limit if limit is not None else run.get("max_metric_calls")) is not None:
        out["max_metric_calls"] = limit if limit is not None else run["max_metric_calls"]
    demos = given.get("demos")
    if (demos if demos is not None else run.get("demos")) is not None:
        out["demos"] = _check_demos(demos if demos is not None else run["demos"])
    return name, prop, out


def refuse_unused(prop: Proposer, name: str, key: str, value: Any) -> None:
    """A ConfigError when an OPRO parameter the proposer does not use is set to another value."""
    if value is not None and key in prop.fixed and value != prop.fixed[key]:
        raise ConfigError(f"{key} does not apply to the {name} proposer (its runs use {prop.fixed[key]!r})")


def _owner(key: str) -> str:
    return " / ".join(n for n, p in PROPOSERS.items() if key in p.own)


def _check_demos(k: Any) -> int:
    """``demos`` (``--demos K``): a positive integer, and the demonstration search installed."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"demos must be a positive integer, got {k!r}")
    # optuna is the demos extra: refused before the search runs, not after it (a run without it
    # would search instructions, then stop at the demo phase)
    require_installed("optuna", "demos", what="the demonstration search (opro run --demos)")
    return k
