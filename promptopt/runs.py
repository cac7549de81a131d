"""The run directory: what makes a run survive crashes, Ctrl-C and resumption.

Layout (names are a public contract)::

    RUN_DIR/
      config.json     everything needed to resume (no secrets), written atomically at start
      journal.jsonl   append-only, one JSON object per event, flushed and fsync'd per record
      result.json     written atomically at the end and at every improvement
      STOP            create this file to end the run cleanly after the current step

Why a journal rather than periodic snapshots: every proposal and score is recorded the moment it
exists, so a SIGKILL loses at most the record being written. A torn last line (killed mid-write)
is detected on open and cut off before anything new is appended, so the file never holds a
half-record glued to a new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promptopt.errors import RunDirError

CONFIG_FILE = "config.json"
JOURNAL_FILE = "journal.jsonl"
RESULT_FILE = "result.json"
STOP_FILE = "STOP"

_SECRET_KEY_RE = re.compile(
    r"(api[_-]?key|secret|password|passwd|authorization|bearer|(access|auth|refresh|api)[_-]?token)", re.I
)
_URL_CRED_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact(value: Any) -> Any:
    """Drop secret-looking keys and credentials embedded in URLs, recursively.

    Why here: config.json and the journal are the files people share; a key must never get into
    them even when a caller passes one by mistake.
    """
    if isinstance(value, dict):
        return {
            k: ("<redacted>" if _SECRET_KEY_RE.search(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _URL_CRED_RE.sub(r"\g<scheme>", value)
    return value


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


def read_journal(path: Path) -> list[dict[str, Any]]:
    """All complete records of a journal. A torn or unparseable *last* line is ignored; a bad
    line elsewhere means the file was edited or corrupted, and is an error."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    records: list[dict[str, Any]] = []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        is_last = i == len(lines) - 1  # no trailing newline: possibly torn
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if is_last:
                break
            raise RunDirError(f"{path}: line {i + 1} is not valid JSON ({exc.__class__.__name__})") from None
        if not isinstance(rec, dict):
            raise RunDirError(f"{path}: line {i + 1} is not a JSON object")
        records.append(rec)
    return records


def _repair_tail(path: Path) -> None:
    """Cut a torn final line off the journal so the next append starts on a fresh line."""
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1  # 0 when the only line is torn
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())


class Run:
    """An open run directory. Create with :meth:`create` or reopen with :meth:`resume`.

    Thread-safe appends: scoring may record from several threads.
    """

    def __init__(self, path: Path, config: dict[str, Any], records: list[dict[str, Any]]) -> None:
        self.path = Path(path)
        self.config = config
        self.records = records
        self._lock = threading.Lock()
        self._fh = open(self.path / JOURNAL_FILE, "a", encoding="utf-8")  # noqa: SIM115

    # -- opening
    @classmethod
    def create(cls, path: str | Path, config: dict[str, Any], *, overwrite: bool = False) -> Run:
        """Start a new run in ``path``. Refuses a directory that already holds a journal (use
        ``resume``, or ``overwrite=True`` to start over)."""
        p = Path(path)
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"cannot write to run directory {p}: {exc.strerror or exc}") from None
        journal = p / JOURNAL_FILE
        if journal.exists() and journal.stat().st_size > 0 and not overwrite:
            raise RunDirError(
                f"{p} already holds a run; pass --resume to continue it or choose another --run-dir"
            )
        if overwrite:
            for name in (JOURNAL_FILE, RESULT_FILE, STOP_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (p / name).unlink()
        atomic_write_json(p / CONFIG_FILE, redact(config))
        run = cls(p, redact(config), [])
        run.record({"event": "run_started", "time": time.time()})
        return run

    @classmethod
    def resume(cls, path: str | Path) -> Run:
        """Reopen a run, repairing a torn journal tail. ``records`` holds what was done."""
        p = Path(path)
        cfg_path = p / CONFIG_FILE
        if not cfg_path.exists():
            raise RunDirError(f"{p} is not a run directory (no {CONFIG_FILE}); nothing to resume")
        try:
            config = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{cfg_path} is unreadable: {exc}") from None
        _repair_tail(p / JOURNAL_FILE)
        records = read_journal(p / JOURNAL_FILE)
        with contextlib.suppress(FileNotFoundError):
            (p / STOP_FILE).unlink()  # a stop file from the last session must not stop this one
        run = cls(p, config, records)
        run.record({"event": "run_resumed", "time": time.time(), "records_before": len(records)})
        return run

    # -- writing
    def record(self, event: dict[str, Any]) -> None:
        """Append one event, durably (flush + fsync) before returning."""
        line = json.dumps(redact(event), ensure_ascii=False, default=str, separators=(",", ":"))
        if "\n" in line:  # json.dumps never emits raw newlines; guard the invariant anyway
            raise ValueError("journal records must serialise to one line")
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.records.append(json.loads(line))

    def write_result(self, result: dict[str, Any]) -> None:
        atomic_write_json(self.path / RESULT_FILE, redact(result))

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
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
