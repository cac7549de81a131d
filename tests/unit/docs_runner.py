"""Finding and running the documentation's runnable code blocks (used by tests/unit/test_docs.py).

The convention (also in docs/contributing.md): an HTML comment on the line right before a fenced
block marks it, and is invisible on the site.

- ``<!-- runnable -->`` before a ```` ```python ```` block: executed with ``exec`` in a fresh
  namespace.
- ``<!-- runnable -->`` before a ```` ```bash ```` block: every command in it is run. A command is
  ``promptopt ARGS`` (run in-process through the console-script entry point
  :func:`promptopt.cli.main`), optionally preceded by ``NAME=VALUE`` assignments that hold for that
  command, or ``export NAME=VALUE ...`` (holds for the rest of the page). Anything else in a marked
  block fails the test: a block that cannot run here must not be marked.
- ``<!-- runnable: file NAME -->`` before any block: its text is written to the file NAME (the data
  file or module a reader is asked to create), so the commands after it can read it.

A page's marked blocks run in order, in one fresh directory, as a reader following the page
would. Every model spec they name (``local``, ``openai:...``, ``litellm:...``) is answered by the
scripted stand-in below, so the commands and the code are the real ones and only the model is not.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.llm.base import Request
from promptopt.llm.fake import FakeLLM, request_text

MARKER = re.compile(r"^\s*<!--\s*runnable(?::\s*file\s+(?P<file>\S+))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
SHELLS = ("bash", "sh", "shell", "console")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts (1-based line of its fence), its language, its text and
    what its marker asks (``None``: not marked, ``"run"``, or ``"file"`` with ``file`` set)."""

    page: Path
    line: int
    lang: str
    text: str
    action: str | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page, with its marker if the line before the fence has one.
    A marker that is not followed by a fence is an error (it would silently mark nothing)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        if marker and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
            raise ValueError(f"{page}:{i + 1}: a runnable marker must be followed by a fenced block")
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m.group("indent")), m.group("fence")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        prev = MARKER.match(lines[i - 1]) if i > 0 else None
        action = None if prev is None else ("file" if prev.group("file") else "run")
        info = m.group("info").strip().split()
        lang = info[0] if info else ""
        out.append(Block(page, i + 1, lang, "\n".join(body) + "\n", action, prev and prev.group("file")))
        i = j + 1
    return out


def commands(text: str) -> Iterator[list[str]]:
    """The commands of a shell block as argument lists: continuation lines joined, comments and
    blank lines dropped."""
    for line in text.replace("\\\n", " ").splitlines():
        args = shlex.split(line, comments=True)
        if args:
            yield args


def split_command(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """(``NAME=VALUE`` assignments before the command, the command)."""
    env: dict[str, str] = {}
    while args and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", args[0]):
        name, _, value = args[0].partition("=")
        env[name] = value
        args = args[1:]
    return env, args


# --------------------------------------------------------------------------- the stand-in model

#: instructions the stand-in proposes, in turn
INSTRUCTIONS = (
    "Answer with the label only: positive or negative.",
    "Read the review, then answer with one word: positive or negative.",
    "Decide whether the review likes the film; reply positive or negative.",
    "Think about the reviewer's tone and answer positive or negative.",
)
#: (w, b) pairs the stand-in proposes on the linear-regression task, in turn
PAIRS = ((14, 13), (15, 14), (16, 12), (13, 15), (17, 14), (15, 13))


def standin_reply() -> Callable[[Request, int], str]:
    """A reply function that answers each kind of request promptopt sends in the format it asks
    for: OPRO proposals, reflections, BPO construction, judges, and answers to the guides' data."""
    turn = itertools.count()

    def reply(request: Request, index: int) -> str:
        text, k = request_text(request), next(turn)
        if "Optimized Instruction:" in text:  # BPO's data construction prompt
            return "The worse answer lacks detail.\nOptimized Instruction: Answer in detail, step by step, with one example. [END]"
        if "### Example" in text and "```" in text:  # a reflection (--proposer reflective)
            return f"```\n{INSTRUCTIONS[k % len(INSTRUCTIONS)]}\n```"
        if "<INS>" in text:  # OPRO's chat meta-prompt
            return f"<INS>{INSTRUCTIONS[k % len(INSTRUCTIONS)]}</INS>"
        if "two input variables w, b" in text:  # OPRO's linear-regression meta-prompt
            w, b = PAIRS[k % len(PAIRS)]
            return f"[{w}, {b}]"
        if "Score: <total points>" in text:  # the rubric judge
            return "The response is relevant and clear. Score: 4"
        if "[[A]]" in text:  # the pairwise judge
            return "[[A]]"
        if "unhelpful, inaccurate" in text:  # RLCD's negative cue (bpo build-pairs)
            return "No idea."
        last = text.strip().splitlines()[-1].lower() if text.strip() else ""
        label = "negative" if ("dull" in last or "too long" in last) else None
        label = label or ("positive" if ("moving" in last or "beautiful" in last) else None)
        if label is not None:  # a review: labelled right only when the instruction names the labels
            return label if "positive or negative" in text else "This is a film review."
        return "A short, direct answer."

    return reply


def standin_backend(scheme: str) -> Callable[..., Any]:
    """What :func:`promptopt.llm.registry.backend_factory` returns under the stand-in: a factory
    that builds a scripted model for any spec of ``scheme`` (credentials and options ignored)."""
    fn = standin_reply()
    return lambda rest, **options: FakeLLM(fn=fn, name=f"{scheme}:{rest}" if rest else scheme)
