"""The user's own data: data files, the input and target fields, templates and ``@FILE`` options.

Why a module of its own: a built-in benchmark knows its columns, the user's file does not. This
module turns a file, a folder's split or a Hugging Face split into plain rows, decides which
columns are the input and the gold answer, and renders each row's input text. It knows nothing of
:class:`~promptopt.tasks.instructions.datasets.Example` (that module builds them from what this one
returns), so the two import in one direction only.

**Data files** (:func:`read_data_file`), chosen by the name's ending (:data:`DATA_FILE_READERS`), all
read through the ``datasets`` library's packaged builders (``datasets.load_dataset("json" | "csv" |
"parquet", data_files=..., split="train")``, offline for local files, cached in the ``datasets``
cache like any other load; nothing global is set):

- ``.jsonl`` — JSON Lines (one object a line).
- ``.json`` — a JSON array of objects; JSON Lines despite the name; or an object holding one list of
  objects (``{"data": [...]}``, ``{"examples": [...]}``: the list is read with ``field=``).
- ``.csv`` / ``.tsv`` — a header line, then rows (``.tsv``: ``delimiter="\\t"``). Every column is
  read as text: a CSV has no types, and guessing them turns ``007`` into ``7`` and an integer column
  with one blank cell into ``7.0``. An empty cell is null.
- ``.parquet`` — typed columns, read as they are.

The file is checked first, so that an empty file, bad JSON (naming the line) or a missing file is a
one-line :class:`~promptopt.errors.DataError`, not a traceback from deep inside a builder.

**Fields** (:func:`choose_fields`). ``input_field`` is one column, several (a list or a
comma-separated string) or None: ``input`` if present, else the first present of ``question``,
``prompt``, ``instruction``, ``query``, ``text`` (:data:`INPUT_FIELD_NAMES`). ``target_field`` is
one column or None: ``target`` if present, else the first present of ``answer``, ``label``,
``output``, ``response``, ``completion`` (:data:`TARGET_FIELD_NAMES`), skipping columns the user
made inputs; if none is present the data has **no gold answers** (whether the metric can do without them is the task's check). A column
named explicitly must exist (a :class:`~promptopt.errors.DataError` naming ``--input-field`` /
``--target-field``); a column cannot be both an input and the target.

**Templates** (:func:`check_template`, :func:`render_input`). ``template`` is a Python format string
over the row's columns, ``"Context: {context}\\nQuestion: {question}"``, rendered with
``str.format_map`` over the row's values as text (null as an empty string). Only plain ``{name}``
fields and ``{{`` / ``}}`` escapes are allowed: attribute or index access (``{a.b}``, ``{a[0]}``),
conversions (``{a!r}``) and format specs (``{a:>10}``) are refused with a
:class:`~promptopt.errors.ConfigError` before anything is rendered, because they reach into the
values' objects and the template may come from anywhere. A template names the input columns itself
(so it is given instead of ``input_field``, not with it) and may not show the target column (the
gold answer would be in the prompt). Without a template, one input field gives its value as is and
several give ``"name: value"`` lines in the order given. A row whose input fields are all empty or
null is a :class:`~promptopt.errors.DataError` naming the row; one null field among several renders
as an empty string (an optional context column).

**Text options** (:func:`read_text_option`): ``@FILE`` reads a file, ``@@...`` is a literal leading
``@``; the CLI uses it for ``--template`` and ``--system-prompt``. :func:`~promptopt.tasks.
instructions.datasets.load_dataset` takes the template's text (or a :class:`pathlib.Path` to read),
so the text recorded in a run is the text that was used.
"""

from __future__ import annotations

import csv
import json
import os
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, DataError
from promptopt.records import parse_jsonl, read_text

