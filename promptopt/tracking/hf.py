"""``bpo train --track mlflow[:URI]``: the HF Trainer's own MLflow integration, made resumable and safe.

Why the Trainer's callback and not a second logger: it already logs the trainer's arguments, the
model config, the loss, learning rate and evaluation metrics at the right steps (``report_to=
["mlflow"]``, configured through ``MLFLOW_*`` environment variables). What promptopt adds around it:

- the run is opened first through :class:`~promptopt.tracking.base.Tracker` (so it gets the output
  folder as its ``promptopt.run_dir`` tag and its id is kept in ``OUT/tracking.json``) and made
  MLflow's active run in ``MLFLOW_TRACKING_URI``, which the callback logs into: ``bpo train
  --resume`` continues the same run;
- the callback is wrapped so that a failing store warns once and stops logging instead of failing
  the training (a store that cannot even open the run: the callback is removed before training);
- the environment and MLflow's tracking URI are restored afterwards, so nothing leaks into the
  process (a second training run, the user's own MLflow use).

Only the main process (rank 0) tracks; the callback logs from there alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promptopt.tracking.base import FAILED, FINISHED, TRACKING_FILE, parse_track
from promptopt.tracking.safe import SafeTracker

_ENV = "MLFLOW_TRACKING_URI"


def report_to_with_mlflow(report_to: Any) -> list[str]:
    """The trainer's ``report_to`` with ``mlflow`` added (``"none"`` becomes ``["mlflow"]``; a
    user's other integrations stay)."""
    if report_to in (None, "none", ()) or report_to == ["none"]:
        return ["mlflow"]
    items = [report_to] if isinstance(report_to, str) else list(report_to)
    return items if "mlflow" in items or "all" in items else [*items, "mlflow"]


class _KeptParams:
    """The ``mlflow`` module as the callback sees it, but ``log_params`` leaves alone what a continued
    run already has: MLflow refuses to change a parameter, and ``--resume --max-steps 8`` changes
    one; a changed value is kept as the tag ``resumed.<name>`` instead (as for OPRO runs)."""

    def __init__(self, mlflow: Any, kept: dict[str, str]) -> None:
        self._mlflow, self._kept = mlflow, kept

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mlflow, name)

    def log_params(self, params: dict[str, Any], **kwargs: Any) -> Any:
        new = {k: v for k, v in params.items() if k not in self._kept}
        changed = {
            f"resumed.{k}": str(v)[:5000]
            for k, v in params.items()
            if k in self._kept and self._kept[k] != str(v)
        }
        if changed:
            self._mlflow.set_tags(changed)
        return self._mlflow.log_params(new, **kwargs) if new else None


def _guarded_callback(base: type, safe: SafeTracker, kept: dict[str, str]) -> Any:
    """An instance of the Trainer's MLflow callback whose every hook warns once and goes quiet on
    a failure instead of raising into the training loop (parameters: :class:`_KeptParams`)."""

    class GuardedMLflowCallback(base):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self._ml_flow = _KeptParams(self._ml_flow, kept)

        def _guard(self, hook: str, *args: Any, **kwargs: Any) -> Any:
            if not safe.enabled:
                return None
            try:
                return getattr(super(), hook)(*args, **kwargs)
            except Exception as exc:
                safe.fail(exc)
                return None

        def on_train_begin(self, *args: Any, **kwargs: Any) -> Any:
            return self._guard("on_train_begin", *args, **kwargs)

        def on_log(self, *args: Any, **kwargs: Any) -> Any:
            return self._guard("on_log", *args, **kwargs)

        def on_train_end(self, *args: Any, **kwargs: Any) -> Any:
            return self._guard("on_train_end", *args, **kwargs)

        def on_save(self, *args: Any, **kwargs: Any) -> Any:
            return self._guard("on_save", *args, **kwargs)

    return GuardedMLflowCallback()


@contextlib.contextmanager
def _active(uri: str, run_id: str, safe: SafeTracker) -> Iterator[None]:
    """The run made MLflow's active run in ``MLFLOW_TRACKING_URI`` for the callback, which then logs
    into it and leaves ending it to us (it ends only runs it started: ``trainer.evaluate()`` after
    ``train()`` would otherwise open a second run). Environment and tracking URI restored after."""
    import mlflow

    saved = os.environ.get(_ENV)
    before = mlflow.get_tracking_uri()
    os.environ[_ENV] = uri
    switched = mlflow.get_tracking_uri() != uri  # the process set one: the env var does not win
    if switched:
        mlflow.set_tracking_uri(uri)
    started = False
    try:
        mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)  # nested: the user's own run
        started = True
    except Exception as exc:
        safe.fail(exc)
    try:
        yield
    finally:
        try:
            flush = getattr(mlflow, "flush_async_logging", None)
            if started and flush is not None:
                flush()
            active = mlflow.active_run()
            if started and active is not None and active.info.run_id == run_id:
                mlflow.end_run()
        except Exception as exc:
            safe.fail(exc)
        if saved is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = saved
        if switched:
            mlflow.set_tracking_uri(before)


@contextlib.contextmanager
def trainer_tracking(trainer: Any, track: str | None, out_dir: str | Path, *, resume: bool) -> Iterator[None]:
    """Around a Trainer's ``train`` / ``evaluate`` / save: its MLflow callback logging into the run
    recorded for ``out_dir`` (see the module docstring). Without ``track``, or off rank 0: nothing."""
    if track is None or os.environ.get("RANK", "0") != "0":
        yield
        return
    from transformers.integrations import MLflowCallback

    tracker = parse_track(track)
    safe = SafeTracker(tracker)
    out = Path(out_dir)
    tags = {"promptopt.kind": "bpo-train", "promptopt.run_dir": str(out.resolve())}
    try:
        out.mkdir(parents=True, exist_ok=True)
        tracker.start(state_file=out / TRACKING_FILE, run_name=out.name, tags=tags, resume=resume)
        uri, run_id = str(tracker.uri), str(tracker.run_id)  # type: ignore[attr-defined]
    except Exception as exc:  # the store cannot even open the run: train without it
        safe.fail(exc)
        trainer.remove_callback(MLflowCallback)
        yield
        return
    if trainer.pop_callback(MLflowCallback) is not None:
        kept = dict(getattr(tracker, "logged_params", {}))
        trainer.add_callback(_guarded_callback(MLflowCallback, safe, kept))
    status = FAILED
    try:
        with _active(uri, run_id, safe):
            yield
        status = FINISHED
    finally:
        _end(tracker, safe, status, out)


def _end(tracker: Any, safe: SafeTracker, status: str, out: Path) -> None:
    """The rewriter's ``bpo_rewriter.json`` (template, training report) as an artifact; the run's
    status. Skipped once the tracker has failed; a failure here is the one warning."""
    from promptopt.optimizers.bpo.templates import CONFIG_FILE

    if not safe.enabled:
        return
    try:
        if status == FINISHED and (out / CONFIG_FILE).exists():
            tracker.log_artifact(out / CONFIG_FILE)
        tracker.end(status)
    except Exception as exc:
        safe.fail(exc)
