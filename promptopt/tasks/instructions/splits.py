"""Train / validation / test splits: OPRO's recipe for the benchmarks, simple defaults for your data.

Every draw is seeded and deterministic: one ``np.random.RandomState(seed)`` draws the train subset,
``choice(n, size, replace=False)`` sorted, which with seed 0 is exactly OPRO's ``np.random.seed(0);
np.random.choice(...)`` (GSM8K: 261 of 7,473 train questions; BBH: 20 % of a task file); the *same*
generator then draws the validation set from the examples left over, as OPRO draws its
``eval_index``. A test set smaller than what is left (``test`` or the ``num_test`` cap) is a seeded,
order-preserving subset drawn by a fresh ``RandomState(seed)``. The global NumPy generator is never
touched.

**Benchmarks** (gsm8k, bbh:<task>, multiarith, aqua), OPRO's recipe and defaults:

- two-file datasets (GSM8K): train is ``train_ratio`` of the train file (0.035), validation comes
  from the rest of it (as many as the train subset), the test set is the whole test file.
- one-pool datasets (BBH, MultiArith, AQuA): train is 20 % of the pool, validation 10 % of the pool
  drawn from OPRO's test part, the test set is the rest. So a BBH test set is OPRO's 80 % minus the
  validation examples; ``num_val=0`` gives OPRO's test split exactly.

**Your own data** (:attr:`Dataset.user <promptopt.tasks.instructions.datasets.Dataset.user>`: a
data file, ``jsonl:PATH``, a folder, an HF dataset):

- one pool of rows (a file, or an HF dataset with no test split): train 50 %, validation 20 %, test
  the rest, at least one each (:data:`USER_TRAIN_FRACTION`, :data:`USER_VAL_FRACTION`); so 20 rows
  are 10 / 4 / 6 and 3 rows are 1 / 1 / 1. Fewer than :data:`MIN_USER_POOL` rows is a DataError: a
  search needs rows to search on, to pick with and to report on.
- a dataset with its own test split (an HF dataset, a folder with ``train``/``test`` files) keeps
  that test split whole; train and validation come from the other split as for the benchmarks
  (20 %, and as many for validation) unless set.

**Setting the sizes** (all datasets): ``train``, ``val`` and ``test`` are each a count (an ``int``)
or a fraction of the pool (a ``float`` strictly between 0 and 1, rounded down, at least 1), or None
for the default above. ``test`` of a dataset with its own test split is a count or fraction of that
split. Unset ``test`` is the rest of the pool; a ``test`` smaller than the rest leaves the other rows
unused. Sizes that do not fit the pool are a ConfigError that says how many rows there are.

The older parameters still work: ``train_ratio`` is the train fraction (the same as a float
``train``), ``num_val`` the validation count, and ``num_train`` / ``num_test`` *cap* the train / test
sets with a seeded subset for quick runs (a cap never changes which examples the other splits
hold). Each old parameter and its new counterpart may not both be given.

:attr:`Splits.recipe` records all of it: the sizes, the seed, where each split came from, the
chosen input and target fields, whether gold answers exist, and a one-line ``note`` for people
("20 rows: 10 train / 4 validation / 6 test (default for your own data: 50 % / 20 % / rest; set
--train/--val/--test)").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from promptopt.errors import ConfigError, DataError

if TYPE_CHECKING:
    from promptopt.tasks.instructions.datasets import Dataset, Example

#: the default share of your own data (one pool) used to search on
USER_TRAIN_FRACTION = 0.5
#: the default share of your own data (one pool) used to pick the final instruction
USER_VAL_FRACTION = 0.2
#: the smallest pool of your own data that splits into train, validation and test
MIN_USER_POOL = 3

#: a split size: a count (int) or a fraction of the pool (float in (0, 1))
SplitSize = int | float


@dataclass(frozen=True)
class Splits:
    """Train (optimise), validation (pick the final instruction) and test (report) examples."""

    train: tuple[Example, ...]
    val: tuple[Example, ...]
    test: tuple[Example, ...]
    recipe: dict[str, Any] = field(default_factory=dict)


def parse_split_size(text: str, what: str = "split size") -> SplitSize:
    """A split size as the CLI reads it: ``"10"`` is 10 rows, ``"0.5"`` and ``"50%"`` half of them."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            value: SplitSize = float(raw[:-1].strip()) / 100.0
        elif raw.lstrip("+").isdigit():
            value = int(raw)
        else:
            value = float(raw)
    except ValueError:
        raise ConfigError(f"{what} must be a count (10) or a fraction (0.5 or 50%), got {text!r}") from None
    _check_size(what, value, least=0)
    return value


