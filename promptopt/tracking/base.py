"""The tracker protocol, the ``--track`` spec and the state file that lets a resumed run continue.

Why a protocol of its own: optimizers report progress through callbacks and journal records and
must not import a tracking library; an experiment tracker is one more listener, reached through
:class:`Tracker`. A backend (MLflow today) is a registry entry in :data:`TRACKERS`, chosen by the
scheme of ``--track SCHEME[:TARGET]`` (``mlflow``, ``mlflow:sqlite:///mlflow.db``).

Why a state file (:data:`TRACKING_FILE`, ``tracking.json`` in the run directory): a resumed run
must continue the tracker's run, not start a second one, so the backend's run id is kept beside
the run. It holds no secret: the tracking URI is stored redacted (credentials in a URL dropped).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from promptopt.errors import ConfigError
from promptopt.extras import require_installed
from promptopt.journal import redact

#: the state file of a tracked run, in its run directory (``bpo build-data``: beside its output)
TRACKING_FILE = "tracking.json"

#: run statuses a tracker is ended with (MLflow's names)
FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"


@runtime_checkable
class Tracker(Protocol):
    """One experiment-tracking backend, opened for one promptopt run at a time.

    Calls come in this order: :meth:`start` once, then any of the ``log_*`` / :meth:`set_tags`,
    then :meth:`end`. Every call may raise; the caller (:class:`~promptopt.tracking.safe.SafeTracker`)
    turns the first failure into one warning and stops calling. ``name`` names the backend in
    messages and in ``tracking.json``."""

    name: str

    def start(self, *, state_file: Path | None, run_name: str, tags: Mapping[str, str], resume: bool) -> bool:
        """Open the backend's run: with ``resume`` and a matching ``state_file``, the run recorded
        there (True); else a new one, recorded into ``state_file`` when given (False)."""
        ...

    def log_params(self, params: Mapping[str, str]) -> None:
        """Parameters (flat, text). A continued run keeps the values it has."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log_text(self, text: str, name: str) -> None:
        """``text`` as the artifact file ``name``."""
        ...

    def log_artifact(self, path: Path) -> None: ...

    def end(self, status: str) -> None:
        """Close the run as FINISHED, FAILED or KILLED."""
        ...


@dataclass(frozen=True)
class TrackerEntry:
    """A backend in :data:`TRACKERS`: its factory (given the spec's target, or None) and the
    module that shows its extra is installed."""

    factory: Callable[[str | None], Tracker]
    module: str
    extra: str = "track"


def _mlflow(target: str | None) -> Tracker:
    from promptopt.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(tracking_uri=target)


#: ``--track`` schemes -> backends
TRACKERS: Mapping[str, TrackerEntry] = {"mlflow": TrackerEntry(_mlflow, "mlflow")}

TrackSpec = str | Tracker


def parse_track(spec: TrackSpec) -> Tracker:
    """The tracker a ``--track`` spec names (``SCHEME`` or ``SCHEME:TARGET``); a Tracker as it is.
    An unknown scheme is a ConfigError and a missing extra a MissingExtraError, both before
    anything runs; nothing is connected to here."""
    if not isinstance(spec, str):
        return spec
    scheme, _, target = spec.strip().partition(":")
    entry = TRACKERS.get(scheme)
    if entry is None:
        raise ConfigError(
            f"--track: unknown tracker {scheme!r}; choose {', '.join(TRACKERS)} (e.g. mlflow:URI)"
        )
    require_installed(entry.module, entry.extra, what=f"--track {scheme}")
    return entry.factory(target.strip() or None)


def read_state(state_file: Path | None) -> dict[str, Any]:
    """The recorded tracker state (``{}`` when there is none or it cannot be read: a new run then)."""
    if state_file is None:
        return {}
    try:
        data = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def tracker_from_state(state_file: Path) -> Tracker | None:
    """The tracker a run recorded (what a resumed run continues without ``--track``), or None."""
    state = read_state(state_file)
    entry = TRACKERS.get(str(state.get("tracker")))
    if entry is None or "run_id" not in state:
        return None
    return entry.factory(state.get("target"))


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A run's config as flat ``a.b.c`` -> text parameters, secrets redacted first (keys that look
    like secrets, credentials inside URLs). Lists stay one JSON parameter; None is ``"None"``."""
    out: dict[str, str] = {}
    for key, value in redact(dict(config)).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value, ensure_ascii=False, default=str)
        else:
            out[name] = str(value)
    return out


def numeric_leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers in a nested mapping, as flat ``a.b`` metrics (bools and lists left out)."""
    out: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(numeric_leaves(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out
