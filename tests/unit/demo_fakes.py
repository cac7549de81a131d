"""The scripted task the demonstration tests share: "What is a + a?" questions and a fake scorer
whose answers depend on the request only (instruction, demo turns, question)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

from promptopt.llm.base import Request
from promptopt.llm.fake import FakeLLM
from promptopt.tasks.instructions.task import InstructionTask, create

#: the instruction the scorer rewards, and one it never does
CAREFUL = "Add carefully."
LAZY = "Just answer."


def last_user(request: Request) -> str:
    return next(m.content for m in reversed(request.messages or ()) if m.role == "user")


def demo_outputs(request: Request) -> list[str]:
    """The assistant turns before the question: the demos' outputs, in order."""
    return [m.content for m in (request.messages or ())[:-1] if m.role == "assistant"]


def operand(text: str) -> int:
    return int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]


def answer(request: Request, _i: int = 0) -> Any:
    """Right only under CAREFUL: on even operands always, on odd ones only when the first demo is a
    bare labelled answer (digits only). So the one best combination is CAREFUL with the labelled
    set; the instruction alone is worth 50 %."""
    question = last_user(request)
    a = operand(question)
    outputs = demo_outputs(request)
    labelled_first = bool(outputs) and outputs[0].strip().isdigit()
    right = CAREFUL in question and (a % 2 == 0 or labelled_first)
    got = 2 * a if right else 2 * a + 1
    return f"Adding {a} and {a} step by step gives {got}. The answer is {got}."


def write_data(path: Path, n: int = 80) -> Path:
    path.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(n)),
        encoding="utf-8",
    )
    return path


def make_task(data: Path, scorer: Any = None, **options: Any) -> InstructionTask:
    """The task over ``data`` (80 rows by default: 16 train / 8 validation / 56 test) scored by ``scorer``."""
    return create(dataset=f"jsonl:{data}", scorer=scorer or FakeLLM(fn=answer), keep_answers=False, **options)


def proposer() -> FakeLLM:
    """An optimizer that proposes a new instruction every time (no digits, no duplicates)."""
    counter = itertools.count()

    def propose(request: Request, index: int) -> str:
        word = "".join(chr(97 + int(d)) for d in str(next(counter)))
        return f"<INS>Add carefully, variant {word}.</INS>"

    return FakeLLM(fn=propose, name="optimizer")
