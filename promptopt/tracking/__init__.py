"""Experiment tracking (the ``track`` extra): ``--track mlflow[:TRACKING_URI]`` and its Python twins.

One tracker run per promptopt run, fed from what a run already reports (progress events, journal
records, its result and report), so optimizers import no tracking library; a tracker's failure
never fails or slows a run (:class:`SafeTracker`). Where each command hooks in:
:mod:`~promptopt.tracking.opro` (``opro run``, ``OPRO(track=...)``), :mod:`~promptopt.tracking.hf`
(``bpo train``, ``TrainConfig(track=...)``: the HF Trainer's own MLflow callback) and
:mod:`~promptopt.tracking.bpo` (``bpo eval``, ``bpo build-data``).
"""

from promptopt.tracking.base import (
    TRACKERS,
    TRACKING_FILE,
    Tracker,
    TrackSpec,
    flatten_params,
    parse_track,
)
from promptopt.tracking.mlflow_tracker import MlflowTracker
from promptopt.tracking.safe import SafeTracker

__all__ = [
    "TRACKERS",
    "TRACKING_FILE",
    "MlflowTracker",
    "SafeTracker",
    "TrackSpec",
    "Tracker",
    "flatten_params",
    "parse_track",
]
