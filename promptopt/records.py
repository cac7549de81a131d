"""The one JSON / JSONL reader: every file of records or settings the library reads goes through here.

Why one module: the journal replay, the input readers (preference pairs, test sets, built data) and
the settings files of resumable jobs used to parse JSON lines each their own way, with different
line splitting (``str.splitlines`` also splits on U+2028 inside a record written with
``ensure_ascii=False``) and different messages. One parser gives one behaviour and one message.

* :func:`parse_jsonl` — the line parser (optionally tolerating a torn last line, for journals).
* :func:`read_text`, :func:`parse_json`, :func:`read_json` — a whole file's text or JSON value,
  with the error type the caller raises (``DataError`` for input, ``ConfigError`` for settings,
  ``RunDirError`` for run files) and one message per failure.
* :func:`read_json_object` — a settings file that must hold one JSON object.
* :func:`read_records` — rows of a ``.json`` list or a ``.jsonl`` file (user input).
* :func:`load_rows` — a file, a local dataset folder or a Hugging Face dataset id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from promptopt.errors import DataError, PromptoptError


def parse_jsonl(
    data: bytes | str,
    *,
    where: str | Path,
    error: type[PromptoptError] = DataError,
    tolerate_torn_tail: bool = False,
) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL text, one per ``\\n``-separated line; blank lines are skipped.

    ``tolerate_torn_tail``: an unparseable *last* line without a trailing newline is what a process
    killed mid-write leaves, and is ignored (journals). A bad line anywhere else means the file was
    edited or corrupted and raises ``error`` naming the line.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    lines = raw.split(b"\n")
    records: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if tolerate_torn_tail and i == len(lines) - 1:  # no newline after it: possibly torn
                break
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            raise error(f"{where}: line {i + 1} is not valid JSON ({detail})") from None
        if not isinstance(rec, dict):
            raise error(f"{where}: line {i + 1} is not a JSON object")
        records.append(rec)
    return records


def read_text(path: str | Path, *, error: type[PromptoptError] = DataError, what: str = "file") -> str:
    """The UTF-8 text of ``path``; ``error`` naming it (``what``) when it is missing or unreadable."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {p} is unreadable: {exc}") from None


def parse_json(text: str, *, where: str | Path, error: type[PromptoptError] = DataError) -> Any:
    """The JSON value of ``text`` (a whole file's); ``error`` naming ``where`` when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where} is unreadable (not valid JSON: {exc})") from None


def read_json(path: str | Path, *, error: type[PromptoptError] = DataError, what: str = "file") -> Any:
    """The JSON value held by ``path``; ``error`` when it is missing, unreadable or not JSON."""
    p = Path(path)
    return parse_json(read_text(p, error=error, what=what), where=f"{what} {p}", error=error)


def read_json_object(
    path: str | Path, *, error: type[PromptoptError] = DataError, what: str = "file"
) -> dict[str, Any]:
    """The JSON object held by ``path`` (a config or settings file); ``error`` when it is missing,
    unreadable, not JSON or not an object."""
    data = read_json(path, error=error, what=what)
    if not isinstance(data, dict):
        raise error(f"{what} {Path(path)} must hold a JSON object")
    return data


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``.json`` (a list of objects, or an object holding one such list) or ``.jsonl`` file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"input file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {p}: {exc}") from None
    if p.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if p.suffix.lower() == ".json":
                raise DataError(f"{p} is not valid JSON: {exc}") from None
            return parse_jsonl(text, where=p)  # a JSONL file whose first row is a list
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(f"{p}: expected a JSON list of objects")
            data = lists[0]
        if not isinstance(data, list):
            raise DataError(f"{p}: expected a JSON list of objects")
        for i, r in enumerate(data):
            if not isinstance(r, dict):
                raise DataError(f"{p}: row {i + 1} is not a JSON object")
        return data
    return parse_jsonl(text, where=p)


def load_hf_rows(source: str, *, split: str = "train", data_files: Any = None) -> list[dict[str, Any]]:
    """Rows of a Hugging Face dataset id, or of a local folder that ``datasets`` can read.

    Why keep this path: real users are online; here it is exercised with local folders.
    """
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a core dependency
        raise DataError("reading a Hugging Face dataset needs the 'datasets' package") from None
    try:
        ds = datasets.load_dataset(source, data_files=data_files, split=split)
    except Exception as exc:  # datasets raises many unrelated types for "not found / offline"
        raise DataError(
            f"cannot load Hugging Face dataset {source!r} (split {split!r}): "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    return [dict(r) for r in ds]


def load_rows(source: str | Path, *, split: str = "train") -> list[dict[str, Any]]:
    """A JSON/JSONL file, a local dataset folder, or a Hub dataset id (``owner/name``)."""
    p = Path(source).expanduser()
    if p.is_file():
        return read_records(p)
    if p.is_dir():
        return load_hf_rows(str(p), split=split)
    text = str(source)
    if text.endswith((".json", ".jsonl")) or text.startswith((".", "/", "~")):
        raise DataError(f"input file {p} does not exist")
    if text.count("/") != 1:
        raise DataError(f"{text!r} is neither an existing file nor a Hugging Face dataset id (owner/name)")
    return load_hf_rows(text, split=split)
