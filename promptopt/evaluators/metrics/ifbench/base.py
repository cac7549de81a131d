"""What an IFBench checker is: one verifiable constraint, built from its kwargs, judging a response.

Why a small class per constraint kind (the families live in their own modules, the registry in
:mod:`.registry`): each kind has its own arguments and its own rule, and each rule is the
reference checker's semantics, written out and tested against its verdicts
(``bench/ifbench_reference.py``). A checker is built once per (constraint, kwargs) and then judges
any number of responses:

- ``Checker.build(kwargs)`` — the constraint's arguments as the data gives them (``null`` values
  and keys the constraint does not use are ignored, as the reference ignores them); a missing or
  malformed argument is a :class:`~promptopt.errors.DataError` naming the constraint.
- ``checker.check(response) -> Verdict`` — ``followed`` and a one-line ``detail`` that says what
  was asked and, when it was not followed, what was found ("'whisper' must appear 3 times, found
  1"); the detail is what a reflective optimizer reads, so it is specific.

A checker never raises on a response: where the reference raises (it divides by a zero word count,
indexes an empty sentence), the constraint counts as not followed, with a detail saying so.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from promptopt.errors import DataError


@dataclass(frozen=True)
class Verdict:
    """Whether a response followed one constraint, and a one-line reason."""

    followed: bool
    detail: str


def quote(text: str, limit: int = 60) -> str:
    """``text`` quoted on one line, cut to ``limit`` characters (details stay one line)."""
    flat = " ".join(str(text).split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def plural(n: int, word: str) -> str:
    """``"1 word"`` / ``"3 words"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Checker:
    """Base of the constraint checkers: ``id`` (e.g. ``count:numbers``), :meth:`build`, :meth:`check`.

    Subclasses declare ``args`` (the kwargs they read, all required), parse them in :meth:`setup`
    (with :meth:`int_arg` / :meth:`str_arg`, so bad values are refused when the checker is built)
    and implement :meth:`describe` and :meth:`_check`.
    """

    id: ClassVar[str] = ""
    args: ClassVar[tuple[str, ...]] = ()

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        self.kw = dict(kwargs)
        self.setup()

    @classmethod
    def build(cls, kwargs: Mapping[str, Any] | None) -> Checker:
        """The checker for ``kwargs`` (unused keys and nulls ignored); DataError when a needed
        argument is missing or malformed."""
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise DataError(
                f"IFBench constraint {cls.id}: kwargs must be an object, got {type(kwargs).__name__}"
            )
        given = {k: v for k, v in (kwargs or {}).items() if v is not None}
        missing = [a for a in cls.args if a not in given]
        if missing:
            raise DataError(f"IFBench constraint {cls.id} needs {', '.join(missing)} in its kwargs")
        return cls({a: given[a] for a in cls.args})

    def setup(self) -> None:
        """Read and check the arguments (nothing for a constraint without any)."""

    def describe(self) -> str:
        """What the constraint asks, in one line."""
        raise NotImplementedError

    def _check(self, response: str) -> Verdict:
        raise NotImplementedError

    def check(self, response: str) -> Verdict:
        """The verdict on ``response``; an error inside the rule is a failed constraint."""
        try:
            return self._check(response)
        except (ArithmeticError, IndexError, ValueError, csv.Error) as exc:  # where the reference raises
            return Verdict(
                False, f"{self.describe()}; the response could not be checked ({type(exc).__name__})"
            )

    # -- helpers for subclasses
    def int_arg(self, name: str) -> int:
        """A whole-number argument (``3``, ``3.0`` or ``"3"``), else a DataError."""
        value = self.kw[name]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not number.is_integer():
            raise DataError(f"IFBench constraint {self.id}: {name} must be a whole number, got {value!r}")
        return int(number)

    def num_arg(self, name: str) -> float:
        """A numeric argument (``42``, ``42.5`` or ``"42"``), else a DataError."""
        value = self.kw[name]
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or number != number or number in (float("inf"), float("-inf")):
            raise DataError(f"IFBench constraint {self.id}: {name} must be a number, got {value!r}")
        return number

    def str_arg(self, name: str) -> str:
        """A non-empty text argument, else a DataError."""
        value = self.kw[name]
        if not isinstance(value, str) or not value:
            raise DataError(f"IFBench constraint {self.id}: {name} must be non-empty text, got {value!r}")
        return value

    def verdict(self, followed: bool, found: str) -> Verdict:
        """The description, and when not followed what was ``found`` ("it has 12 words")."""
        return Verdict(followed, self.describe() if followed else f"{self.describe()}; {found}")
