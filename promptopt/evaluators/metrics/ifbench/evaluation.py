"""Judging one response against a prompt's constraints, strict and loose, as IFBench defines them.

- **strict**: the response as it is; an empty (all-whitespace) response follows nothing.
- **loose**: followed if the constraint holds for any of eight variants of the response: as is,
  without its first line, without its last line, without both, and each of these with every ``*``
  removed (markdown emphasis) — the benchmark's upper bound, forgiving a preamble ("Sure! Here
  is...") or a closing remark.

Prompt-level accuracy counts a response as right when it follows *all* its constraints;
instruction-level accuracy is the share of constraints followed.

Where the constraints come from (:func:`constraints_of`): an example's ``instruction_id_list``
(ids) and ``kwargs`` (one object of arguments per id, nulls for unused keys) columns, as lists or
as JSON text (a CSV cell), so a user's own file in the benchmark's format works as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptopt.errors import DataError
from promptopt.evaluators.metrics.ifbench.base import Checker, Verdict
from promptopt.evaluators.metrics.ifbench.registry import build_checker

ID_COLUMN = "instruction_id_list"
KWARGS_COLUMN = "kwargs"


def loose_variants(response: str) -> list[str]:
    """The eight texts the loose mode tries, in the benchmark's order."""
    lines = response.split("\n")
    cut = ["\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return [response, response.replace("*", ""), *cut, *(c.replace("*", "") for c in cut)]


@dataclass(frozen=True)
class ConstraintResult:
    """One constraint's outcome: the strict verdict (with its detail) and the loose one."""

    id: str
    strict: Verdict
    loose: bool

    def followed(self, loose: bool = False) -> bool:
        return self.loose if loose else self.strict.followed


def judge(checker: Checker, response: str) -> ConstraintResult:
    """``checker`` on ``response``, strict and loose."""
    if response.strip():
        strict = checker.check(response)
    else:
        strict = Verdict(False, f"{checker.describe()}; the response is empty")
    loose = strict.followed or any(
        v.strip() and checker.check(v).followed for v in loose_variants(response)[1:]
    )
    return ConstraintResult(checker.id, strict, loose)


def _as_list(value: Any, column: str, where: str) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"{where}: {column} is text but not JSON: {value[:60]!r}") from None
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise DataError(f"{where}: {column} must be a list, got {type(value).__name__}")
    return value


def constraints_of(fields: Mapping[str, Any], where: str = "example") -> list[Checker]:
    """The checkers of a row's ``instruction_id_list`` and ``kwargs`` columns (see the module doc)."""
    if ID_COLUMN not in fields:
        raise DataError(
            f"{where} has no {ID_COLUMN!r} column: the ifbench metric reads the constraints from "
            f"{ID_COLUMN!r} (and their arguments from {KWARGS_COLUMN!r}); columns: {', '.join(map(str, fields))}"
        )
    ids = _as_list(fields[ID_COLUMN], ID_COLUMN, where)
    raw_kwargs = fields.get(KWARGS_COLUMN)
    kwargs = [{}] * len(ids) if raw_kwargs is None else _as_list(raw_kwargs, KWARGS_COLUMN, where)
    if len(kwargs) != len(ids):
        raise DataError(f"{where}: {len(ids)} instruction ids but {len(kwargs)} kwargs objects")
    if not ids:
        raise DataError(f"{where}: {ID_COLUMN} is empty (no constraint to check)")
    try:
        return [build_checker(i, k) for i, k in zip(ids, kwargs, strict=True)]
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None


def evaluate(checkers: Sequence[Checker], response: str) -> list[ConstraintResult]:
    """Each constraint's strict and loose outcome on ``response``."""
    return [judge(c, response) for c in checkers]
