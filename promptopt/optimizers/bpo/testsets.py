"""BPO inputs: the four evaluation test sets and preference-pair sources, loaded into plain records.

Why one module: the data builder and the evaluator both need "where is the BPO data" and "turn a
file or a Hub dataset with some column layout into records", and neither should know the other.

Where the data comes from, in order: an explicit ``data_dir`` (CLI ``--data-dir``), the
``PROMPTOPT_BPO_DATA_DIR`` environment variable, a ``shared/data/bpo`` folder next to the checkout
(``../shared/data/bpo`` seen from the repository root or the current directory), and finally the
Hugging Face Hub (``THUDM/BPO``) for the sets published there. Nothing is downloaded when a local
copy exists, so tests and offline machines work from files.

Layouts differ per test set (vicuna ``text``; self-instruct and dolly ``instruction`` + ``context``;
bpo-test ``prompt`` + ``optimized_prompt``); the registry below says how each one becomes a prompt,
the same way the BPO reference evaluation joins them (``instruction + "\\n" + context``, stripped).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, DataError, UnknownNameError

# The readers live in promptopt.records (the one JSON/JSONL reader); load_rows is re-exported for
# promptopt.optimizers.bpo.pairs and older imports.
from promptopt.records import load_hf_rows, load_rows, read_records  # noqa: F401

DATA_DIR_ENV = "PROMPTOPT_BPO_DATA_DIR"
HUB_DATASET = "THUDM/BPO"

# --------------------------------------------------------------------------- data dir


def _default_candidates() -> list[Path]:
    here = Path(__file__).resolve().parent  # .../<repo>/promptopt
    return [
        here.parent.parent / "shared" / "data" / "bpo",  # <repo>/../shared/data/bpo
        Path.cwd().parent / "shared" / "data" / "bpo",
        Path.cwd() / "shared" / "data" / "bpo",
    ]


def bpo_data_dir(explicit: str | Path | None = None) -> Path | None:
    """The local BPO data folder, or None when there is none (callers then try the Hub).

    An explicit folder or the environment variable must exist: a typo there is an error, not a
    silent fallback to a download.
    """
    for source, value in (("--data-dir", explicit), (DATA_DIR_ENV, os.environ.get(DATA_DIR_ENV))):
        if value:
            p = Path(value).expanduser()
            if not p.is_dir():
                raise DataError(f"BPO data folder {p} (from {source}) does not exist")
            return p
    for p in _default_candidates():
        if (p / "testset").is_dir():
            return p
    return None


# --------------------------------------------------------------------------- test sets


@dataclass(frozen=True)
class TestItem:
    """One evaluation prompt. ``rewritten`` is a precomputed optimized prompt, when the set has one."""

    __test__ = False  # not a pytest class

    id: str
    prompt: str
    rewritten: str | None = None
    category: str | None = None


def _joined(row: Mapping[str, Any], fields: Sequence[str]) -> str:
    return "\n".join(str(row.get(f) or "") for f in fields).strip()


@dataclass(frozen=True)
class TestSetSpec:
    """How one named test set is stored and how a row becomes a prompt."""

    __test__ = False

    name: str
    file: str
    prompt_fields: tuple[str, ...]
    id_field: str | None
    rewritten_field: str | None = None
    hub_file: str | None = None  # file in the THUDM/BPO Hub dataset, when published there


TESTSETS: Mapping[str, TestSetSpec] = {
    "vicuna": TestSetSpec("vicuna", "testset/vicuna_eval.jsonl", ("text",), "question_id"),
    "self-instruct": TestSetSpec(
        "self-instruct", "testset/self_instruct_eval.json", ("instruction", "context"), "id"
    ),
    "dolly": TestSetSpec("dolly", "testset/dolly_eval.json", ("instruction", "context"), "idx"),
    "bpo-test": TestSetSpec(
        "bpo-test", "testset/bpo_test.json", ("prompt",), None, "optimized_prompt", hub_file="test.json"
    ),
}

#: Fields tried, in order, to find the prompt of a row of an arbitrary JSONL test file.
GENERIC_PROMPT_FIELDS: tuple[tuple[str, ...], ...] = (
    ("prompt",),
    ("text",),
    ("question",),
    ("instruction", "context"),
    ("instruction",),
)
GENERIC_ID_FIELDS = ("id", "idx", "question_id")


@dataclass
class TestSet:
    """A loaded test set: its name (for reports) and its items."""

    __test__ = False

    name: str
    items: list[TestItem]
    default_rewritten_field: str | None = None
    source: str = ""


def _items_from_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    where: str,
    prompt_fields: Sequence[str] | None,
    id_field: str | None,
    rewritten_field: str | None,
) -> list[TestItem]:
    items: list[TestItem] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        fields = prompt_fields
        if fields is None:
            fields = next((fs for fs in GENERIC_PROMPT_FIELDS if row.get(fs[0])), None)
            if fields is None:
                raise DataError(
                    f"{where}: row {i + 1} has none of the prompt fields prompt/text/question/instruction"
                )
        prompt = _joined(row, fields)
        if not prompt:
            raise DataError(f"{where}: row {i + 1} has an empty prompt")
        ident_field = id_field or next((f for f in GENERIC_ID_FIELDS if f in row), None)
        ident = str(row[ident_field]) if ident_field and row.get(ident_field) is not None else str(i)
        if ident in seen:
            ident = f"{ident}#{i}"
        seen.add(ident)
        rewritten = None
        if rewritten_field is not None:
            value = row.get(rewritten_field)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: row {i + 1} has no text in field {rewritten_field!r}")
            rewritten = value.strip()
        category = row.get("category")
        items.append(TestItem(ident, prompt, rewritten, str(category) if category is not None else None))
    if not items:
        raise DataError(f"{where} holds no rows")
    return items


def load_testset(
    name_or_path: str,
    *,
    data_dir: str | Path | None = None,
    rewritten_field: str | None = None,
    limit: int | None = None,
    loader: Callable[..., list[dict[str, Any]]] = load_hf_rows,
) -> TestSet:
    """A named test set (``vicuna``, ``self-instruct``, ``dolly``, ``bpo-test``) or any JSON/JSONL file.

    ``rewritten_field`` names the field holding precomputed rewrites (bpo-test: ``optimized_prompt``);
    it is only read when given, so sets without one load too. ``limit`` keeps the first N items.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be a positive integer, got {limit}")
    spec = TESTSETS.get(name_or_path)
    if spec is not None:
        base = bpo_data_dir(data_dir)
        if base is not None and (base / spec.file).is_file():
            rows = read_records(base / spec.file)
            where = str(base / spec.file)
        elif spec.hub_file is not None:
            rows = loader(HUB_DATASET, split="train", data_files=spec.hub_file)
            where = f"{HUB_DATASET}/{spec.hub_file}"
        else:
            raise DataError(
                f"test set {spec.name!r} needs the BPO data folder ({spec.file} in it): pass --data-dir "
                f"or set {DATA_DIR_ENV}"
            )
        items = _items_from_rows(
            rows,
            where=where,
            prompt_fields=spec.prompt_fields,
            id_field=spec.id_field,
            rewritten_field=rewritten_field,
        )
        name, default_field = spec.name, spec.rewritten_field
    else:
        p = Path(name_or_path).expanduser()
        if not p.is_file():
            raise UnknownNameError(
                f"unknown test set {name_or_path!r}: not one of {', '.join(TESTSETS)} and not an existing file"
            )
        rows = read_records(p)
        items = _items_from_rows(
            rows, where=str(p), prompt_fields=None, id_field=None, rewritten_field=rewritten_field
        )
        name, default_field, where = p.stem, None, str(p)
    return TestSet(name, items[:limit] if limit else items, default_field, where)
