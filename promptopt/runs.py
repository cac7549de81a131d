"""The run directory: what makes a run survive crashes, Ctrl-C and resumption.

Layout (names are a public contract)::

    RUN_DIR/
      config.json     everything needed to resume (no secrets), written atomically at start
      journal.jsonl   append-only, one JSON object per event, flushed and fsync'd per record
      result.json     written atomically at the end and at every improvement
      STOP            create this file to end the run cleanly after the current step
      .lock           held (an OS file lock) by the one process writing the run

A format version: config.json, result.json and the journal's ``run_started`` / ``run_resumed``
records carry ``"format_version": FORMAT_VERSION``, the run-directory format of the promptopt that
wrote them (a database's rule: a file says which format it is in, and a program refuses a format it
does not know instead of misreading it). A file from a newer format is refused with one line that
says so; a file without a version was written by the release before versions, and is read as
format 1. Version 1 and 2 hold the same keys, so a version-1 file is read when its shape is
complete; what "complete" means for a run's config.json is up to the optimizer that reads it (see
:func:`promptopt.optimizers.opro.history.read_opro_run`).

One writer per run directory: :class:`Run` takes an exclusive, non-blocking ``flock`` on ``.lock``
before it writes anything (a database's rule for its files). The OS drops the lock with the process,
so a run killed with SIGKILL never leaves a stale lock behind; a second ``opro run --resume`` on a
running directory gets one line saying so instead of interleaving its records with the first's.

The journal is a :class:`promptopt.journal.Journal` (durable appends, torn-tail repair,
redaction, replay): every proposal and score is recorded the moment it exists, so a SIGKILL loses
at most the record being written. ``redact`` and ``read_journal`` are re-exported from there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from promptopt.errors import RunDirError
from promptopt.journal import Journal, read_journal, redact
from promptopt.records import read_json_object

__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "JOURNAL_FILE",
    "RESULT_FILE",
    "STOP_FILE",
    "Run",
    "StopFlag",
    "atomic_write_json",
    "atomic_write_text",
    "check_run_dir",
    "format_version",
    "read_journal",
    "read_run_config",
    "read_run_result",
    "redact",
]

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"
JOURNAL_FILE = "journal.jsonl"
RESULT_FILE = "result.json"
STOP_FILE = "STOP"
#: The run-directory format this promptopt writes (see the module docstring). Format 1: the
#: release before versions (no ``format_version`` key); 2: the same keys, versioned.
FORMAT_VERSION = 2
FORMAT_KEY = "format_version"
#: the journal records that carry the format version of the process that wrote them
_VERSIONED_EVENTS = ("run_started", "run_resumed")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def format_version(obj: Mapping[str, Any], where: str | Path) -> int:
    """The run-directory format a run file (or journal record) declares: 1 when it declares none
    (the release before versions). ``RunDirError`` naming ``where`` when it is newer than
    :data:`FORMAT_VERSION` or not a version at all."""
    v = obj.get(FORMAT_KEY, 1)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise RunDirError(
            f"{where} has an invalid {FORMAT_KEY} {v!r} (expected an integer from 1 to {FORMAT_VERSION}); "
            "the file was edited or is damaged"
        )
    if v > FORMAT_VERSION:
        raise RunDirError(
            f"{where} was written by a newer promptopt (run-directory format {v}; this one reads formats "
            f"1 to {FORMAT_VERSION}); upgrade promptopt to use this run"
        )
    return v


def journal_format_version(records: Sequence[Mapping[str, Any]], where: str | Path) -> int:
    """The newest format that wrote to a journal (its ``run_started`` / ``run_resumed`` records);
    ``RunDirError`` as :func:`format_version` when one is newer than this promptopt's."""
    return max(
        (
            format_version(r, f"{where} ({r.get('event')} record)")
            for r in records
            if r.get("event") in _VERSIONED_EVENTS
        ),
        default=1,
    )


def read_run_config(path: str | Path) -> dict[str, Any]:
    """The config.json of the run directory ``path``, to continue the run. ``RunDirError`` when
    ``path`` holds no run, cannot be written to, or its config is unreadable, not a JSON object or
    from a newer format (its shape is the optimizer's to check)."""
    p = Path(path)
    cfg_path = p / CONFIG_FILE
    if not cfg_path.exists():
        raise RunDirError(f"{p} is not a run directory (no {CONFIG_FILE}); nothing to resume")
    if not os.access(p, os.W_OK | os.X_OK):  # before anything is loaded to continue it
        raise RunDirError(f"cannot continue the run in {p}: the directory is not writable")
    cfg = read_json_object(cfg_path, error=RunDirError, what="run config")
    format_version(cfg, cfg_path)
    return cfg


def read_run_result(path: str | Path) -> dict[str, Any]:
    """The result.json of the run directory ``path`` ({} when none is written yet); ``RunDirError``
    when it is unreadable, not a JSON object or from a newer format."""
    res_path = Path(path) / RESULT_FILE
    if not res_path.exists():
        return {}
    result = read_json_object(res_path, error=RunDirError, what="run result")
    format_version(result, res_path)
    return result


