"""MLflow behind the :class:`~promptopt.tracking.base.Tracker` protocol (the ``track`` extra).

Why ``MlflowClient`` and not the fluent ``mlflow.start_run``: the client takes its tracking URI and
run id explicitly, so tracking a run changes no process-wide MLflow state (the active run, the
tracking URI) that a user's own code or the HF Trainer's MLflow callback relies on, and calls may
come from the tracker's worker thread. ``mlflow`` is imported when a run starts, never before.

Where runs go: the ``--track mlflow:URI`` target, else (when a resumed run names none) the store
the run recorded, else MLflow's own default (``MLFLOW_TRACKING_URI``, or ``./mlflow.db``); into
the experiment ``MLFLOW_EXPERIMENT_NAME`` or ``promptopt``. Relative store paths are made absolute,
so a run resumed from another directory finds its store.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptopt.extras import require
from promptopt.journal import redact
from promptopt.runs import atomic_write_json
from promptopt.tracking.base import read_state

#: the experiment runs go into when ``MLFLOW_EXPERIMENT_NAME`` names none
DEFAULT_EXPERIMENT = "promptopt"
_BAD_KEY_CHARS = re.compile(r"[^0-9A-Za-z_\-./ :]")
_TAG_LIMIT = 5000


def absolute_uri(uri: str) -> str:
    """``uri`` with a relative SQLite or file-store path made absolute (other URIs as they are)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rest = uri[len("sqlite:///") :]
        return "sqlite:///" + str(Path(rest).resolve()) if rest and rest != ":memory:" else uri
    if uri.startswith("file:") and not uri.startswith("file:/"):
        return "file:" + str(Path(uri[len("file:") :]).resolve())
    if "://" not in uri and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri):  # a bare path
        return str(Path(uri).resolve())
    return uri


def metric_key(name: str) -> str:
    """A metric or parameter name MLflow accepts (other characters become ``_``)."""
    return _BAD_KEY_CHARS.sub("_", name)


class MlflowTracker:
    """One MLflow run per promptopt run (see the module docstring). ``tracking_uri`` / ``experiment``:
    None for the defaults above."""

    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_id: str | None = None
        self.uri: str | None = None  # the store in use, once started
        self._client: Any = None
        self.logged_params: dict[str, str] = {}  # the run's parameters (a continued run's, then new)

    def __repr__(self) -> str:
        return f"MlflowTracker({redact(self.tracking_uri)!r}, experiment={self.experiment!r})"

    # -- opening
    def start(self, *, state_file: Path | None, run_name: str, tags: Mapping[str, str], resume: bool) -> bool:
        mlflow = require("mlflow", "track", what="--track mlflow")
        state = read_state(state_file) if resume else {}
        if state.get("tracker") != self.name:
            state = {}
        uri = self.tracking_uri or state.get("tracking_uri") or mlflow.get_tracking_uri()
        uri = self.uri = absolute_uri(str(uri))
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=uri)
        if (
            state.get("run_id")
            and state.get("tracking_uri") == redact(uri)
            and self._reopen(str(state["run_id"]))
        ):
            self.set_tags(tags)
            return True
        experiment = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        found = self._client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found is not None else self._client.create_experiment(experiment)
        run = self._client.create_run(exp_id, tags=dict(tags), run_name=run_name)
        self.run_id = run.info.run_id
        if state_file is not None:
            atomic_write_json(
                state_file,
                {
                    "tracker": self.name,
                    "tracking_uri": redact(uri),
                    "experiment_id": exp_id,
                    "run_id": self.run_id,
                },
            )
        return False

    def _reopen(self, run_id: str) -> bool:
        """Continue ``run_id`` (marked running again); False when the store no longer has it."""
        from mlflow.exceptions import MlflowException

        try:
            run = self._client.get_run(run_id)
        except MlflowException:
            return False
        self.run_id = run_id
        self.logged_params = dict(run.data.params)
        self._client.update_run(run_id, status="RUNNING")
        return True

    # -- logging
    def log_params(self, params: Mapping[str, str]) -> None:
        """New parameters; on a continued run, a value that changed (``--steps`` extended on
        resume) becomes the tag ``resumed.<name>``, since MLflow parameters cannot change."""
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        new, changed = [], {}
        for key, value in params.items():
            k, v = metric_key(key), str(value)[:MAX_PARAM_VAL_LENGTH]
            if k not in self.logged_params:
                new.append(Param(k, v))
                self.logged_params[k] = v
            elif self.logged_params[k] != v:
                changed[f"resumed.{k}"] = v
        for i in range(0, len(new), 100):
            self._client.log_batch(self._id(), params=new[i : i + 100], synchronous=True)
        if changed:
            self.set_tags(changed)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(metric_key(k), float(v), now, int(step or 0)) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            self._client.log_batch(self._id(), metrics=batch[i : i + 1000], synchronous=True)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(metric_key(k), str(redact(str(v)))[:_TAG_LIMIT]) for k, v in tags.items()]
        for i in range(0, len(batch), 100):
            self._client.log_batch(self._id(), tags=batch[i : i + 100], synchronous=True)

    def log_text(self, text: str, name: str) -> None:
        self._client.log_text(self._id(), text, name)

    def log_artifact(self, path: Path) -> None:
        self._client.log_artifact(self._id(), str(path))

    def end(self, status: str) -> None:
        self._client.set_terminated(self._id(), status)

    def _id(self) -> str:
        if self.run_id is None:
            raise RuntimeError("the MLflow run was not started")
        return self.run_id
