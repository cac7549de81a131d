"""Durable append-only JSONL output (see :class:`AppendLog`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptopt.errors import DataError

# --------------------------------------------------------------------------- resumable output


class AppendLog:
    """An append-only JSONL output that survives being killed: each record is flushed and fsync'd
    before ``append`` returns, and a torn last line (killed mid-write) is cut off on open.

    Why not a :class:`promptopt.runs.Run`: build-data writes one user-named file that is itself the
    product (training data), not a run directory; the durability rules are the same.
    """

    def __init__(self, path: str | Path) -> None:
        from promptopt.runs import read_journal

        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._repair_tail()
            self.records: list[dict[str, Any]] = read_journal(self.path)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise DataError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def _repair_tail(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if not data or data.endswith(b"\n"):
                return
            fh.truncate(data.rfind(b"\n") + 1)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":"))
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.records.append(dict(record))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
