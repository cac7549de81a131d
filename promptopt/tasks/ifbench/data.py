"""Where the ``ifbench`` task's data comes from: IFBench's test prompts and the base prompts of training.

Read at run time, never copied into the project:

- **IFBench test prompts** (``IFBench_test.jsonl``, 294 rows: ``key``, ``prompt``,
  ``instruction_id_list``, ``kwargs``), from, in order: ``data_dir`` (the file in it or in its
  ``ifbench/`` folder), ``$PROMPTOPT_IFBENCH_DATA_DIR``, a ``shared/data/ifbench`` folder next to
  the checkout (``../shared/data/ifbench`` seen from the repository root or the current directory),
  and else the Hugging Face dataset ``allenai/IFBench_test`` (the same rows).
- **Base prompts** for composed training prompts: the four BPO evaluation sets (Vicuna 80, Dolly 200,
  Self-Instruct 252, BPO-test 200), from ``$PROMPTOPT_BPO_DATA_DIR`` or ``shared/data/bpo`` (the
  folder ``bpo eval`` reads), else BPO-test alone from the Hub (``THUDM/BPO``, ``test.json``).
  Dolly and Self-Instruct rows are ``instruction + "\\n" + context``, as BPO's evaluation joins them.

Each IFBench row becomes an :class:`~promptopt.tasks.instructions.datasets.Example` with no gold
answer, whose columns keep ``instruction_id_list`` and ``kwargs`` for the ``ifbench`` metric.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.errors import DataError
from promptopt.records import load_hf_rows, read_records
from promptopt.tasks.instructions.datasets import Dataset, Example

IFBENCH_ENV = "PROMPTOPT_IFBENCH_DATA_DIR"
BPO_ENV = "PROMPTOPT_BPO_DATA_DIR"
IFBENCH_FILE = "IFBench_test.jsonl"
IFBENCH_HUB = "allenai/IFBench_test"
BPO_HUB = "THUDM/BPO"
#: what the problems are, for the optimizer's meta-prompt
TOPIC = "constrained instruction-following"

HubLoader = Callable[..., list[dict[str, Any]]]


def _near_checkout(*parts: str) -> list[Path]:
    here = Path(__file__).resolve().parents[3]  # the repository root of a checkout
    return [here.parent.joinpath("shared", *parts), Path.cwd().parent.joinpath("shared", *parts),
            Path.cwd().joinpath("shared", *parts)]  # fmt: skip


def ifbench_file(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The local ``IFBench_test.jsonl``, or None (then the Hub). A given folder or environment
    variable must hold it: a typo there is an error, not a silent download."""
    for origin, value in (("data_dir", data_dir), (IFBENCH_ENV, os.environ.get(IFBENCH_ENV))):
        if value:
            folder = Path(value).expanduser()
            for candidate in (folder / IFBENCH_FILE, folder / "ifbench" / IFBENCH_FILE):
                if candidate.is_file():
                    return candidate
            raise DataError(f"{IFBENCH_FILE} not found in {folder} (from {origin}) or its ifbench/ folder")
    return next(
        (p / IFBENCH_FILE for p in _near_checkout("data", "ifbench") if (p / IFBENCH_FILE).is_file()), None
    )


def load_ifbench_rows(
    data_dir: str | os.PathLike[str] | None = None, loader: HubLoader = load_hf_rows
) -> tuple[list[dict[str, Any]], str]:
    """The IFBench test rows and where they came from (``local:PATH`` or ``hf:ID``)."""
    path = ifbench_file(data_dir)
    if path is not None:
        rows, source = read_records(path), f"local:{path}"
    else:
        rows, source = loader(IFBENCH_HUB, split="train"), f"hf:{IFBENCH_HUB}"
    for i, row in enumerate(rows):
        missing = [c for c in ("key", "prompt", "instruction_id_list", "kwargs") if c not in row]
        if missing:
            raise DataError(f"{source}: row {i + 1} has no {', '.join(missing)}")
    if not rows:
        raise DataError(f"{source} holds no rows")
    return rows, source


def ifbench_dataset(data_dir: Path | None = None) -> Dataset:
    """All IFBench prompts as one pool (the ``ifbench`` dataset of the ``instructions`` task, split
    by the benchmark recipe; the ``ifbench`` task has its own fixed splits). ``data_dir`` is used
    when it holds the file (it may be OPRO's data folder, which does not)."""
    has_file = data_dir is not None and any(
        p.is_file() for p in (Path(data_dir) / IFBENCH_FILE, Path(data_dir) / "ifbench" / IFBENCH_FILE)
    )
    rows, source = load_ifbench_rows(data_dir if has_file else None)
    pool = tuple(example_of(r) for r in rows)
    return Dataset("ifbench", pool, None, source, TOPIC, train_ratio=0.2, val_ratio=0.1)


def example_of(row: dict[str, Any], prefix: str = "ifbench") -> Example:
    """An IFBench row as an Example: the prompt is the input, the constraints stay in the columns."""
    return Example(f"{prefix}:{row['key']}", str(row["prompt"]), None, "text", columns=tuple(row.items()))


@dataclass(frozen=True)
class BasePrompt:
    """A prompt to compose a training prompt from: ``source`` is ``set:id`` (e.g. ``vicuna:12``)."""

    source: str
    text: str


#: test set → (file under the BPO data folder, the fields joined into the prompt, the id field)
BPO_SETS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "vicuna": ("testset/vicuna_eval.jsonl", ("text",), "question_id"),
    "dolly": ("testset/dolly_eval.json", ("instruction", "context"), "idx"),
    "self-instruct": ("testset/self_instruct_eval.json", ("instruction", "context"), "id"),
    "bpo-test": ("testset/bpo_test.json", ("prompt",), None),
}


def bpo_dir() -> Path | None:
    """The BPO data folder (``$PROMPTOPT_BPO_DATA_DIR``, else ``shared/data/bpo``), or None."""
    env = os.environ.get(BPO_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(f"BPO data folder {path} (from {BPO_ENV}) does not exist")
        return path
    return next((p for p in _near_checkout("data", "bpo") if (p / "testset").is_dir()), None)


def _prompts(
    name: str, rows: Sequence[dict[str, Any]], fields: tuple[str, ...], id_field: str | None
) -> list[BasePrompt]:
    out = []
    for i, row in enumerate(rows):
        text = "\n".join(str(row.get(f) or "") for f in fields).strip()
        if text:
            ident = row.get(id_field) if id_field else None
            out.append(BasePrompt(f"{name}:{ident if ident is not None else i}", text))
    return out


def load_base_prompts(loader: HubLoader = load_hf_rows) -> tuple[list[BasePrompt], str]:
    """The base prompts of composed training prompts, in a fixed order, and where they came from."""
    base = bpo_dir()
    if base is None:
        rows = loader(BPO_HUB, split="train", data_files="test.json")
        return _prompts("bpo-test", rows, ("prompt",), None), f"hf:{BPO_HUB}/test.json"
    out: list[BasePrompt] = []
    for name, (file, fields, id_field) in BPO_SETS.items():
        if (base / file).is_file():
            out += _prompts(name, read_records(base / file), fields, id_field)
    if not out:
        raise DataError(f"the BPO data folder {base} holds none of the test sets ({', '.join(BPO_SETS)})")
    return out, f"local:{base}"
