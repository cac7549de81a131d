"""The run's answer log: every candidate's answer per example, with the metric's value and feedback.

Why: a score of 40 says nothing about *why* an instruction lost. The journal keeps the 0/1 bits
(``per_example``); this file keeps what the scorer said and what the metric made of it, so a user
(``opro report``: the best candidate's failures next to the baseline's) or a reflective optimizer can
read the reasons. It is derived data — every answer is also in the request cache — so it is written
plainly (appended and flushed, not fsync'd) and a torn last line is skipped on reading.

Layout of ``answers.jsonl`` in the run directory, one JSON object a line:

- ``{"kind": "instruction", "id": ID, "text": ...}`` once per instruction (``ID`` = the first 12 hex
  digits of its sha256), so the answer lines do not repeat long instructions;
- ``{"kind": "example", "id": EXAMPLE_ID, "input": ..., "target": ...}`` once per example;
- ``{"kind": "demos", "id": DEMOS_ID, "demos": [{"input": ..., "output": ...}, ...]}`` once per set
  of few-shot demonstrations (``opro run --demos K``; ``DEMOS_ID``: :func:`~promptopt.prompting.demo_set_id`,
  the id in the name of a model deployed with them);
- ``{"kind": "answer", "split": "train"|"val"|"test", "instruction": ID, "example": EXAMPLE_ID,
  "value": 0..1, "correct": bool, "prediction": ..., "feedback": ..., "answer": TEXT}`` once per
  (split, instruction, demo set, example): deduplicated, so a re-scored or resumed candidate adds
  nothing. An answer asked with demos before the question also has ``"demos": DEMOS_ID``; one
  asked without has no ``demos`` key (as every answer of a log from before demos).

Why the demo set is part of an answer's identity: the demo phase scores the *same* instruction
on the same examples with several demo sets (and without any), and the final report tests the pick
with and without its demos. Keyed by instruction and example alone, only the first of those
answers was kept and the others were dropped as duplicates, so the log (and ``opro report``) could
show an instruction's answers without demos as those of the instruction deployed with them.

Size caps: each answer's text is cut at ``max_chars`` (default 2,000; the cut is marked), and the file
stops growing at ``max_bytes`` (default 100 MB) with one ``{"kind": "capped"}`` line. Failed requests
are not logged (they are retried). ``--no-keep-answers`` turns the log off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.evaluators.accuracy import Evaluation
from promptopt.journal import redact
from promptopt.prompting import Demo, demo_set_id

ANSWERS_FILE = "answers.jsonl"
DEFAULT_MAX_CHARS = 2000
DEFAULT_MAX_BYTES = 100_000_000


def instruction_id(text: str) -> str:
    """A short stable id of an instruction (sha256, not ``hash()``: the same in every process)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f" …[{len(text) - limit} more characters]"


