"""The IFBench constraint kinds: instruction id (``count:numbers``) → checker class.

All 58 kinds of the benchmark's registry (57 of them occur in its 294 test prompts;
``custom:character_reverse`` does not). Built from the family modules' ``CHECKERS`` tuples, so a
kind is declared once, on its class.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from promptopt.errors import DataError
from promptopt.evaluators.metrics.ifbench import count, custom, formats, ratio, repeat, sentence, words
from promptopt.evaluators.metrics.ifbench.base import Checker

#: instruction id → checker class; read-only
CHECKERS: Mapping[str, type[Checker]] = MappingProxyType(
    {
        cls.id: cls
        for family in (count, ratio, words, sentence, formats, custom, repeat)
        for cls in family.CHECKERS
    }
)


def build_checker(instruction_id: Any, kwargs: Mapping[str, Any] | None) -> Checker:
    """The checker of one constraint; DataError for an unknown id or bad arguments."""
    cls = CHECKERS.get(instruction_id) if isinstance(instruction_id, str) else None
    if cls is None:
        families = sorted({k.split(":")[0] for k in CHECKERS})
        raise DataError(
            f"unknown IFBench instruction id {instruction_id!r}; ids look like count:numbers "
            f"(families: {', '.join(families)}; {len(CHECKERS)} ids in all)"
        )
    return cls.build(kwargs)
