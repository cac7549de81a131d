"""Datasets for instruction search: loaders, the common :class:`Example` form, and the splits.

Specs (a constant table, :data:`DATASETS`, no substring guessing), tried in this order:

- ``gsm8k`` — GSM8K; optimise on a subset of the train file, test on the test file.
- ``bbh:<task>`` — one of the 27 BIG-Bench Hard task files (:data:`BBH_TASKS`).
- ``multiarith``, ``aqua`` — MultiArith and AQuA-RAT test (OPRO uses them for transfer only).
- ``jsonl:PATH`` — your JSON Lines file, read line by line (values exactly as the JSON has them).
- ``file:PATH`` or a bare path to an existing file — your data file: ``.jsonl``, ``.json`` (an array,
  JSON Lines, or ``{"data": [...]}``), ``.csv``, ``.tsv``, ``.parquet``, read by the ``datasets``
  library (see :mod:`.user_data`). A bare name ending like a data file that does not exist is a
  DataError saying so.
- a folder (bare, ``file:DIR`` or ``hf:DIR``) — a ``save_to_disk`` folder, or a folder of data files
  (``datasets.load_dataset(DIR)``: files named ``train*`` / ``test*`` become those splits).
- ``hf:ID`` or a bare ``owner/name`` — a Hugging Face dataset through ``datasets.load_dataset``.
  ``hf:csv``, ``hf:json``, ``hf:parquet``, ``hf:text`` (the library's file builders) are refused:
  they would read whatever data files sit in the working directory; give the file's path.

Anything else is an UnknownNameError (with a hint when it may have been meant as a data file).

**Your own data** (every spec but the four benchmarks; :attr:`Dataset.user` is True):
``input_field`` (one column, several, or None to find ``input`` / ``question`` / ``prompt`` /
``instruction`` / ``query`` / ``text``), ``target_field`` (one column, or None to find ``target`` /
``answer`` / ``label`` / ``output`` / ``response`` / ``completion``; none found means **no gold
answers**: every ``Example.target`` is None and whether the metric can do without is the task's
check), and ``template`` (``"Context: {context}\\nQuestion: {question}"``, plain ``{column}`` fields
only) make each row's input text: see :mod:`.user_data` for the rules. Every example keeps all of its
row's columns, values as loaded (``Example.columns``, read as ``example.fields``), for a user's metric.
A gold answer written as a GSM8K-style rationale keeps what follows the last ``####``; a row with an
``options`` list (and no template) gets AQuA-style ``(A) ...`` lines. The answer kind for the ``auto``
grader is ``answer_type``, else inferred from the gold answers
(:func:`~promptopt.evaluators.answers.infer_kind`), else ``text`` when there are none. The benchmarks
have fixed columns: ``input_field`` / ``target_field`` are ignored for them and a ``template`` is refused.

Where the built-in data comes from: with a data directory (``data_dir=`` / ``--data-dir``, else
``$PROMPTOPT_DATA_DIR``) the files of the OPRO repository's ``data/`` folder are read from it
(``gsm_data/*.tsv``, ``BIG-Bench-Hard-data/*.json``, ``MultiArith-data/MultiArith.json``,
``AQuA-data/AQuA.json``); without one, the same data comes from the Hub: ``openai/gsm8k``
(config ``main``), ``lukaemon/bbh`` (config = task, split ``test``), ``ChilleD/MultiArith``
(train + test, columns ``question`` / ``final_ans``) and ``deepmind/aqua_rat`` (config ``raw``,
split ``test``, the same 254 rows as OPRO's file).

Splits (:func:`split_dataset`, :class:`Splits`, defined in :mod:`.splits` and importable from here):
OPRO's seeded recipe for the benchmarks, train 50 % / validation 20 % / test the rest for your own
data, and ``train`` / ``val`` / ``test`` counts or fractions to set them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, DataError, UnknownNameError
from promptopt.evaluators.answers import (
    ANSWER_KINDS,
    AnswerKind,
    format_number,
    infer_kind,
    normalize_text,
    parse_options,
)
from promptopt.records import parse_jsonl, read_json, read_text
from promptopt.tasks.instructions.splits import (
    MIN_USER_POOL,
    USER_TRAIN_FRACTION,
    USER_VAL_FRACTION,
    Splits,
    SplitSize,
    parse_split_size,
    split_dataset,
)
from promptopt.tasks.instructions.user_data import (
    DATA_FILE_HINT,
    HF_BUILDER_NAMES,
    FieldChoice,
    Table,
    choose_fields,
    is_data_file_name,
    is_empty,
    read_data_file,
    read_text_option,
    render_input,
    table_of,
    template_fields,
)

__all__ = [
    "BBH_TASKS",
    "DATASETS",
    "DATA_DIR_ENV",
    "MIN_USER_POOL",
    "USER_TRAIN_FRACTION",
    "USER_VAL_FRACTION",
    "Dataset",
    "Example",
    "SplitSize",
    "Splits",
    "bbh_answer_kind",
    "load_dataset",
    "parse_split_size",
    "read_text_option",
    "resolve_data_dir",
    "split_dataset",
]

DATA_DIR_ENV = "PROMPTOPT_DATA_DIR"

BBH_TASKS: tuple[str, ...] = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa",
    "dyck_languages", "formal_fallacies", "geometric_shapes", "hyperbaton",
    "logical_deduction_five_objects", "logical_deduction_seven_objects",
    "logical_deduction_three_objects", "movie_recommendation", "multistep_arithmetic_two",
    "navigate", "object_counting", "penguins_in_a_table", "reasoning_about_colored_objects",
    "ruin_names", "salient_translation_error_detection", "snarks", "sports_understanding",
    "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects",
    "web_of_lies", "word_sorting",
)  # fmt: skip
_BBH_NUMBER = frozenset({"object_counting", "multistep_arithmetic_two"})
_BBH_BOOLEAN = frozenset(
    {
        "boolean_expressions",
        "causal_judgement",
        "formal_fallacies",
        "navigate",
        "sports_understanding",
        "web_of_lies",
    }
)
_BBH_TEXT = frozenset({"dyck_languages", "word_sorting"})


def bbh_answer_kind(task: str) -> AnswerKind:
    """The answer kind of a BBH task (the same grouping as OPRO's scorer)."""
    if task in _BBH_NUMBER:
        return "number"
    if task in _BBH_BOOLEAN:
        return "boolean"
    if task in _BBH_TEXT:
        return "text"
    return "choice"


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Example:
    """One question with its gold answer (or None: a prompts-only dataset has none).

    ``target`` is the gold answer as the dataset writes it ("72", "(B)", "Yes", "] ]"), shown in
    meta-prompt exemplars; ``kind`` says how to grade it. For ``choice``, ``options`` are the
    (letter, text) pairs and ``accepted`` the letters that count as right (one, except for the
    BBH targets written as option text that the file split into several options).
    """

    id: str
    input: str
    target: str | None
    kind: AnswerKind
    options: tuple[tuple[str, str], ...] = ()
    accepted: tuple[str, ...] = ()
    #: the row's columns (name, value) as loaded, for the user's metric and templates (read them
    #: through :attr:`fields`); a tuple, and left out of the hash, so that an Example stays hashable
    #: even when a value is a list or a dict (equality still compares them)
    columns: tuple[tuple[str, Any], ...] = field(default=(), hash=False)

    @property
    def fields(self) -> dict[str, Any]:
        """The row's columns by name (``example.fields["label"]`` in a user's metric); for the
        built-in datasets, ``input`` and ``target``."""
        return dict(self.columns) if self.columns else {"input": self.input, "target": self.target}


@dataclass(frozen=True)
class Dataset:
    """Loaded examples before splitting. ``test`` is a separate test file, or None when the test
    set is carved from ``pool``. ``topic`` names the problems for meta-prompts.

    ``user`` marks the user's own data (a file, a folder, an HF dataset): its splits default to
    train 50 % / validation 20 % / test the rest instead of OPRO's recipe (see :mod:`.splits`).
    ``input_fields``, ``target_field`` (None: no gold answers) and ``template`` record how the
    examples were made, for the run's record.
    """

    name: str
    pool: tuple[Example, ...]
    test: tuple[Example, ...] | None
    source: str
    topic: str
    train_ratio: float
    val_ratio: float | None = None  # one-pool datasets: fraction of the pool; None = train size
    user: bool = False
    #: your data under a spec that existed before own-data defaults (``jsonl:PATH``, ``hf:ID``): it
    #: keeps the split recipe it had (train 20 %, validation 10 % of a pool), so runs recorded with
    #: it resume on the same split; a bare path / ``file:PATH`` / folder gets the own-data defaults
    legacy_split: bool = False
    input_fields: tuple[str, ...] = ("input",)
    target_field: str | None = "target"
    template: str | None = None

    @property
    def gold(self) -> bool:
        """Whether every example has a gold answer."""
        return all(e.target is not None for e in (*self.pool, *(self.test or ())))


# --------------------------------------------------------------------------- helpers


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The data directory: the argument, else ``$PROMPTOPT_DATA_DIR``, else None (use the Hub)."""
    raw = os.fspath(data_dir) if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if data_dir is not None else f"${DATA_DIR_ENV}"
        raise DataError(f"data directory {path} (from {origin}) does not exist or is not a directory")
    return path


def _find_file(data_dir: Path, folder: str, name: str) -> Path:
    """``data_dir/folder/name`` (the OPRO layout) or ``data_dir/name``."""
    for candidate in (data_dir / folder / name, data_dir / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder}/{name} not found under data directory {data_dir}")


def _number_text(value: Any) -> str:
    """A numeric gold answer as canonical text ("39" for 39.0, "1234" for "1,234")."""
    try:
        return format_number(Decimal(str(value).replace(",", "").strip()))
    except InvalidOperation:
        return str(value).strip()


def _target_text(value: Any) -> str:
    """A gold answer as text; GSM8K-style rationales keep only what follows the last "####"."""
    text = str(value).strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip()
    return text


_LETTERED_OPTION_RE = re.compile(r"^\s*\(?([A-Za-z])\)\s*(.*)$", re.S)


def _with_options(question: str, options: Sequence[Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """AQuA-style options ("A)5", "B)6") appended to the question as "(A) 5" lines."""
    pairs = []
    for i, raw in enumerate(options):
        m = _LETTERED_OPTION_RE.match(str(raw))
        letter, text = (
            (m.group(1).upper(), m.group(2).strip()) if m else (chr(ord("A") + i), str(raw).strip())
        )
        pairs.append((letter, text))
    lines = "\n".join(f"({letter}) {text}" for letter, text in pairs)
    return f"{question.strip()}\nOptions:\n{lines}", tuple(pairs)


def _choice_example(
    ex_id: str, question: str, target: str, options: tuple[tuple[str, str], ...] = ()
) -> Example:
    """A multiple-choice example; a target written as option text maps to the matching option(s).

    Three BBH targets are option text whose options the file split at commas ("Monsters, Inc"
    became "(A) Monsters" and "(B) Inc"): every option of the consecutive run that spells the
    target counts as right, and so does the target text itself.
    """
    options = options or parse_options(question)
    m = re.fullmatch(r"\(?([A-Za-z])\)?", target.strip())
    if m:
        return Example(ex_id, question, target, "choice", options, (m.group(1).upper(),))
    gold = normalize_text(target)
    accepted: tuple[str, ...] = ()
    for i in range(len(options)):
        for j in range(i, len(options)):
            if normalize_text(", ".join(text for _, text in options[i : j + 1])) == gold:
                accepted = tuple(letter for letter, _ in options[i : j + 1])
                break
        if accepted:
            break
    return Example(ex_id, question, target, "choice", options, accepted)


def _make_example(
    ex_id: str, question: str, target: Any, kind: AnswerKind, options: tuple[tuple[str, str], ...] = ()
) -> Example:
    """An example of ``kind``; a None target (no gold answer) is kept as None."""
    if target is None:
        return Example(ex_id, question, None, kind, options)
    if kind == "choice":
        return _choice_example(ex_id, question, str(target).strip(), options)
    text = _number_text(target) if kind == "number" else str(target).strip()
    return Example(ex_id, question, text, kind, options)


# --------------------------------------------------------------------------- Hugging Face


def _load_hub(path: str, name: str | None = None, split: str | None = None) -> Any:
    """``datasets.load_dataset`` (or ``load_from_disk`` for a saved folder) with readable errors."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise DataError(f"the `datasets` package is needed to load {path!r}: {exc}") from None
    local = Path(path).expanduser()
    try:
        if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(local))
            return loaded[split] if split is not None else loaded
        return datasets.load_dataset(path, name, split=split)
    except Exception as exc:  # noqa: BLE001 - any failure of the hub/loader is a data problem here
        detail = " ".join(str(exc).split())[:300]
        hint = f" (or pass --data-dir / ${DATA_DIR_ENV} for the local OPRO files)" if "/" in path else ""
        raise DataError(
            f"could not load Hugging Face dataset {path!r}"
            f"{f' config {name!r}' if name else ''}: {type(exc).__name__}: {detail}{hint}"
        ) from None


