"""Preference-pair sources for BPO: a file or a Hub dataset with some column layout, turned into
:class:`PreferencePair` records through a named preset (``bpo``, ``hh-rlhf``, ``chosen-rejected``,
``columns``) or a ``--map KEY=COLUMN`` mapping.

Why apart from the test sets: pairs feed data construction (``bpo build-data``), test sets feed
evaluation; they share only the file readers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, DataError, UnknownNameError
from promptopt.optimizers.bpo.testsets import load_rows

# --------------------------------------------------------------------------- preference pairs


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred and a dispreferred response. ``context`` is optional input text
    (Alpaca-style) that the rewrite must leave unchanged; ``meta`` keeps other source columns."""

    instruction: str
    good: str
    bad: str
    context: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


#: Canonical keys a ``--map KEY=COLUMN`` may set.
PAIR_KEYS = ("instruction", "context", "good", "bad")


@dataclass(frozen=True)
class PairPreset:
    """A column layout. ``convert`` turns one row into a pair, or a reason string to skip it."""

    name: str
    help: str
    columns: Mapping[str, str]
    convert: Callable[[Mapping[str, Any], Mapping[str, str]], PreferencePair | str]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _convert_columns(row: Mapping[str, Any], cols: Mapping[str, str]) -> PreferencePair | str:
    instruction = _text(row.get(cols["instruction"]))
    good, bad = _text(row.get(cols["good"])), _text(row.get(cols["bad"]))
    context = _text(row.get(cols.get("context", ""), "")) if cols.get("context") else ""
    if not instruction:
        return "empty_prompt"
    if not good or not bad:
        return "empty_response"
    meta = {k: v for k, v in row.items() if k not in set(cols.values()) and _is_plain(v)}
    return PreferencePair(instruction, good, bad, context, meta)


def _is_plain(v: Any) -> bool:
    return isinstance(v, str | int | float | bool) or v is None


def split_hh_transcript(text: str) -> tuple[list[tuple[str, str]], str] | None:
    """Split an HH-RLHF transcript (``\\n\\nHuman: ... \\n\\nAssistant: ...``) into turns.

    Returns (turns before the last assistant turn, last assistant text), or None when the text
    does not end with an assistant turn.
    """
    turns: list[tuple[str, str]] = []
    rest = "\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text
    parts = rest.split("\n\nHuman:")
    for part in parts[1:]:
        human, sep, assistant = part.partition("\n\nAssistant:")
        turns.append(("user", human.strip()))
        if sep:
            turns.append(("assistant", assistant.strip()))
    if not turns or turns[-1][0] != "assistant":
        return None
    return turns[:-1], turns[-1][1]


def _convert_hh(row: Mapping[str, Any], cols: Mapping[str, str]) -> PreferencePair | str:
    """HH-RLHF: two transcripts sharing the prompt; single-turn dialogues only (as BPO used)."""
    chosen, rejected = row.get(cols["good"]), row.get(cols["bad"])
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        return "bad_layout"
    a, b = split_hh_transcript(chosen), split_hh_transcript(rejected)
    if a is None or b is None:
        return "bad_layout"
    (prefix_a, good), (prefix_b, bad) = a, b
    if prefix_a != prefix_b:
        return "prompt_mismatch"
    if len(prefix_a) != 1:
        return "multi_turn"
    instruction = prefix_a[0][1]
    if not instruction:
        return "empty_prompt"
    if not good or not bad:
        return "empty_response"
    return PreferencePair(instruction, good, bad)


def _last_assistant(messages: Any) -> tuple[list[Mapping[str, Any]], str] | None:
    if not isinstance(messages, list) or not messages:
        return None
    if not all(isinstance(m, Mapping) for m in messages):
        return None
    last = messages[-1]
    if last.get("role") != "assistant":
        return None
    return list(messages[:-1]), _text(last.get("content"))


def _convert_chosen_rejected(row: Mapping[str, Any], cols: Mapping[str, str]) -> PreferencePair | str:
    """``prompt`` + ``chosen``/``rejected`` as strings or as chat message lists (UltraFeedback style)."""
    chosen, rejected = row.get(cols["good"]), row.get(cols["bad"])
    prompt = _text(row.get(cols["instruction"]))
    if isinstance(chosen, str) and isinstance(rejected, str):
        good, bad = chosen.strip(), rejected.strip()
    else:
        a, b = _last_assistant(chosen), _last_assistant(rejected)
        if a is None or b is None:
            return "bad_layout"
        (prefix, good), (_, bad) = a, b
        users = [m for m in prefix if m.get("role") == "user"]
        if len([m for m in prefix if m.get("role") != "system"]) > 1:
            return "multi_turn"
        if not prompt and users:
            prompt = _text(users[0].get("content"))
    if not prompt:
        return "empty_prompt"
    if not good or not bad:
        return "empty_response"
    return PreferencePair(prompt, good, bad)