def check_run_dir(path: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse, with one line and before anything is loaded or written, a directory a new run
    cannot go into: a file, under a file, not writable, or holding a run already (unless
    ``overwrite``). :meth:`Run.create` checks again when it writes; a caller that loads models
    first (the CLI) calls this before them, so a typo costs no model load."""
    p = Path(path)
    try:
        if p.exists() and not p.is_dir():
            raise RunDirError(f"run directory {p} is a file, not a directory; choose another --run-dir")
        existing = p
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise RunDirError(f"cannot create run directory {p}: {existing} is a file, not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RunDirError(f"cannot write to run directory {p}: {existing} is not writable")
        if not overwrite and _holds_run(p):
            raise RunDirError(_HOLDS_RUN.format(p=p))
    except OSError as exc:
        raise RunDirError(f"cannot write to run directory {p}: {exc.strerror or exc}") from None
    return p


_HOLDS_RUN = (
    "{p} already holds a run; pass --resume to continue it, --overwrite to start over, "
    "or choose another --run-dir"
)


def _stamped(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` redacted, with this format's version as its first key (what a reader checks first)."""
    return {FORMAT_KEY: FORMAT_VERSION, **{k: v for k, v in redact(dict(obj)).items() if k != FORMAT_KEY}}


def _holds_run(path: Path) -> bool:
    journal = path / JOURNAL_FILE
    return journal.exists() and journal.stat().st_size > 0


class Run:
    """An open run directory. Create with :meth:`create` or reopen with :meth:`resume`.

    Thread-safe appends: scoring may record from several threads.
    """

    def __init__(self, path: Path, config: dict[str, Any], lock: Any = None) -> None:
        self.path = Path(path)
        self.config = config
        self._lock = lock if lock is not None else lock_run_dir(self.path)
        try:
            self.journal = Journal(self.path / JOURNAL_FILE, error=RunDirError)
        except BaseException:
            self._lock.close()
            raise

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every journal record so far (replayed on resume, then appended to), as stored."""
        return self.journal.records

    # -- opening
    @classmethod
    def create(cls, path: str | Path, config: dict[str, Any], *, overwrite: bool = False) -> Run:
        """Start a new run in ``path``. Refuses a directory that already holds a journal (use
        ``resume``, or ``overwrite=True`` to start over)."""
        p = check_run_dir(path, overwrite=overwrite)
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"cannot write to run directory {p}: {exc.strerror or exc}") from None
        lock = lock_run_dir(p)
        if not overwrite and _holds_run(p):  # again under the lock: another process may have started
            lock.close()
            raise RunDirError(_HOLDS_RUN.format(p=p))
        if overwrite:
            for name in (JOURNAL_FILE, RESULT_FILE, STOP_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (p / name).unlink()
        stamped = _stamped(config)
        atomic_write_json(p / CONFIG_FILE, stamped)
        run = cls(p, stamped, lock)
        run.record({"event": "run_started", FORMAT_KEY: FORMAT_VERSION, "time": time.time()})
        return run

    @classmethod
    def resume(cls, path: str | Path) -> Run:
        """Reopen a run, repairing a torn journal tail. ``records`` holds what was done.
        ``RunDirError`` before anything is appended when config.json or the journal is from a
        newer format (the shape of what they hold is the optimizer's to check)."""
        p = Path(path)
        config = read_run_config(p)
        lock = lock_run_dir(p)  # before the stop file goes: it may be the running process's
        run = cls(p, config, lock)  # repairs a torn journal tail and replays the journal
        try:
            journal_format_version(run.records, p / JOURNAL_FILE)
        except BaseException:
            run.close()
            raise
        with contextlib.suppress(FileNotFoundError):
            (p / STOP_FILE).unlink()  # a stop file from the last session must not stop this one
        before = len(run.records)
        record = {"event": "run_resumed", FORMAT_KEY: FORMAT_VERSION, "time": time.time()}
        run.record({**record, "records_before": before})
        return run

    # -- writing
    def record(self, event: dict[str, Any]) -> None:
        """Append one event, durably (flush + fsync) before returning."""
        self.journal.append(event)

    def write_result(self, result: dict[str, Any]) -> None:
        """Replace result.json (atomically), stamped with the format version."""
        atomic_write_json(self.path / RESULT_FILE, _stamped(result))

    def events(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        """Recorded events, optionally only those whose ``event`` field equals ``kind``."""
        for r in self.records:
            if kind is None or r.get("event") == kind:
                yield r

    # -- stopping
    @property
    def stop_file(self) -> Path:
        return self.path / STOP_FILE

    def stop_requested(self) -> bool:
        return self.stop_file.exists()

    def close(self) -> None:
        try:
            self.journal.close()
        finally:
            self._lock.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lock_run_dir(path: Path) -> Any:
    """An open file holding an exclusive ``flock`` on ``path/.lock`` (close it to release), or a
    RunDirError when another process holds it. Where ``fcntl`` does not exist (Windows) the file is
    opened without a lock."""
    try:
        fh = open(path / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the run's lifetime
    except OSError as exc:
        raise RunDirError(f"cannot write to run directory {path}: {exc.strerror or exc}") from None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return fh
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise RunDirError(
            f"{path} is in use by another promptopt process (a run is writing it); wait for it to end, "
            f"or stop it cleanly with: touch {path / STOP_FILE}"
        ) from None
    return fh


class StopFlag:
    """A cooperative stop signal: set by Ctrl-C (first press) or by code; polled between steps.

    Why not let KeyboardInterrupt fly: it would abort in the middle of scoring and lose the
    step. The first Ctrl-C asks to stop after the current step; a second one interrupts at once.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str = "stopped") -> None:
        self.reason = self.reason or reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    @contextlib.contextmanager
    def handle_sigint(self) -> Iterator[StopFlag]:
        """Install a SIGINT handler for the duration (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum: int, frame: object) -> None:
            if self.is_set():
                raise KeyboardInterrupt
            self.set("interrupted")

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