def _rows(table: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in table]


def _need_columns(rows: Sequence[Mapping[str, Any]], columns: Iterable[str], what: str) -> None:
    if not rows:
        raise DataError(f"{what} has no rows")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise DataError(
            f"{what} has no column {missing[0]!r}; columns: {', '.join(map(str, rows[0]))} "
            "(choose with --input-field / --target-field)"
        )


# --------------------------------------------------------------------------- built-in sources


def _gsm_tsv(path: Path, split: str) -> tuple[Example, ...]:
    out = []
    # No header; question \t integer answer \t rationale. Lines end in "\n" only; some
    # questions contain U+2028, which str.splitlines() would wrongly treat as a line end.
    for i, line in enumerate(x for x in read_text(path, what="dataset file").split("\n") if x.strip()):
        cols = line.split("\t")
        if len(cols) < 2:
            raise DataError(f"{path}: line {i + 1} has no answer column")
        out.append(Example(f"gsm8k:{split}:{i}", cols[0].strip(), _number_text(cols[1]), "number"))
    if not out:
        raise DataError(f"{path} holds no questions")
    return tuple(out)


def _gsm8k(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    if data_dir is not None:
        train = _gsm_tsv(_find_file(data_dir, "gsm_data", "gsm_train.tsv"), "train")
        test = _gsm_tsv(_find_file(data_dir, "gsm_data", "gsm_test.tsv"), "test")
        source = f"local:{data_dir}"
    else:
        dd = _load_hub("openai/gsm8k", "main")
        parts = {}
        for split in ("train", "test"):
            rows = _rows(dd[split])
            _need_columns(rows, ("question", "answer"), f"openai/gsm8k {split}")
            parts[split] = tuple(
                Example(
                    f"gsm8k:{split}:{i}",
                    r["question"].strip(),
                    _number_text(_target_text(r["answer"])),
                    "number",
                )
                for i, r in enumerate(rows)
            )
        train, test, source = parts["train"], parts["test"], "hf:openai/gsm8k"
    return Dataset("gsm8k", train, test, source, "grade school math", train_ratio=0.035)


def _bbh(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    task = arg.strip()
    if task not in BBH_TASKS:
        raise UnknownNameError(f"unknown BBH task {task!r}; choose one of: {', '.join(BBH_TASKS)}")
    if data_dir is not None:
        path = _find_file(data_dir, "BIG-Bench-Hard-data", f"{task}.json")
        data = read_json(path, what="dataset file")
        if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
            raise DataError(f'{path} has no "examples" list')
        rows, source = data["examples"], f"local:{data_dir}"
    else:
        rows, source = _rows(_load_hub("lukaemon/bbh", task, split="test")), "hf:lukaemon/bbh"
    _need_columns(rows, ("input", "target"), f"BBH {task}")
    kind = bbh_answer_kind(task)
    pool = tuple(_make_example(f"bbh:{task}:{i}", r["input"], r["target"], kind) for i, r in enumerate(rows))
    return Dataset(f"bbh:{task}", pool, None, source, task.replace("_", " "), train_ratio=0.2, val_ratio=0.1)


def _multiarith(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    if data_dir is not None:
        data = read_json(_find_file(data_dir, "MultiArith-data", "MultiArith.json"), what="dataset file")
        if not isinstance(data, list):
            raise DataError("MultiArith.json must hold a JSON array")
        pairs = [(r["sQuestion"], r["lSolutions"][0]) for r in data]
        source = f"local:{data_dir}"
    else:
        dd = _load_hub("ChilleD/MultiArith")
        rows = [r for split in ("train", "test") if split in dd for r in _rows(dd[split])]
        _need_columns(rows, ("question", "final_ans"), "ChilleD/MultiArith")
        pairs = [(r["question"], r["final_ans"]) for r in rows]
        source = "hf:ChilleD/MultiArith"
    pool = tuple(
        Example(f"multiarith:{i}", q.strip(), _number_text(a), "number") for i, (q, a) in enumerate(pairs)
    )
    return Dataset("multiarith", pool, None, source, "arithmetic word", train_ratio=0.2, val_ratio=0.1)


def _aqua(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    if data_dir is not None:
        aqua = _find_file(data_dir, "AQuA-data", "AQuA.json")
        rows = parse_jsonl(read_text(aqua, what="dataset file"), where=aqua)  # JSON Lines despite .json
        source = f"local:{data_dir}"
    else:
        rows, source = _rows(_load_hub("deepmind/aqua_rat", "raw", split="test")), "hf:deepmind/aqua_rat"
    _need_columns(rows, ("question", "options", "correct"), "AQuA")
    pool = []
    for i, r in enumerate(rows):
        question, options = _with_options(r["question"], r["options"])
        pool.append(_choice_example(f"aqua:{i}", question, str(r["correct"]).strip(), options))
    return Dataset("aqua", tuple(pool), None, source, "algebra word", train_ratio=0.2, val_ratio=0.1)


def _ifbench(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    from promptopt.tasks.ifbench.data import ifbench_dataset  # IFBench's own finder (shared/ or the Hub)

    return ifbench_dataset(data_dir)


# --------------------------------------------------------------------------- user data


@dataclass(frozen=True)
class _Row:
    """One user row on its way to an :class:`Example` (the kind is known only once all are read)."""

    id: str
    input: str
    target: str | None
    options: tuple[tuple[str, str], ...]
    columns: tuple[tuple[str, Any], ...]


def _user_rows(where: str, id_prefix: str, table: Table, choice: FieldChoice) -> list[_Row]:
    """The rows of one split with their input rendered and gold answer checked (see the module
    docstring); ``where`` names the file or split in errors, rows are numbered from 1."""
    out = []
    for i, row in enumerate(table.rows):
        at = f"{where}: row {i + 1}"
        question = render_input(row, choice, at)
        target = None
        if choice.target is not None:
            value = row.get(choice.target)
            if is_empty(value):
                raise DataError(f"{at} has an empty or null {choice.target!r} field (the gold answer)")
            target = _target_text(value)
        options: tuple[tuple[str, str], ...] = ()
        raw_options = row.get("options")
        if isinstance(raw_options, (list, tuple)) and raw_options:
            shown, options = _with_options(question, raw_options)
            if choice.template is None and "options" not in choice.inputs:
                question = shown
        out.append(_Row(f"{id_prefix}{i}", question, target, options, tuple(row.items())))
    return out


def _user_examples(rows: Sequence[_Row], answer_type: str | None) -> list[Example]:
    """Examples of the user's rows, all of one answer kind: ``answer_type``, else inferred from
    the gold answers, else ``text`` (no gold answers)."""
    if answer_type is not None and answer_type not in ANSWER_KINDS:
        raise ConfigError(f"unknown answer type {answer_type!r}; choose one of {', '.join(ANSWER_KINDS)}")
    targets = [r.target for r in rows if r.target is not None]
    kind: AnswerKind = answer_type or (infer_kind(targets) if targets else "text")  # type: ignore[assignment]
    return [replace(_make_example(r.id, r.input, r.target, kind, r.options), columns=r.columns) for r in rows]


def _user_dataset(
    name: str,
    source: str,
    parts: Sequence[tuple[str, str, Table]],
    opts: Mapping[str, Any],
    *,
    has_test: bool,
) -> Dataset:
    """A user :class:`Dataset` from its tables: ``parts`` is (where, id prefix, table) for the pool
    and, when ``has_test``, then the test split. The fields are chosen on the pool's columns and
    must exist in the test split too."""
    (where, _, pool_table), *_ = parts
    choice = choose_fields(
        pool_table.columns,
        input_field=opts.get("input_field"),
        target_field=opts.get("target_field"),
        template=opts.get("template"),
        where=where,
    )
    rows: list[list[_Row]] = []
    for part_where, prefix, table in parts:
        for col in (*choice.inputs, *([choice.target] if choice.target else [])):
            if col not in table.columns:
                raise DataError(
                    f"{part_where} has no column {col!r} (the {where} has it); columns: {', '.join(table.columns)}"
                )
        rows.append(_user_rows(part_where, prefix, table, choice))
    examples = _user_examples([r for part in rows for r in part], opts.get("answer_type"))
    pool, test = tuple(examples[: len(rows[0])]), tuple(examples[len(rows[0]) :])
    return Dataset(
        name,
        pool,
        test if has_test else None,
        source,
        opts.get("topic") or "the given",
        train_ratio=0.2 if has_test else USER_TRAIN_FRACTION,
        val_ratio=None if has_test else USER_VAL_FRACTION,
        user=True,
        input_fields=choice.inputs,
        target_field=choice.target,
        template=choice.template,
    )


def _jsonl(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    if not arg:
        raise ConfigError("jsonl dataset needs a path: jsonl:PATH")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist")
    rows = parse_jsonl(read_text(path, what="dataset file"), where=path)
    if not rows:
        raise DataError(f"{path} holds no records")
    table = table_of(rows)
    ds = _user_dataset(f"jsonl:{path}", f"local:{path}", [(path.name, f"{path.name}:", table)], opts,
                       has_test=False)  # fmt: skip
    return replace(ds, train_ratio=0.2, val_ratio=0.1, legacy_split=True)


def _file(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    """A data file by path (``file:PATH`` or a bare path); a folder goes the folder way."""
    if not arg:
        raise ConfigError(f"file dataset needs a path: file:PATH ({DATA_FILE_HINT})")
    path = Path(arg).expanduser()
    if path.is_dir():
        return _folder_or_hub(arg, f"file:{arg}", opts)
    table = read_data_file(path)
    return _user_dataset(f"file:{path}", f"local:{path}", [(path.name, f"{path.name}:", table)], opts,
                         has_test=False)  # fmt: skip


def _folder_or_hub(arg: str, name: str, opts: Mapping[str, Any]) -> Dataset:
    """A saved or data-file folder, or a Hub dataset: its ``train`` split (else its first) is the
    pool, a ``test`` split is kept as the test set."""
    loaded = _load_hub(arg, opts.get("hf_config"))
    splits = dict(loaded) if hasattr(loaded, "keys") else {"train": loaded}
    if not splits:
        raise DataError(f"Hugging Face dataset {arg!r} has no splits")
    pool_name = "train" if "train" in splits else next(iter(splits))
    test_name = "test" if "test" in splits and pool_name != "test" else None
    parts = [(f"{arg} {pool_name} split", f"{arg}:{pool_name}:", table_of(splits[pool_name]))]
    if test_name is not None:
        parts.append((f"{arg} {test_name} split", f"{arg}:{test_name}:", table_of(splits[test_name])))
    if not parts[0][2].rows:
        raise DataError(f"{parts[0][0]} has no rows")
    source = f"local:{arg}" if Path(arg).expanduser().is_dir() else f"hf:{arg}"
    has_test = test_name is not None and bool(parts[1][2].rows)
    return _user_dataset(name, source, parts if has_test else parts[:1], opts, has_test=has_test)


def _hf(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    if not arg:
        raise ConfigError("hf dataset needs an id: hf:OWNER/NAME (or a local saved folder)")
    if arg.strip().lower() in HF_BUILDER_NAMES and not Path(arg).expanduser().is_dir():
        raise ConfigError(
            f"hf:{arg} names the datasets library's {arg} file reader, which would read whatever data files "
            f"are in the working directory; give the file's path instead (data.{arg.strip().lower()} or "
            "file:PATH)"
        )
    if Path(arg).expanduser().is_file():
        return _file(arg, data_dir, opts)  # hf:PATH of one local file: read it as a data file
    ds = _folder_or_hub(arg, f"hf:{arg}", opts)
    return replace(ds, train_ratio=0.2, val_ratio=None if ds.test is not None else 0.1, legacy_split=True)


Loader = Callable[[str, "Path | None", Mapping[str, Any]], Dataset]

#: spec scheme → (loader, whether it needs the part after the colon, one-line help)
DATASETS: Mapping[str, tuple[Loader, bool, str]] = {
    "gsm8k": (_gsm8k, False, "GSM8K grade-school math (train subset → test file)"),
    "bbh": (_bbh, True, "BIG-Bench Hard task: bbh:<task>, 27 tasks"),
    "multiarith": (_multiarith, False, "MultiArith arithmetic word problems (600)"),
    "aqua": (_aqua, False, "AQuA-RAT multiple-choice algebra, test split (254)"),
    "ifbench": (_ifbench, False, "IFBench verifiable constraints, 294 prompts, no gold answers (--metric ifbench)"),
    "jsonl": (_jsonl, True, "your JSON Lines file: jsonl:PATH"),
    "file": (_file, True, "your data file or folder: file:PATH (.jsonl/.json/.csv/.tsv/.parquet; a bare path works too)"),
    "hf": (_hf, True, "a Hugging Face dataset: hf:OWNER/NAME (bare OWNER/NAME works too)"),
}  # fmt: skip
#: the specs whose data has fixed columns (OPRO's benchmarks): no fields or template to choose
_BUILT_IN = frozenset({"gsm8k", "bbh", "multiarith", "aqua", "ifbench"})


def _template_text(template: str | os.PathLike[str] | None) -> str | None:
    """The template's text: a string as is (the CLI reads ``@FILE`` with :func:`read_text_option`
    first, so the text recorded is the text used), a :class:`~pathlib.Path` read from its file."""
    if template is None or isinstance(template, str):
        return template
    if isinstance(template, os.PathLike):
        return read_text_option("@" + os.fspath(template), "template")
    raise ConfigError(f"template must be text (or a pathlib.Path to read), got {type(template).__name__}")


def _resolve_spec(spec: str) -> tuple[str, Loader, str]:
    """(scheme, loader, argument) of a spec, in the order of the module docstring."""
    scheme, sep, arg = spec.partition(":")
    if scheme in DATASETS:
        loader, needs_arg, help_text = DATASETS[scheme]
        if needs_arg and not arg:
            raise ConfigError(f"dataset {scheme!r} needs a value after the colon ({help_text})")
        if not needs_arg and sep:
            raise ConfigError(f"dataset {scheme!r} takes no ':' part, got {spec!r}")
        return scheme, loader, arg
    path = Path(spec).expanduser()
    if path.is_dir():
        return "file", _file, spec  # a local folder (saved, or of data files): your own data
    if path.is_file() or is_data_file_name(spec):
        return "file", _file, spec  # a missing data file is a DataError saying so
    if not sep and "/" in spec:
        return "hf", _hf, spec  # a bare Hugging Face id such as owner/name
    raise UnknownNameError(
        f"unknown dataset {spec!r}; known: {', '.join(DATASETS)} (bbh:<task>, jsonl:PATH, file:PATH, hf:ID "
        f"or owner/name) (a data file? give {DATA_FILE_HINT})"
    )


def load_dataset(
    spec: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    input_field: str | Sequence[str] | None = None,
    target_field: str | None = None,
    answer_type: str | None = None,
    hf_config: str | None = None,
    topic: str | None = None,
    template: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a dataset by spec (see the module docstring for the specs and the field rules).

    ``input_field``: one column, several (a list or ``"a,b"``), or None to find it by name;
    ``target_field``: one column, or None to find it by name (none found: no gold answers);
    ``template``: a format string over the row's columns making the input (text, or a Path to read);
    ``answer_type``: the answer kind for the ``auto`` grader (None: inferred); ``hf_config``: the
    config of an HF dataset; ``topic`` names the problems in the meta-prompt. Bad specs and files
    raise :class:`~promptopt.errors.PromptoptError` subclasses with one-line messages.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(
            "empty dataset spec; try gsm8k, bbh:navigate, a data file path, jsonl:PATH or an HF id"
        )
    spec = spec.strip()
    scheme, loader, arg = _resolve_spec(spec)
    template_text = _template_text(template)
    if template_text is not None:
        template_fields(template_text)  # a bad template is refused before any data is read
        if scheme in _BUILT_IN:
            raise ConfigError(
                f"a template applies to your own data; {spec} has fixed questions (use a data file, "
                "jsonl:PATH or an HF dataset)"
            )
    opts = {
        "input_field": input_field,
        "target_field": target_field,
        "answer_type": answer_type,
        "hf_config": hf_config,
        "topic": topic,
        "template": template_text,
    }
    ds = loader(arg, resolve_data_dir(data_dir), opts)
    return replace(ds, topic=topic) if topic else ds