class AnswerLog:
    """Appends answers to ``answers.jsonl`` once per (split, instruction, demo set, example)."""

    def __init__(
        self, path: str | Path, *, max_chars: int = DEFAULT_MAX_CHARS, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.path = Path(path)
        self.max_chars = max_chars
        self.max_bytes = max_bytes
        self._seen: set[tuple[str, str, str, str]] = set()
        self._instructions: set[str] = set()
        self._examples: set[str] = set()
        self._demo_sets: set[str] = set()
        self._capped = False
        self._size = 0
        if self.path.exists():
            self._size = self.path.stat().st_size
            for rec in iter_records(self.path):
                if rec.get("kind") == "instruction":
                    self._instructions.add(str(rec.get("id")))
                elif rec.get("kind") == "example":
                    self._examples.add(str(rec.get("id")))
                elif rec.get("kind") == "demos":
                    self._demo_sets.add(str(rec.get("id")))
                elif rec.get("kind") == "answer":
                    self._seen.add(_answer_key(rec))
                elif rec.get("kind") == "capped":
                    self._capped = True

    def add(
        self, split: str, evaluation: Evaluation, examples: Sequence[Any] = (), demos: Sequence[Demo] = ()
    ) -> None:
        """Log the answered examples of ``evaluation`` not logged before (``examples``, in the
        evaluation's order, give each example's input and gold answer the first time it is seen;
        ``demos``: the few-shot demos the evaluation's requests carried, none by default)."""
        if self._capped:
            return
        ins_id = instruction_id(evaluation.instruction)
        demos_id = demo_set_id(demos)
        head: list[dict[str, Any]] = []
        if ins_id not in self._instructions:
            head.append({"kind": "instruction", "id": ins_id, "text": evaluation.instruction})
        if demos_id and demos_id not in self._demo_sets:
            shown = [
                {"input": _clip(d.input, self.max_chars), "output": _clip(d.output, self.max_chars)}
                for d in demos
            ]
            head.append({"kind": "demos", "id": demos_id, "demos": shown})
        by_id = {str(getattr(ex, "id", "")): ex for ex in examples}
        lines: list[dict[str, Any]] = []
        for r in evaluation.records:
            key = (split, ins_id, demos_id, r.example_id)
            if r.correct is None or key in self._seen:
                continue
            ex = by_id.get(r.example_id)
            if ex is not None and r.example_id not in self._examples:
                target = getattr(ex, "target", None)
                head.append(
                    {
                        "kind": "example",
                        "id": r.example_id,
                        "input": _clip(str(getattr(ex, "input", "")), self.max_chars),
                        "target": None if target is None else _clip(str(target), self.max_chars),
                    }
                )
                self._examples.add(r.example_id)
            row: dict[str, Any] = {"kind": "answer", "split": split, "instruction": ins_id}
            if demos_id:
                row["demos"] = demos_id
            row.update(
                example=r.example_id,
                value=r.score,
                correct=bool(r.correct),
                prediction=r.prediction,
                feedback=_clip(r.feedback, self.max_chars),
                answer=_clip(r.response, self.max_chars),
            )
            lines.append(row)
            self._seen.add(key)
        if not lines:
            return
        self._instructions.add(ins_id)
        if demos_id:
            self._demo_sets.add(demos_id)
        # redacted like the journal: credentials in URLs an answer may quote never reach the disk
        text = "".join(json.dumps(redact(x), ensure_ascii=False) + "\n" for x in head + lines)
        if self._size + len(text.encode("utf-8")) > self.max_bytes:
            text = json.dumps({"kind": "capped", "max_bytes": self.max_bytes}) + "\n"
            self._capped = True
        self._write(text)

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
        self._size += len(text.encode("utf-8"))


def _answer_key(rec: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(split, instruction id, demo set id, example id) of an answer line; '' for the demo set of
    a line without one (no demos, or a log from before demos)."""
    demos = rec.get("demos")
    return (
        str(rec.get("split")),
        str(rec.get("instruction")),
        demos if isinstance(demos, str) else "",
        str(rec.get("example")),
    )


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The log's records; a line that is not a JSON object (a torn tail after a crash) is skipped."""
    p = Path(path)
    if not p.exists():
        return
    with p.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


@dataclass
class Answers:
    """A run's logged answers: instruction and example texts by id, demo sets by id, and
    (split, instruction id, demo set id or '') → example id → answer record."""

    instructions: dict[str, str] = field(default_factory=dict)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    demo_sets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def of(
        self, split: str, instruction: str, demos: Sequence[Demo | Mapping[str, Any]] = ()
    ) -> dict[str, dict[str, Any]]:
        """Example id → answer record of ``instruction`` on ``split`` asked with ``demos`` (a run's
        ``Demo`` objects or its ``{"input", "output"}`` JSON; none by default): empty when not
        logged."""
        return self.answers.get((split, instruction_id(instruction), demo_set_id(demos)), {})


def load_answers(path: str | Path) -> Answers:
    """Everything in an answer log (see the module docstring)."""
    out = Answers()
    for rec in iter_records(path):
        kind = rec.get("kind")
        if kind == "instruction":
            out.instructions[str(rec.get("id"))] = str(rec.get("text", ""))
        elif kind == "example":
            out.examples[str(rec.get("id"))] = rec
        elif kind == "demos" and isinstance(rec.get("demos"), list):
            out.demo_sets[str(rec.get("id"))] = rec["demos"]
        elif kind == "answer":
            split, ins, demos, example = _answer_key(rec)
            out.answers.setdefault((split, ins, demos), {})[example] = rec
    return out
