"""Building blocks for tasks' proposal shapes (:class:`~promptopt.tasks.base.ProposalShape`).

Each helper returns the same language twice, as a GBNF expression (what llama.cpp and vLLM decode
under) and as a Python regex (what the scripted fake honours and tests check), so the two forms of
a :class:`~promptopt.llm.base.Constraint` cannot drift apart. Every repetition is bounded, so a
constrained model can always finish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Form:
    """One language as a GBNF expression and as a Python regex (no anchors)."""

    gbnf: str
    regex: str


def literal(text: str) -> Form:
    """Exactly ``text``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return Form(f'"{escaped}"', re.escape(text))


def _digits(lo: str, hi: str) -> Form:
    return Form(f"[{lo}-{hi}]" if lo != hi else f'"{lo}"', f"[{lo}-{hi}]" if lo != hi else lo)


def _at_most(bound: str) -> list[list[Form]]:
    """Alternatives (sequences) for the fixed-width digit strings ``<= bound`` (leading zeros allowed)."""
    first = bound[0]
    rest = len(bound) - 1
    if rest == 0:
        return [[_digits("0", first)]]
    alts: list[list[Form]] = []
    if first != "0":
        alts.append([_digits("0", str(int(first) - 1)), _repeat_digit(rest)])
    alts.extend([[literal(first), *tail] for tail in _at_most(bound[1:])])
    return alts


def _repeat_digit(count: int) -> Form:
    return Form(f"[0-9]{{{count}}}", f"[0-9]{{{count}}}") if count > 1 else Form("[0-9]", "[0-9]")


def int_range(hi: int) -> Form:
    """The decimal integers 0..``hi`` without leading zeros (``hi`` >= 0)."""
    if hi < 0:
        raise ValueError(f"hi must be >= 0, got {hi}")
    top = str(hi)
    alts: list[list[Form]] = []
    for width in range(1, len(top)):
        alts.append([Form("[0-9]", "[0-9]")] if width == 1 else [_digits("1", "9"), _repeat_digit(width - 1)])
    if len(top) == 1:
        alts.append([_digits("0", top)])
    else:
        if top[0] != "1":
            alts.append([_digits("1", str(int(top[0]) - 1)), _repeat_digit(len(top) - 1)])
        alts.extend([[literal(top[0]), *tail] for tail in _at_most(top[1:])])
    gbnf = " | ".join(" ".join(f.gbnf for f in seq) for seq in alts)
    regex = "|".join("".join(f.regex for f in seq) for seq in alts)
    return Form(f"({gbnf})", f"(?:{regex})")


def bounded_text(excluded: str, max_chars: int) -> Form:
    """1..``max_chars`` characters, none of them in ``excluded`` (nor a line break)."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    chars = sorted(set(excluded) | {"\n", "\r"})
    gbnf_escapes = {"\n": "\\n", "\r": "\\r", "]": "\\]", "[": "\\[", "\\": "\\\\", "^": "\\^", "-": "\\-"}
    gbnf_class = "".join(gbnf_escapes.get(c, c) for c in chars)
    regex_class = "".join(re.escape(c) if c not in "\n\r" else {"\n": "\\n", "\r": "\\r"}[c] for c in chars)
    return Form(f"[^{gbnf_class}]{{1,{max_chars}}}", f"[^{regex_class}]{{1,{max_chars}}}")


def grammar(root: str, **rules: str) -> str:
    """A GBNF grammar text: ``root ::= ...`` then the named rules."""
    lines = [f"root ::= {root}", *(f"{name} ::= {body}" for name, body in rules.items())]
    return "\n".join(lines) + "\n"