#: input columns looked for, in order, when ``input_field`` is not given
INPUT_FIELD_NAMES: tuple[str, ...] = ("input", "question", "prompt", "instruction", "query", "text")
#: gold-answer columns looked for, in order, when ``target_field`` is not given
TARGET_FIELD_NAMES: tuple[str, ...] = ("target", "answer", "label", "output", "response", "completion")
#: keys of a ``.json`` object that hold the rows, preferred when the object holds several lists
_JSON_ROW_KEYS: tuple[str, ...] = ("data", "examples", "rows", "records", "instances")
#: ``datasets`` packaged builders: as an ``hf:`` id they would read data files from the working
#: directory (whatever happens to be there), so they are refused with a hint to give the path
HF_BUILDER_NAMES: frozenset[str] = frozenset(
    {"csv", "json", "jsonl", "parquet", "text", "arrow", "pandas", "sql", "xml", "webdataset",
     "imagefolder", "audiofolder", "videofolder"}
)  # fmt: skip


@dataclass(frozen=True)
class Table:
    """Rows of one split as loaded, and the column names in their order (the union over rows)."""

    rows: tuple[dict[str, Any], ...]
    columns: tuple[str, ...]


def table_of(rows: Iterable[Mapping[str, Any]]) -> Table:
    """A :class:`Table` from rows (a ``datasets`` split, parsed JSON): rows as dicts, columns in the
    order they first appear (JSON rows need not all have the same keys)."""
    out = tuple(dict(r) for r in rows)
    columns = dict.fromkeys(name for r in out for name in r)
    return Table(out, tuple(str(c) for c in columns))


# --------------------------------------------------------------------------- data files


def _one_line(exc: BaseException) -> str:
    """An exception (and its cause, where a builder wraps the real one) as one short line."""
    inner = exc.__cause__ or exc.__context__
    text = f"{type(exc).__name__}: {exc}"
    if inner is not None and str(inner) and str(inner) not in str(exc):
        text += f" ({type(inner).__name__}: {inner})"
    return " ".join(text.split())[:300]


