"""Datasets for instruction search: loaders, the common :class:`Example` form, and OPRO's splits.

Specs (a constant table, no substring guessing):

- ``gsm8k`` — GSM8K; optimise on a subset of the train file, test on the test file.
- ``bbh:<task>`` — one of the 27 BIG-Bench Hard task files (:data:`BBH_TASKS`).
- ``multiarith``, ``aqua`` — MultiArith and AQuA-RAT test (OPRO uses them for transfer only).
- ``jsonl:PATH`` — the user's JSON Lines file with ``input`` / ``target`` fields (renamable).
- ``hf:ID`` or a bare ``owner/name`` — a Hugging Face dataset through ``datasets.load_dataset``
  (a local folder written by ``save_to_disk`` or holding data files works too).

Where the built-in data comes from: with a data directory (``data_dir=`` / ``--data-dir``, else
``$PROMPTOPT_DATA_DIR``) the files of the OPRO repository's ``data/`` folder are read from it
(``gsm_data/*.tsv``, ``BIG-Bench-Hard-data/*.json``, ``MultiArith-data/MultiArith.json``,
``AQuA-data/AQuA.json``); without one, the same data comes from the Hub: ``openai/gsm8k``
(config ``main``), ``lukaemon/bbh`` (config = task, split ``test``), ``ChilleD/MultiArith``
(train + test, columns ``question`` / ``final_ans``) and ``deepmind/aqua_rat`` (config ``raw``,
split ``test``, the same 254 rows as OPRO's file).

Splits (:func:`split_dataset`), OPRO's recipe first: ``RandomState(seed).choice(n,
int(train_ratio * n), replace=False)`` sorted, which with seed 0 is exactly OPRO's
``np.random.seed(0); np.random.choice(...)`` (GSM8K: 261 of 7,473 train questions; BBH: 20 % of a
task file). The validation set is then drawn by the *same* generator from the examples left
over, as OPRO draws its ``eval_index``:

- two-file datasets (GSM8K, an HF dataset with train and test splits): validation comes from the
  unused part of the train file (default: as many examples as the train subset); the test set is
  the whole test file, untouched.
- one-pool datasets (BBH, MultiArith, AQuA, a JSONL file): validation is 10 % of the pool, drawn
  from OPRO's test part, and the test set is the rest. So a BBH test set is OPRO's 80 % minus the
  validation examples; ``num_val=0`` gives OPRO's test split exactly.

``num_train`` / ``num_test`` cap the train / test sets with a seeded subset for quick runs; a cap
never changes which examples the other splits hold.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

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
    """One question with its gold answer.

    ``target`` is the gold answer as the dataset writes it ("72", "(B)", "Yes", "] ]"), shown in
    meta-prompt exemplars; ``kind`` says how to grade it. For ``choice``, ``options`` are the
    (letter, text) pairs and ``accepted`` the letters that count as right (one, except for the
    BBH targets written as option text that the file split into several options).
    """

    id: str
    input: str
    target: str
    kind: AnswerKind
    options: tuple[tuple[str, str], ...] = ()
    accepted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    """Loaded examples before splitting. ``test`` is a separate test file, or None when the test
    set is carved from ``pool``. ``topic`` names the problems for meta-prompts."""

    name: str
    pool: tuple[Example, ...]
    test: tuple[Example, ...] | None
    source: str
    topic: str
    train_ratio: float
    val_ratio: float | None = None  # one-pool datasets: fraction of the pool; None = train size


@dataclass(frozen=True)
class Splits:
    """Train (optimise), validation (pick the final instruction) and test (report) examples."""

    train: tuple[Example, ...]
    val: tuple[Example, ...]
    test: tuple[Example, ...]
    recipe: dict[str, Any] = field(default_factory=dict)


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


def _with_options(question: str, options: Sequence[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
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


def _make_example(ex_id: str, question: str, target: Any, kind: AnswerKind) -> Example:
    if kind == "choice":
        return _choice_example(ex_id, question, str(target).strip())
    text = _number_text(target) if kind == "number" else str(target).strip()
    return Example(ex_id, question, text, kind)


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


# --------------------------------------------------------------------------- user data


def _user_examples(
    name: str, rows: Sequence[Mapping[str, Any]], opts: Mapping[str, Any], split: str = ""
) -> list[tuple[str, str, Any]]:
    input_field, target_field = opts["input_field"], opts["target_field"]
    _need_columns(rows, (input_field, target_field), name)
    out = []
    for i, r in enumerate(rows):
        for field_name in (input_field, target_field):
            value = r[field_name]
            if value is None or (isinstance(value, str) and not value.strip()):
                raise DataError(f"{name}: row {i + 1} has an empty or null {field_name!r} field")
        question = str(r[input_field])
        if isinstance(r.get("options"), list) and r["options"]:
            question, _ = _with_options(question, r["options"])
        out.append((f"{name}:{split}{i}", question, _target_text(r[target_field])))
    return out


def _examples_with_kind(
    triples: Sequence[tuple[str, str, Any]], answer_type: str | None, context: str
) -> tuple[list[Example], AnswerKind]:
    if answer_type is not None and answer_type not in ANSWER_KINDS:
        raise ConfigError(f"unknown answer type {answer_type!r}; choose one of {', '.join(ANSWER_KINDS)}")
    kind: AnswerKind = answer_type or infer_kind([str(t) for _, _, t in triples])  # type: ignore[assignment]
    return [_make_example(i, q, t, kind) for i, q, t in triples], kind


def _jsonl(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    if not arg:
        raise ConfigError("jsonl dataset needs a path: jsonl:PATH")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist")
    rows = parse_jsonl(read_text(path, what="dataset file"), where=path)
    if not rows:
        raise DataError(f"{path} holds no records")
    examples, _ = _examples_with_kind(
        _user_examples(path.name, rows, opts), opts.get("answer_type"), str(path)
    )
    return Dataset(f"jsonl:{path}", tuple(examples), None, f"local:{path}", opts.get("topic") or "the given",
                   train_ratio=0.2, val_ratio=0.1)  # fmt: skip


def _hf(arg: str, data_dir: Path | None, opts: Mapping[str, Any]) -> Dataset:
    if not arg:
        raise ConfigError("hf dataset needs an id: hf:OWNER/NAME (or a local saved folder)")
    loaded = _load_hub(arg, opts.get("hf_config"))
    splits = dict(loaded) if hasattr(loaded, "keys") else {"train": loaded}
    if not splits:
        raise DataError(f"Hugging Face dataset {arg!r} has no splits")
    pool_name = "train" if "train" in splits else next(iter(splits))
    test_name = "test" if "test" in splits and pool_name != "test" else None
    pool_rows = _user_examples(arg, _rows(splits[pool_name]), opts, f"{pool_name}:")
    test_rows = _user_examples(arg, _rows(splits[test_name]), opts, f"{test_name}:") if test_name else []
    examples, kind = _examples_with_kind(pool_rows + test_rows, opts.get("answer_type"), arg)
    pool, test = tuple(examples[: len(pool_rows)]), tuple(examples[len(pool_rows) :])
    return Dataset(f"hf:{arg}", pool, test or None, f"hf:{arg}", opts.get("topic") or "the given",
                   train_ratio=0.2, val_ratio=None if test else 0.1)  # fmt: skip


Loader = Callable[[str, "Path | None", Mapping[str, Any]], Dataset]

#: spec scheme → (loader, whether it needs the part after the colon, one-line help)
DATASETS: Mapping[str, tuple[Loader, bool, str]] = {
    "gsm8k": (_gsm8k, False, "GSM8K grade-school math (train subset → test file)"),
    "bbh": (_bbh, True, "BIG-Bench Hard task: bbh:<task>, 27 tasks"),
    "multiarith": (_multiarith, False, "MultiArith arithmetic word problems (600)"),
    "aqua": (_aqua, False, "AQuA-RAT multiple-choice algebra, test split (254)"),
    "jsonl": (_jsonl, True, "your JSON Lines file: jsonl:PATH with input/target fields"),
    "hf": (_hf, True, "a Hugging Face dataset: hf:OWNER/NAME (bare OWNER/NAME works too)"),
}


def load_dataset(
    spec: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    input_field: str = "input",
    target_field: str = "target",
    answer_type: str | None = None,
    hf_config: str | None = None,
    topic: str | None = None,
) -> Dataset:
    """Load a dataset by spec (see the module docstring). Bad specs and files raise
    :class:`~promptopt.errors.PromptoptError` subclasses with one-line messages."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("empty dataset spec; try gsm8k, bbh:navigate, jsonl:PATH or an HF id")
    spec = spec.strip()
    scheme, sep, arg = spec.partition(":")
    if scheme in DATASETS:
        loader, needs_arg, _ = DATASETS[scheme]
        if needs_arg and not arg:
            raise ConfigError(f"dataset {scheme!r} needs a value after the colon ({DATASETS[scheme][2]})")
        if not needs_arg and sep:
            raise ConfigError(f"dataset {scheme!r} takes no ':' part, got {spec!r}")
    elif not sep and "/" in spec:
        loader, arg = _hf, spec  # a bare Hugging Face id such as owner/name
    else:
        raise UnknownNameError(
            f"unknown dataset {spec!r}; known: {', '.join(DATASETS)} (bbh:<task>, jsonl:PATH, hf:ID or owner/name)"
        )
    opts = {
        "input_field": input_field,
        "target_field": target_field,
        "answer_type": answer_type,
        "hf_config": hf_config,
        "topic": topic,
    }
    ds = loader(arg, resolve_data_dir(data_dir), opts)
    return replace(ds, topic=topic) if topic else ds


