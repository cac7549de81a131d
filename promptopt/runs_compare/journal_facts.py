"""Facts every run directory's journal gives the same way: status, start, wall time, curves.

Why apart from the readers: OPRO runs (both proposers) and the BPO optimizer's run directories
write the same ``run_started`` / ``run_resumed`` / ``step_done`` / ``run_finished`` records, so
one reading serves both.

- status: ``running`` while another process holds the run's lock (a shared ``flock`` probe that
  is released at once, never waited on), else ``finished`` when the last session wrote
  ``run_finished``, else ``stopped`` (Ctrl-C, a crash, a budget that stopped a step: ``--resume``
  continues it).
- wall time: per session (from its ``run_started`` / ``run_resumed`` time), until the last record
  of the session that carries a time, or the session's own seconds that ``run_finished`` reports
  (the final report comes after the last step) when longer; summed over sessions, so the time
  between a stop and its resume does not count.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptopt.runs_compare.model import Status

LOCK_FILE = ".lock"
SESSION_EVENTS = ("run_started", "run_resumed")


def is_locked(run_dir: Path) -> bool:
    """Whether a process holds the run directory's lock (it is writing the run). Never creates
    the lock file; where ``fcntl`` does not exist (Windows) nothing is known: False."""
    path = run_dir / LOCK_FILE
    if not path.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def status(run_dir: Path, records: Sequence[Mapping[str, Any]]) -> Status:
    """``running`` / ``finished`` / ``stopped`` (see the module docstring)."""
    if is_locked(run_dir):
        return "running"
    last_session = max((i for i, r in enumerate(records) if r.get("event") in SESSION_EVENTS), default=-1)
    finished = any(r.get("event") == "run_finished" for r in records[last_session + 1 :])
    return "finished" if finished else "stopped"


def started(records: Sequence[Mapping[str, Any]]) -> float | None:
    """The time of the run's first session (seconds since the epoch)."""
    for r in records:
        if r.get("event") in SESSION_EVENTS and _time(r) is not None:
            return _time(r)
    return None


def wall_seconds(records: Sequence[Mapping[str, Any]]) -> float | None:
    """The run's wall time over its sessions (see the module docstring); None without a session."""
    total, begin, last, reported, any_session = 0.0, None, None, 0.0, False

    def close() -> float:
        if begin is None:
            return 0.0
        return max((last or begin) - begin, reported)

    for r in records:
        event = r.get("event")
        if event in SESSION_EVENTS:
            total += close()
            begin, last, reported, any_session = _time(r), None, 0.0, True
            continue
        t = _time(r)
        if t is not None:
            last = t
        if event == "run_finished":
            usage = r.get("usage")
            seconds = usage.get("seconds") if isinstance(usage, Mapping) else None
            if isinstance(seconds, int | float) and not isinstance(seconds, bool):
                reported = max(reported, float(seconds))
    total += close()
    return total if any_session else None


def _time(record: Mapping[str, Any]) -> float | None:
    t = record.get("time")
    return float(t) if isinstance(t, int | float) and not isinstance(t, bool) else None


def step_scores(records: Sequence[Mapping[str, Any]]) -> list[tuple[int, float, Mapping[str, Any]]]:
    """(step, best score after it, the record) of every committed step with a score, in order."""
    out = []
    for r in records:
        if r.get("event") == "step_done" and isinstance(r.get("best_score"), int | float):
            out.append((int(r["step"]), float(r["best_score"]), r))
    return out


def last_usage(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The usage of the newest record that carries one (what a run without result.json spent)."""
    for r in reversed(records):
        usage = r.get("usage")
        if isinstance(usage, Mapping):
            return usage
    return None
