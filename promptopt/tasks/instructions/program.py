"""The prompt program: how a row and a candidate instruction become the scorer's messages.

Why a thing of its own: a prompt task is *dataset × prompt program × metric*, and each part is the
user's to replace. The dataset says what a row is; the metric says how an answer is scored; the
program says what the model is shown:

- ``template`` (with ``input_fields``): how a row's columns become the user message
  (``"Context: {context}\\nQuestion: {question}"``). It is rendered once, when the data is loaded
  (:mod:`.datasets`), so the request cache and every split see the same text; it is recorded here so
  a run says how its inputs were made.
- ``system_prompt``: a fixed base system message kept beside the searched instruction (a deployed
  assistant's persona or rules the search must not drop).
- ``position``: where the searched instruction goes (OPRO's ``Q_begin``, ``Q_end``, ``A_begin``, or
  ``system``, prepended to the base system prompt; see :mod:`promptopt.prompting`).

``AlignedLLM(llm, instruction=..., position=..., system_prompt=...)`` deploys a found instruction
through the same placement, so what was scored is what is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promptopt.errors import ConfigError
from promptopt.llm.base import Message
from promptopt.prompting import apply_instruction, check_position


@dataclass(frozen=True)
class PromptProgram:
    """Where the searched instruction goes and what is fixed around it (see the module docstring)."""

    position: str = "Q_begin"
    system_prompt: str | None = None
    template: str | None = None
    input_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_position(self.position)
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise ConfigError(f"system_prompt must be text, got {type(self.system_prompt).__name__}")
        if self.system_prompt is not None and not self.system_prompt.strip():
            object.__setattr__(self, "system_prompt", None)

    def messages(self, question: str, instruction: str) -> tuple[Message, ...]:
        """The scorer's messages for one (already rendered) question and an instruction."""
        msgs: list[Message] = []
        if self.system_prompt is not None:
            msgs.append(Message("system", self.system_prompt))
        msgs.append(Message("user", question))
        return apply_instruction(msgs, instruction, self.position)

    def to_json(self) -> dict[str, Any]:
        """What a run's report records of the program (only what is set beyond the position)."""
        out: dict[str, Any] = {"position": self.position}
        if self.system_prompt is not None:
            out["system_prompt"] = self.system_prompt
        if self.template is not None:
            out["template"] = self.template
        if self.input_fields:
            out["input_fields"] = list(self.input_fields)
        return out