def _check_size(name: str, value: Any, least: int) -> bool:
    """ConfigError unless ``value`` is a count >= ``least`` or a fraction in (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a count or a fraction between 0 and 1, got {value!r}")
    if isinstance(value, (int, np.integer)):
        if value < least:
            raise ConfigError(f"{name} must be a count >= {least} or a fraction between 0 and 1, got {value}")
    elif not 0.0 < float(value) < 1.0:
        raise ConfigError(
            f"{name} as a fraction must be between 0 and 1 (exclusive), got {value} (a count is an integer)"
        )
    return True


def _size(name: str, value: SplitSize, total: int, least: int) -> int:
    """A count or a fraction of ``total`` as a number of rows (a fraction: rounded down, at least 1)."""
    _check_size(name, value, least)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return max(1, int(float(value) * total))


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


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def _one_of(new: str, new_value: Any, old: str, old_value: Any) -> None:
    if new_value is not None and old_value is not None:
        raise ConfigError(f"give {new} or {old}, not both ({new}={new_value!r}, {old}={old_value!r})")


def split_dataset(
    ds: Dataset,
    *,
    seed: int = 0,
    train_ratio: float | None = None,
    num_train: int | None = None,
    num_val: int | None = None,
    num_test: int | None = None,
    train: SplitSize | None = None,
    val: SplitSize | None = None,
    test: SplitSize | None = None,
) -> Splits:
    """Train, validation and test sets of ``ds`` (see the module docstring for the recipes, the
    defaults and what each parameter means). Sizes that cannot be met raise ConfigError; your own
    data with fewer than :data:`MIN_USER_POOL` rows raises DataError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    _one_of("train", train, "train_ratio", train_ratio)
    _one_of("val", val, "num_val", num_val)
    _one_of("test", test, "num_test", num_test)
    num_train = _count("num_train", num_train, 1)
    num_val = _count("num_val", num_val)
    num_test = _count("num_test", num_test, 1)

    n = len(ds.pool)
    one_pool = ds.test is None
    user_pool = bool(getattr(ds, "user", False)) and one_pool and not getattr(ds, "legacy_split", False)
    if user_pool and n < MIN_USER_POOL:
        raise DataError(
            f"{ds.name} has {n} row{'s' if n != 1 else ''}: a search needs at least {MIN_USER_POOL} examples "
            "(to search on, to pick the best instruction with, and to report on)"
        )
    if n == 0:
        raise DataError(f"{ds.name} has no rows to split")

    # ---- train: how many, and why
    ratio: float | None
    if train is not None:
        size = _size("train", train, n, least=1)
        ratio = float(train) if isinstance(train, float) else None
        train_label, train_why = "train", f"train {train!r} as set"
    elif train_ratio is not None:
        ratio = float(train_ratio)
        if not 0 < ratio < 1:
            raise ConfigError(f"train_ratio must be between 0 and 1 (exclusive), got {ratio}")
        size = int(ratio * n)
        if size < 1:
            raise ConfigError(f"train_ratio {ratio} of {n} examples leaves no training example")
        train_label, train_why = "train_ratio", f"train_ratio {ratio:g}"
    elif user_pool:
        ratio = USER_TRAIN_FRACTION
        size = max(1, int(ratio * n))
        train_label, train_why = "train", f"train: default {_pct(ratio)}"
    else:
        ratio = ds.train_ratio
        size = int(ratio * n)
        if size < 1:
            raise ConfigError(f"train_ratio {ratio} of {n} examples leaves no training example")
        train_label, train_why = "train", f"train: {_pct(ratio)} of the pool"
    room_after_train = n - (1 if one_pool else 0)  # one pool: at least one row must stay for the test set
    if size > room_after_train:
        raise ConfigError(
            f"{train_label} {size} does not fit: {ds.name} has {n} rows"
            + (" and at least one must stay for the test set" if one_pool else "")
        )

    # ---- validation
    if val is not None:
        k = _size("val", val, n, least=0)
        val_label, val_why = "val", f"validation {val!r} as set"
    elif num_val is not None:
        k = num_val
        val_label, val_why = "num_val", f"num_val {num_val}"
    elif user_pool:
        k = max(1, int(USER_VAL_FRACTION * n))
        val_label, val_why = "validation", f"validation: default {_pct(USER_VAL_FRACTION)}"
    elif ds.val_ratio is None:
        k = size
        val_label, val_why = "validation", "validation: as many as train, from the rest"
    else:
        k = int(ds.val_ratio * n)
        val_label, val_why = "validation", f"validation: {_pct(ds.val_ratio)} of the pool, from the rest"
    room = n - size - (1 if one_pool else 0)
    if k > room:
        raise ConfigError(
            f"{val_label} {k} is too large: {ds.name} has {n} rows, {size} go to {train_label}"
            + (", and at least one must stay for the test set" if one_pool else "")
            + f", so at most {room} are left for validation (set --train/--val/--test)"
        )

    rng = np.random.RandomState(seed)
    train_idx = np.sort(rng.choice(n, size=size, replace=False))
    rest = np.sort(np.setdiff1d(np.arange(n), train_idx))
    val_idx = np.sort(rng.choice(rest, size=k, replace=False)) if k else np.array([], dtype=int)
    train_all = tuple(ds.pool[i] for i in train_idx)
    val_set = tuple(ds.pool[i] for i in val_idx)

    # ---- test
    if one_pool:
        test_all = tuple(ds.pool[i] for i in np.setdiff1d(rest, val_idx))
        test_from = "rest of the pool after train and validation"
    else:
        assert ds.test is not None
        test_all = ds.test
        test_from = "the separate test split"
    if test is not None:
        t = _size("test", test, n if one_pool else len(test_all), least=1)
        if t > len(test_all):
            raise ConfigError(
                f"test {t} does not fit: {ds.name} has {n} rows, "
                f"{size} train + {k} validation leave {len(test_all)} for the test set (set --train/--val/--test)"
                if one_pool
                else f"test {t} is more than the {len(test_all)} rows of {ds.name}'s test split"
            )
        test_set = _capped(test_all, t, seed)
        test_why = f"test {test!r} as set"
    else:
        test_set = _capped(test_all, num_test, seed)
        test_why = "test: the rest" if one_pool else "test: the test split"
    train_set = _capped(train_all, num_train, seed)

    recipe = {
        "dataset": ds.name,
        "source": ds.source,
        "seed": int(seed),
        "train_ratio": ratio,
        "pool": n,
        "train": len(train_set),
        "train_before_cap": len(train_all),
        "val": len(val_set),
        "test": len(test_set),
        "test_before_cap": len(test_all),
        "test_from": test_from,
        "val_from": "examples left after the train subset, same generator as the train draw",
        "user_data": bool(getattr(ds, "user", False)),
        "input_fields": list(getattr(ds, "input_fields", ())),
        "target_field": getattr(ds, "target_field", None),
        "gold": all(e.target is not None for e in (*ds.pool, *(ds.test or ()))),  # Dataset.gold
        "template": getattr(ds, "template", None),
    }
    recipe["note"] = _note(
        ds, n, (len(train_set), len(val_set), len(test_set)), (train_why, val_why, test_why), seed=int(seed),
        defaults=user_pool and train is None and train_ratio is None and val is None and num_val is None
        and test is None,
        caps=(num_train if len(train_set) < len(train_all) else None,
              num_test if len(test_set) < len(test_all) and test is None else None),
    )  # fmt: skip
    return Splits(train_set, val_set, test_set, recipe)


