"""Where an instruction goes relative to a question: OPRO's four positions.

Shared by the instruction-search scorer and by ``AlignedLLM(llm, instruction=...)`` so that an
instruction found by search is deployed exactly the way it was scored.

- ``Q_begin``: instruction, blank line, question (in the user message).
- ``Q_end``: question, blank line, instruction.
- ``A_begin``: the answer starts with the instruction. Chat APIs cannot prefill the assistant turn
  portably, so the user message ends with ``\\n\\nA: <instruction>`` — the same text the paper's
  plain-prompt scorer sees ("Q: ...\\n\\nA: <instruction>").
- ``system``: the instruction is the system message (replacing none; an existing system message
  is kept and the instruction is prepended to it).
An empty instruction leaves the messages unchanged, which is the "no instruction" baseline.

Demonstrations (few-shot examples, :class:`Demo`) go in as earlier chat turns — a user message with
the demo's input, an assistant message with its answer — between the system message and the
question (:func:`apply_demos`), the way chat models are shown examples (DSPy's chat adapter does the
same). The instruction is placed around the final question only, so a demo reads as a plain past
exchange and the instruction's position means what it means without demos.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from promptopt.errors import ConfigError
from promptopt.llm.base import Message

Position = Literal["Q_begin", "Q_end", "A_begin", "system"]
POSITIONS: tuple[str, ...] = ("Q_begin", "Q_end", "A_begin", "system")


def check_position(position: str) -> Position:
    if position not in POSITIONS:
        raise ConfigError(f"unknown instruction position {position!r}; choose one of {', '.join(POSITIONS)}")
    return position  # type: ignore[return-value]


def apply_instruction(messages: Sequence[Message], instruction: str, position: str) -> tuple[Message, ...]:
    """Messages with ``instruction`` placed at ``position`` around the *last user* message."""
    check_position(position)
    msgs = list(messages)
    if not instruction.strip():
        return tuple(msgs)
    if position == "system":
        if msgs and msgs[0].role == "system":
            msgs[0] = Message("system", f"{instruction}\n\n{msgs[0].content}")
        else:
            msgs.insert(0, Message("system", instruction))
        return tuple(msgs)
    idx = max((i for i, m in enumerate(msgs) if m.role == "user"), default=None)
    if idx is None:
        msgs.append(Message("user", instruction))
        return tuple(msgs)
    q = msgs[idx].content
    if position == "Q_begin":
        text = f"{instruction}\n\n{q}"
    elif position == "Q_end":
        text = f"{q}\n\n{instruction}"
    else:  # A_begin
        text = f"Q: {q}\n\nA: {instruction}"
    msgs[idx] = Message("user", text)
    return tuple(msgs)


@dataclass(frozen=True)
class Demo:
    """One few-shot demonstration: a question as the user would ask it and the answer shown."""

    input: str
    output: str

    def to_json(self) -> dict[str, str]:
        return {"input": self.input, "output": self.output}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Demo:
        """A demo from a run's files (``{"input": ..., "output": ...}``); a clear error otherwise."""
        if not isinstance(data, Mapping) or not all(
            isinstance(data.get(k), str) for k in ("input", "output")
        ):
            raise ConfigError(f"a demonstration must be {{'input': text, 'output': text}}, got {data!r:.120}")
        return cls(data["input"], data["output"])


def demos_from_json(data: Any) -> tuple[Demo, ...]:
    """Demos recorded in a run's ``config.json`` / ``result.json`` (None or [] → none)."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError(f"demos must be a list of {{'input', 'output'}} objects, got {type(data).__name__}")
    return tuple(Demo.from_json(d) for d in data)


def demo_set_id(demos: Sequence[Demo | Mapping[str, Any]]) -> str:
    """A short stable id of a set of few-shot demos, in prompt order ('' for none): the first 12 hex
    digits of the sha256 of their JSON.

    Why one function: a deployed model's name carries it (``AlignedLLM``'s ``demos:K:ID``) and so
    does every answer logged under that set (``answers.jsonl``), so a served model and its logged
    answers name the same set only as long as both compute it the same way. A demo read back from a
    run's files (a mapping) gives the id of the :class:`Demo` it stands for.
    """
    if not demos:
        return ""
    shown = [(d if isinstance(d, Demo) else Demo.from_json(d)).to_json() for d in demos]
    blob = json.dumps(shown, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def apply_demos(messages: Sequence[Message], demos: Sequence[Demo]) -> tuple[Message, ...]:
    """Messages with ``demos`` as user / assistant turns right before the *last user* message."""
    msgs = list(messages)
    if not demos:
        return tuple(msgs)
    idx = max((i for i, m in enumerate(msgs) if m.role == "user"), default=len(msgs))
    turns = [
        Message(role, text) for d in demos for role, text in (("user", d.input), ("assistant", d.output))
    ]
    return tuple(msgs[:idx] + turns + msgs[idx:])


@dataclass(frozen=True)
class DemoSearchSettings:
    """The demo search's schedule (MIPROv2's scheme, :mod:`promptopt.optimizers.demos.search`): demo
    sets per search, training minibatch size, TPE trials, a full validation every so many trials,
    bootstrap size. Here, beside :class:`Demo`, so the cost projection (a task-layer module) reads the
    very numbers the search uses without importing the optimizer layer."""

    num_sets: int = 6
    minibatch_size: int = 8
    trials: int = 20
    full_eval_every: int = 5
    max_bootstrap_examples: int | None = None


#: the defaults ``asearch_demos`` runs with (``opro run --demos K`` leaves them as they are)
DEMO_SEARCH = DemoSearchSettings()