PAIR_PRESETS: Mapping[str, PairPreset] = {
    "bpo": PairPreset(
        "bpo",
        "BPO's own layout: instruction (or prompt), context, good_res, bad_res",
        {"instruction": "instruction", "context": "context", "good": "good_res", "bad": "bad_res"},
        _convert_columns,
    ),
    "hh-rlhf": PairPreset(
        "hh-rlhf",
        "Anthropic HH-RLHF: chosen/rejected transcripts with Human:/Assistant: turns (single-turn kept)",
        {"instruction": "", "good": "chosen", "bad": "rejected"},
        _convert_hh,
    ),
    "chosen-rejected": PairPreset(
        "chosen-rejected",
        "prompt + chosen/rejected, as strings or chat message lists (UltraFeedback-binarized style)",
        {"instruction": "prompt", "good": "chosen", "bad": "rejected"},
        _convert_chosen_rejected,
    ),
    "columns": PairPreset(
        "columns",
        "plain columns prompt, chosen, rejected (set others with --map)",
        {"instruction": "prompt", "good": "chosen", "bad": "rejected", "context": ""},
        _convert_columns,
    ),
}


def parse_mapping(items: Sequence[str]) -> dict[str, str]:
    """``["instruction=question", "good=better"]`` → dict, checked against :data:`PAIR_KEYS`."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, column = item.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or not key or not column:
            raise ConfigError(f"--map expects KEY=COLUMN, got {item!r}")
        if key not in PAIR_KEYS:
            raise ConfigError(f"--map key {key!r} is not one of {', '.join(PAIR_KEYS)}")
        out[key] = column
    return out


def detect_preset(row: Mapping[str, Any]) -> str:
    """Guess the layout from the first row's columns (used by ``preset="auto"``)."""
    if "good_res" in row and "bad_res" in row:
        return "bpo"
    if "chosen" in row and "rejected" in row:
        if "prompt" in row or not isinstance(row["chosen"], str):
            return "chosen-rejected"
        if isinstance(row["chosen"], str) and "\n\nAssistant:" in row["chosen"]:
            return "hh-rlhf"
    raise DataError(
        f"cannot tell the layout of columns {sorted(row)}; pass --preset "
        f"({', '.join(PAIR_PRESETS)}) and/or --map KEY=COLUMN"
    )


@dataclass
class LoadedPairs:
    """Pairs read from a source, plus how many rows were skipped and why."""

    pairs: list[PreferencePair]
    skipped: dict[str, int]
    preset: str


def pairs_from_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    preset: str = "auto",
    mapping: Mapping[str, str] | None = None,
    limit: int | None = None,
) -> LoadedPairs:
    """Convert rows with a preset and column overrides; ``limit`` counts kept pairs."""
    if not rows:
        raise DataError("the preference source holds no rows")
    name = detect_preset(rows[0]) if preset == "auto" else preset
    spec = PAIR_PRESETS.get(name)
    if spec is None:
        raise UnknownNameError(f"unknown preset {preset!r}; known: auto, {', '.join(PAIR_PRESETS)}")
    cols = {**spec.columns, **(mapping or {})}
    if name == "bpo" and "instruction" not in (mapping or {}) and "instruction" not in rows[0]:
        cols["instruction"] = "prompt"  # bpo-test and the Hub files call it prompt
    missing = [c for k, c in cols.items() if c and k != "context" and c not in rows[0]]
    if missing:
        raise DataError(
            f"preset {name!r} expects column(s) {', '.join(missing)}; the source has {sorted(rows[0])} "
            "(use --map KEY=COLUMN)"
        )
    pairs: list[PreferencePair] = []
    skipped: dict[str, int] = {}
    for row in rows:
        if limit is not None and len(pairs) >= limit:
            break
        got = spec.convert(row, cols)
        if isinstance(got, str):
            skipped[got] = skipped.get(got, 0) + 1
        else:
            pairs.append(got)
    return LoadedPairs(pairs, skipped, name)


def load_pairs(
    source: str | Path,
    *,
    preset: str = "auto",
    mapping: Mapping[str, str] | None = None,
    split: str = "train",
    limit: int | None = None,
) -> LoadedPairs:
    """Preference pairs from a JSON/JSONL file, a local dataset folder or a Hub dataset id."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be a positive integer, got {limit}")
    return pairs_from_rows(load_rows(source, split=split), preset=preset, mapping=mapping, limit=limit)
