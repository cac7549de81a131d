"""The one durable JSONL journal: append, fsync, torn-tail repair, redaction, replay.

Every resumable thing in promptopt writes through :class:`Journal`: a run directory's
``journal.jsonl`` (:class:`promptopt.runs.Run`), the kept and dropped files of ``bpo build-data``
and the per-test-set files of ``bpo eval``.

Why a journal rather than periodic snapshots: every record is on disk (flushed and fsync'd) the
moment ``append`` returns, so a SIGKILL loses at most the record being written. A torn last line
(killed mid-write) is cut off when the journal is opened, before anything new is appended, so the
file never holds a half-record glued to a new one. Replay (:attr:`Journal.records`,
:func:`read_journal`) is what resumption reads.

Why redaction here: journals are the files people share; a key must never get into them even when
a caller passes one by mistake (e.g. inside a model spec URL).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from promptopt.errors import PromptoptError, RunDirError
from promptopt.records import parse_jsonl

_SECRET_KEY_RE = re.compile(
    r"(api[_-]?key|secret|password|passwd|authorization|bearer|(access|auth|refresh|api)[_-]?token)", re.I
)
_URL_CRED_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact(value: Any) -> Any:
    """Drop secret-looking keys and credentials embedded in URLs, recursively."""
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


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a journal (read-only). A torn or unparseable *last* line is ignored;
    a bad line elsewhere means the file was edited or corrupted, and is a :class:`RunDirError`."""
    p = Path(path)
    if not p.exists():
        return []
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RunDirError(f"cannot read {p}: {exc.strerror or exc}") from None
    return parse_jsonl(data, where=p, error=RunDirError, tolerate_torn_tail=True)


def repair_tail(path: str | Path) -> None:
    """Cut a torn final line off a journal so the next append starts on a fresh line."""
    p = Path(path)
    if not p.exists():
        return
    with open(p, "rb+") as fh:
        data = fh.read()
        if not data or data.endswith(b"\n"):
            return
        fh.truncate(data.rfind(b"\n") + 1)  # 0 when the only line is torn
        fh.flush()
        os.fsync(fh.fileno())


def to_line(record: Mapping[str, Any]) -> str:
    """The one-line JSON form of a (redacted) record, as the journal stores it."""
    line = json.dumps(redact(dict(record)), ensure_ascii=False, default=str, separators=(",", ":"))
    if "\n" in line:  # json.dumps never emits raw newlines; guard the invariant anyway
        raise ValueError("journal records must serialise to one line")
    return line


class Log(Protocol):
    """What :func:`promptopt.parallel.resumable_map` needs of a journal: replay and append."""

    @property
    def records(self) -> Sequence[Mapping[str, Any]]: ...

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]: ...


class Journal:
    """One append-only JSONL file, durable per record. Thread-safe appends.

    Opening repairs a torn tail and replays the file into :attr:`records`; each :meth:`append`
    writes one redacted line, flushes and fsyncs before returning, and adds the record *as stored*
    (redacted, JSON round-tripped) to :attr:`records`, so replay after a crash sees the same data.

    ``error`` is the error class for an unwritable or corrupt file (a run directory's journal
    raises :class:`RunDirError`, a user-named output file a :class:`DataError`).
    """

    def __init__(self, path: str | Path, *, error: type[PromptoptError] = RunDirError) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repair_tail(self.path)
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise error(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.records: list[dict[str, Any]] = parse_jsonl(
            data, where=self.path, error=error, tolerate_torn_tail=True
        )
        try:
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise error(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one record durably (flush + fsync) and return it as stored."""
        line = to_line(record)
        stored = json.loads(line)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.records.append(stored)
        return stored

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RoutedJournal:
    """Several journals replayed and appended as one: each record goes to the journal that
    ``route(record)`` names.

    Why: ``bpo build-data`` keeps its product (the kept records, the training data) and its
    dropped records in two files, yet resumes from both. Replay order is the order of
    ``journals``, so a record in a later journal wins over one with the same id in an earlier one
    (build-data lists the dropped file first: a kept record beats an earlier retryable drop).
    """

    def __init__(self, journals: Mapping[str, Journal], route: Callable[[Mapping[str, Any]], str]) -> None:
        self.journals = dict(journals)
        self._route = route

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for j in self.journals.values() for r in j.records]

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return self.journals[self._route(record)].append(record)

    def close(self) -> None:
        for j in self.journals.values():
            j.close()

    def __enter__(self) -> RoutedJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
