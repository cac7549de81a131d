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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

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