def _load_builder(builder: str, path: Path, **kwargs: Any) -> Table:
    """One local file through a ``datasets`` packaged builder, its failures as a DataError."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise DataError(f"the `datasets` package is needed to read {path}: {exc}") from None
    try:
        loaded = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure of the builder is a problem of this file
        raise DataError(f"could not read {path} as {builder}: {_one_line(exc)}") from None
    table = table_of(loaded)
    if not table.rows:
        raise DataError(f"data file {path} holds no rows")
    return table


def _rows_key(path: Path, data: dict[str, Any]) -> str | None:
    """The key of a ``.json`` object whose value is the list of rows (None: the object is a row)."""
    lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if len(lists) == 1:
        return lists[0]
    for key in _JSON_ROW_KEYS:
        if key in lists:
            return key
    if lists:
        raise DataError(
            f"{path} holds several lists of rows ({', '.join(lists)}); keep one, or give a JSON array or JSON Lines"
        )
    return None


def _read_json(path: Path) -> Table:
    """``.json`` / ``.jsonl``: the text is checked here (bad JSON names the line), then read by the
    ``datasets`` json builder; an object holding the rows is read with ``field=``."""
    text = read_text(path, what="data file")
    if not text.strip():
        raise DataError(f"data file {path} is empty")
    if path.suffix.lower() == ".json":
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # not one JSON value: JSON Lines despite the name (checked below)
        else:
            if isinstance(whole, list):
                if not whole:
                    raise DataError(f"data file {path} holds an empty list")
                if not all(isinstance(x, dict) for x in whole):
                    raise DataError(f"{path} must hold a list of JSON objects (one per row)")
                return _load_builder("json", path)
            if not isinstance(whole, dict):
                raise DataError(f"{path} must hold JSON objects (an array of them, or JSON Lines)")
            key = _rows_key(path, whole)
            if key is not None:
                return _load_builder("json", path, field=key)
    parse_jsonl(text, where=path)  # a DataError naming the first bad line
    return _load_builder("json", path)


def _csv_header(path: Path, delimiter: str) -> list[str]:
    text = read_text(path, what="data file")
    if not text.strip():
        raise DataError(f"data file {path} is empty")
    header = next(csv.reader(text.lstrip("\ufeff").splitlines()[:1] or [""], delimiter=delimiter), [])
    names = [h.strip() for h in header]
    if not any(names):
        raise DataError(f"{path}: the first line must name the columns")
    if "" in names or len(set(names)) != len(names):
        raise DataError(f"{path}: the header line has an empty or repeated column name: {header}")
    if len(text.strip().splitlines()) < 2:
        raise DataError(f"data file {path} has a header but no rows")
    return header


def _read_delimited(path: Path, delimiter: str) -> Table:
    """``.csv`` / ``.tsv`` with every column read as text (see the module docstring)."""
    import datasets

    header = _csv_header(path, delimiter)
    features = datasets.Features({name: datasets.Value("string") for name in header})
    return _load_builder("csv", path, delimiter=delimiter, features=features)


def _read_parquet(path: Path) -> Table:
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty")
    return _load_builder("parquet", path)


#: file name ending → reader (a registry: a new format is one entry)
DATA_FILE_READERS: Mapping[str, Callable[[Path], Table]] = {
    ".jsonl": _read_json,
    ".json": _read_json,
    ".csv": lambda p: _read_delimited(p, ","),
    ".tsv": lambda p: _read_delimited(p, "\t"),
    ".parquet": _read_parquet,
}
DATA_FILE_HINT = "a path to an existing .jsonl/.json/.csv/.tsv/.parquet file, or jsonl:PATH"


def is_data_file_name(path: str | os.PathLike[str]) -> bool:
    """Whether the name ends like a data file this module reads (whether or not it exists)."""
    return Path(path).suffix.lower() in DATA_FILE_READERS


def read_data_file(path: str | os.PathLike[str]) -> Table:
    """The rows of one data file (see the module docstring for the formats)."""
    p = Path(path).expanduser()
    reader = DATA_FILE_READERS.get(p.suffix.lower())
    if reader is None:
        raise DataError(
            f"cannot read {p}: unknown data file type {p.suffix or '(no extension)'!r}; give {DATA_FILE_HINT}"
        )
    if not p.is_file():
        raise DataError(f"data file {p} does not exist" + (" (it is a folder)" if p.is_dir() else ""))
    return reader(p)


# --------------------------------------------------------------------------- text options


def read_text_option(value: str | None, what: str) -> str | None:
    """A text option that may name a file: ``@FILE`` is the file's text (one final line break
    dropped: editors add it), ``@@...`` is the literal text ``@...``, anything else is itself.

    ``what`` names the option in messages ("--template"). A missing or unreadable file is a
    DataError; a bare ``@`` is a ConfigError.
    """
    if value is None or not value.startswith("@"):
        return value
    if value.startswith("@@"):
        return value[1:]
    name = value[1:].strip()
    if not name:
        raise ConfigError(f"{what} @FILE needs a file name after '@' (write @@ for a literal '@')")
    path = Path(name).expanduser()
    if path.is_dir():
        raise DataError(f"{what} file {path} is a folder")
    text = read_text(path, what=f"{what} file")
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


# --------------------------------------------------------------------------- fields and templates


@dataclass(frozen=True)
class FieldChoice:
    """Which columns make an example: ``inputs`` (in order; with a template, the fields it names),
    ``target`` (None: no gold answers), the ``template`` (None: the inputs' values), and whether
    each was given by the user or found by name (for messages and the split's note)."""

    inputs: tuple[str, ...]
    target: str | None
    template: str | None = None
    inputs_given: bool = False
    target_given: bool = False


def parse_input_fields(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``input_field`` as names: one, a comma-separated string or a list; None stays None (auto)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        raise ConfigError(f"input_field must be a column name or a list of names, got {value!r}")
    names = tuple(p.strip() for p in parts)
    if not names or any(not n for n in names):
        raise ConfigError(f"input_field has an empty column name: {value!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"input_field names a column twice: {', '.join(names)}")
    return names


def template_fields(template: str) -> tuple[str, ...]:
    """The column names a template uses, in order of first use; a ConfigError for anything but
    plain ``{name}`` fields (see the module docstring for why)."""
    if not isinstance(template, str):
        raise ConfigError(f"template must be text, got {type(template).__name__}")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"template is not a valid format string ({exc}); write {{{{ and }}}} for braces"
        ) from None
    names: dict[str, None] = {}
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not name.strip() or name.isdigit():
            raise ConfigError(f"template field {shown} must name a column, e.g. {{question}}")
        if "." in name or "[" in name or conversion or spec:
            raise ConfigError(
                f"template field {shown} is not allowed: only plain {{column}} fields "
                "(no attribute or index access, conversions or format specs); write {{ and }} for braces"
            )
        names[name] = None
    if not names:
        raise ConfigError("template names no column; use {column} fields, e.g. 'Question: {question}'")
    return tuple(names)


def _columns_text(columns: Sequence[str]) -> str:
    return ", ".join(columns) if columns else "(none)"


def check_template(template: str, columns: Sequence[str], where: str) -> tuple[str, ...]:
    """The template's fields, each checked to be a column (a DataError listing the columns)."""
    names = template_fields(template)
    missing = [n for n in names if n not in columns]
    if missing:
        raise DataError(
            f"{where}: the template uses {{{missing[0]}}}, which is not a column; "
            f"columns: {_columns_text(columns)}"
        )
    return names


def choose_fields(
    columns: Sequence[str],
    *,
    input_field: str | Sequence[str] | None,
    target_field: str | None,
    template: str | None,
    where: str,
) -> FieldChoice:
    """The input columns, the target column (or None) and the template of a table with
    ``columns`` (see the module docstring for the rules)."""
    given = parse_input_fields(input_field)
    if target_field is not None and (not isinstance(target_field, str) or not target_field.strip()):
        raise ConfigError(f"target_field must be a column name, got {target_field!r}")
    target_name = target_field.strip() if target_field is not None else None
    if target_name is not None and target_name not in columns:
        raise DataError(
            f"{where} has no column {target_name!r} for the gold answers; columns: "
            f"{_columns_text(columns)} (choose with --target-field, or leave it out when there are none)"
        )
    if template is not None:
        if given is not None:
            raise ConfigError(
                "give either a template or input fields, not both: the template names the input columns"
            )
        inputs = check_template(template, columns, where)
    elif given is not None:
        missing = [n for n in given if n not in columns]
        if missing:
            raise DataError(
                f"{where} has no column {missing[0]!r}; columns: {_columns_text(columns)} "
                "(choose with --input-field)"
            )
        inputs = given
    else:
        found = next((n for n in INPUT_FIELD_NAMES if n in columns and n != target_name), None)
        if found is None:
            raise DataError(
                f"{where} has no column {INPUT_FIELD_NAMES[0]!r} (nor {', '.join(INPUT_FIELD_NAMES[1:])}) for the "
                f"input; columns: {_columns_text(columns)}; name it with --input-field (several: a,b) or --template"
            )
        inputs = (found,)
    if target_name is None and target_field is None:
        target_name = next((n for n in TARGET_FIELD_NAMES if n in columns and n not in inputs), None)
    if target_name is not None and target_name in inputs:
        shown = "the template uses" if template is not None else "the input fields include"
        raise ConfigError(
            f"{shown} the target column {target_name!r}: the gold answer would be shown to the model"
        )
    return FieldChoice(inputs, target_name, template, given is not None or template is not None,
                       target_field is not None)  # fmt: skip


def is_empty(value: Any) -> bool:
    """Null, or text that is only whitespace (a missing cell, a blank answer)."""
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def render_input(row: Mapping[str, Any], choice: FieldChoice, where: str) -> str:
    """The input text of one row (``where`` names it in the DataError for an empty input)."""
    values = [row.get(name) for name in choice.inputs]
    if all(is_empty(v) for v in values):
        fields = " and ".join(repr(n) for n in choice.inputs)
        raise DataError(f"{where} has an empty or null {fields} field (the input)")
    if choice.template is not None:
        return choice.template.format_map({n: _text(v) for n, v in zip(choice.inputs, values, strict=True)})
    if len(choice.inputs) == 1:
        return _text(values[0])
    return "\n".join(f"{n}: {_text(v)}" for n, v in zip(choice.inputs, values, strict=True))
