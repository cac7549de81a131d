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
* :func:`check_shape` — the one validator of what such a file holds against a dataclass's fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, Literal

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


# --------------------------------------------------------------------------- shapes


def check_shape(
    shape: type,
    value: Any,
    *,
    where: str,
    error: type[PromptoptError] = DataError,
    unknown: Literal["allow", "refuse"] = "allow",
    finite: bool = True,
    hint: str = "",
) -> dict[str, Any]:
    """``value`` (a parsed JSON object) checked against the fields of the dataclass ``shape``;
    returns it unchanged. The first problem is one ``error`` naming ``where``, the key path and
    what was expected: not an object, a required field (one without a default) missing, a value
    of the wrong type.

    Why one validator over the dataclasses the code already has: every edge where a file or a flag
    comes in (``--config``, a run directory's config.json, result.json and journal records) used to
    trust its input with a ``.get`` and a default here, an ``int()`` there, so a wrong shape became
    a silent default or an internal error deep inside a run. The types are written once, as fields.

    Types understood: ``bool``, ``int``, ``float`` (an int is a float; ``finite``: NaN and
    infinities are refused), ``str``, ``None``, ``Any``, ``Literal``, unions, ``list`` / ``tuple``
    / sets / ``Sequence`` (a JSON list), ``dict`` / ``Mapping`` (an object), ``Path`` (a string) and
    nested dataclasses; a field of any other type (a lock, a callback) is not checked.
    ``unknown="refuse"``: keys that are no field are an error (a user's file: a typo must not be
    ignored); ``"allow"`` keeps them (a file written by the program: later versions add keys).
    ``hint`` is appended to every message (what the user can do about it).
    """
    check = _ShapeCheck(where, error, unknown, finite, f"; {hint}" if hint else "")
    check.object(shape, value, "")
    return value  # type: ignore[no-any-return]


@dataclasses.dataclass(frozen=True)
class _ShapeCheck:
    where: str
    error: type[PromptoptError]
    unknown: str
    finite: bool
    hint: str

    def fail(self, path: str, message: str) -> PromptoptError:
        at = f"{self.where}: {path} " if path else f"{self.where} "
        return self.error(f"{at}{message}{self.hint}")

    def object(self, shape: type, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a JSON object, got {_show(value)}")
        fields, hints = _fields(shape)
        for name, f in fields.items():
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and name not in value:
                raise self.error(f"{self.where} has no {_join(path, name)!r}{self.hint}")
        for key, item in value.items():
            if key in fields:
                self.value(hints[key], item, _join(path, key))
            elif self.unknown == "refuse":
                close = difflib.get_close_matches(str(key), list(fields), n=1)
                known = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(fields)}"
                raise self.error(
                    f"{self.where} has an unknown key {_join(path, str(key))!r} ({known}){self.hint}"
                )

    def value(self, hint: Any, value: Any, path: str) -> None:
        if not self.matches(hint, value, path):
            raise self.fail(path, f"must be {_describe(hint, self.finite)}, got {_show(value)}")

    def matches(self, hint: Any, value: Any, path: str) -> bool:
        """Whether ``value`` has the type ``hint``; a nested object or list that has the right
        kind but a wrong part raises for that part (the deepest path is the clearest message)."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is Any:
            return True
        if origin is typing.Union or isinstance(hint, types.UnionType):
            if any(self.matches(a, value, path) for a in args if _is_scalar(a)):
                return True
            containers = [a for a in args if not _is_scalar(a) and _kind_matches(a, value)]
            if containers:
                self.value(containers[0], value, path)  # raises on the part that is wrong
                return True
            return False
        if origin is Literal:
            return any(value == a and type(value) is type(a) for a in args)
        if hint is type(None) or hint is None:
            return value is None
        if hint is bool:
            return isinstance(value, bool)
        if hint is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if hint is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return ok and (not self.finite or math.isfinite(value))
        if hint is str or hint is Path:
            return isinstance(value, str)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            if not isinstance(value, dict):
                return False
            self.object(hint, value, path)
            return True
        if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
            if not isinstance(value, dict):
                return False
            item = args[1] if len(args) == 2 else Any
            for k, v in value.items():
                self.value(item, v, _join(path, str(k)))
            return True
        if origin is not None and isinstance(origin, type) and issubclass(origin, Sequence | AbstractSet):
            if not isinstance(value, list):
                return False
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(value) != len(args):
                    return False
                items = list(args)
            else:
                items = [args[0] if args else Any] * len(value)
            for i, (h, v) in enumerate(zip(items, value, strict=True)):
                self.value(h, v, f"{path}[{i}]")
            return True
        if hint in (dict, list):
            return isinstance(value, hint)
        return True  # not a JSON type (a lock, a callback): nothing a file could hold


@functools.cache
def _fields(shape: type) -> tuple[dict[str, dataclasses.Field[Any]], dict[str, Any]]:
    """A dataclass's fields and resolved type hints (resolved once: a journal has many records)."""
    return {f.name: f for f in dataclasses.fields(shape)}, typing.get_type_hints(shape)


def _is_scalar(hint: Any) -> bool:
    return typing.get_origin(hint) in (None, Literal) and not dataclasses.is_dataclass(hint)


def _kind_matches(hint: Any, value: Any) -> bool:
    """Whether ``value`` is the JSON kind of the container type ``hint`` (object or list)."""
    origin = typing.get_origin(hint) or hint
    if dataclasses.is_dataclass(hint) or (isinstance(origin, type) and issubclass(origin, Mapping)):
        return isinstance(value, dict)
    return isinstance(value, list)


def _describe(hint: Any, finite: bool) -> str:
    """What a type hint asks for, in words a user of a JSON file reads."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(a, finite) for a in args))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    words = {bool: "true or false", int: "an integer", str: "a string", Path: "a string (a path)"}
    if hint in words:
        return words[hint]
    if hint is float:
        return "a finite number" if finite else "a number"
    if hint is type(None) or hint is None:
        return "null"
    if (
        dataclasses.is_dataclass(hint)
        or hint is dict
        or (isinstance(origin, type) and issubclass(origin, Mapping))
    ):
        return "a JSON object"
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"a JSON list of length {len(args)}"
    return "a JSON list"


def _show(value: Any) -> str:
    """A value for a message: short, one line, with its JSON kind when it is a container."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return f"a JSON list of length {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