# --------------------------------------------------------------------------- splits


def _count(name: str, value: int | None, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _capped(examples: tuple[Example, ...], cap: int | None, seed: int) -> tuple[Example, ...]:
    """A seeded, order-preserving subset of at most ``cap`` examples."""
    if cap is None or cap >= len(examples):
        return examples
    keep = np.sort(np.random.RandomState(seed).choice(len(examples), size=cap, replace=False))
    return tuple(examples[i] for i in keep)


def split_dataset(
    ds: Dataset,
    *,
    seed: int = 0,
    train_ratio: float | None = None,
    num_train: int | None = None,
    num_val: int | None = None,
    num_test: int | None = None,
) -> Splits:
    """OPRO's seeded train subset, a validation set from the left-over examples, and the test set
    (see the module docstring for the recipe and the defaults)."""
    ratio = ds.train_ratio if train_ratio is None else float(train_ratio)
    if not 0 < ratio < 1:
        raise ConfigError(f"train_ratio must be between 0 and 1 (exclusive), got {ratio}")
    num_train = _count("num_train", num_train, 1)
    num_val = _count("num_val", num_val)
    num_test = _count("num_test", num_test, 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")

    n = len(ds.pool)
    size = int(ratio * n)
    if size < 1:
        raise ConfigError(f"train_ratio {ratio} of {n} examples leaves no training example")
    rng = np.random.RandomState(seed)
    train_idx = np.sort(rng.choice(n, size=size, replace=False))
    rest = np.sort(np.setdiff1d(np.arange(n), train_idx))

    if num_val is None:
        num_val = size if ds.val_ratio is None else int(ds.val_ratio * n)
    one_pool = ds.test is None
    room = len(rest) - (1 if one_pool else 0)
    if num_val > room:
        raise ConfigError(
            f"num_val {num_val} is too large: only {room} examples are left after the train subset"
            + (" and at least one must stay for the test set" if one_pool else "")
        )
    val_idx = np.sort(rng.choice(rest, size=num_val, replace=False)) if num_val else np.array([], dtype=int)

    train = tuple(ds.pool[i] for i in train_idx)
    val = tuple(ds.pool[i] for i in val_idx)
    if one_pool:
        test_all = tuple(ds.pool[i] for i in np.setdiff1d(rest, val_idx))
    else:
        assert ds.test is not None
        test_all = ds.test
    train_kept = _capped(train, num_train, seed)
    test = _capped(test_all, num_test, seed)
    recipe = {
        "dataset": ds.name,
        "source": ds.source,
        "seed": int(seed),
        "train_ratio": ratio,
        "pool": n,
        "train": len(train_kept),
        "train_before_cap": len(train),
        "val": len(val),
        "test": len(test),
        "test_before_cap": len(test_all),
        "test_from": "rest of the pool after train and validation" if one_pool else "the separate test split",
        "val_from": "examples left after the train subset, same generator as the train draw",
    }
    return Splits(train_kept, val, test, recipe)