def _note(
    ds: Dataset,
    n: int,
    sizes: tuple[int, int, int],
    why: tuple[str, str, str],
    *,
    seed: int,
    defaults: bool,
    caps: tuple[int | None, int | None],
) -> str:
    """The one-line description of a split for people (recorded as ``recipe["note"]``)."""
    a, b, c = sizes
    if ds.test is None:
        head = f"{n} rows: {a} train / {b} validation / {c} test"
    else:
        head = (
            f"{n} train-split rows + a {len(ds.test)}-row test split: {a} train / {b} validation / {c} test"
        )
    if defaults and ds.test is None:
        tail = (
            f"default for your own data: {_pct(USER_TRAIN_FRACTION)} / {_pct(USER_VAL_FRACTION)} / rest; "
            "set --train/--val/--test"
        )
    else:
        source = "your own data" if getattr(ds, "user", False) else f"OPRO's recipe for {ds.name}"
        tail = f"{source}: {'; '.join(why)}; seed {seed}"
        if getattr(ds, "user", False):
            tail += "; set --train/--val/--test"
    capped = [
        f"{what} capped at {cap} by num_{what}"
        for what, cap in zip(("train", "test"), caps, strict=True)
        if cap
    ]
    return f"{head} ({tail})" + (f", {', '.join(capped)}" if capped else "")
