"""The reflection: what the optimizer LLM is shown about a parent instruction, and reading its answer.

The prompt follows GEPA's instruction-proposal prompt in substance (the current instruction, then
per example the input, the target model's answer and the metric's feedback; infer the task, keep
the domain facts and any general strategy; answer in a fenced block) in promptopt's own words, and
adds the gold answer where the data has one and the metric's value (GEPA leaves both to the
feedback text). A paragraph asking for an instruction that holds for every input (never copying
one example's topic or requirements) was tried and measured, then left out: on IFBench with the 1.5B
reflecting it changed nothing the model did (it still wrote about one example in 2 of 3 seeds) and the
held-out score was 8.75 % at every seed against 11.67 % without it
(``bench/results/reflect-ifbench-general.md``). Long fields are cut at :data:`MAX_FIELD_CHARS` so one verbose answer cannot crowd
out the rest.

Reading the answer (untrusted text: string scans only, nothing evaluated): a fenced block is
```` ``` ```` with an optional language tag on the opening line (not part of the block), or the
whole block on one line. Of several closed blocks the longest is taken, the first of equally long
ones: an instruction is prose, while a model that shows an answer format (``<Quantity> <Type>``,
``3 apple``) puts it in a block of one line. Taking the first block instead, as before, took that
example in 5 of 101 reflections of the 1.5B reflection model, where the instruction was a later
block. A final block that was opened but never closed (the answer cut off by ``max_tokens``: 9 of
the same 101) is taken only when there is no closed block; GEPA likewise accepts it (its extractor
reads from the first fence to the last, so an example block ahead of the instruction would join
it). An answer with no fence at all is taken whole, as GEPA does: measured with the 1.5B reflection
model on bbh:navigate, 5 of the first 7 reflections were a usable instruction written under a
heading instead of a block, and rejecting them wasted the iteration (the minibatch test still has
to pass before anything joins the pool). An empty instruction, or one longer than
:data:`MAX_REFLECTED_CHARS`, is rejected; the journal keeps the raw text and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptopt.llm.base import Request
from promptopt.tasks.base import Rejected

#: A reflected instruction longer than this is rejected (GEPA sets no limit; OPRO's is 500, which
#: would cut the task facts a reflection is meant to collect).
MAX_REFLECTED_CHARS = 6000
#: Each input, answer, gold answer and feedback is shown up to this many characters.
MAX_FIELD_CHARS = 3000
FENCE = "```"


@dataclass(frozen=True)
class Observation:
    """One minibatch example as the reflection sees it."""

    input: str
    response: str | None
    gold: str | None
    value: float
    feedback: str | None
    error: str | None = None


def _cut(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + " … (cut)"


def _one(i: int, o: Observation) -> str:
    lines = [f"### Example {i}", "Input:", _cut(o.input), ""]
    if o.error is not None:
        lines += ["Assistant's response: (none: the request failed)", _cut(o.error), ""]
    else:
        lines += ["Assistant's response:", _cut(o.response or "(empty)"), ""]
    if o.gold is not None:
        lines += [f"Correct answer: {_cut(o.gold)}", ""]
    lines.append(f"Score: {o.value:.3g} (1 is full marks)")
    if o.feedback:
        lines.append(f"Feedback: {_cut(o.feedback)}")
    return "\n".join(lines)


def reflection_prompt(instruction: str, observations: Sequence[Observation]) -> str:
    """The reflection prompt for ``instruction`` and what it did on the minibatch."""
    shown = instruction.strip() or "(no instruction: the assistant saw only the task input)"
    examples = "\n\n".join(_one(i, o) for i, o in enumerate(observations, 1))
    return (
        "An assistant was given the following instruction to carry out a task:\n"
        f"{FENCE}\n{shown}\n{FENCE}\n\n"
        "Here is how it did on some inputs of that task: each example shows the input, the "
        "assistant's response, the correct answer when it is known, and the evaluation's score and "
        "feedback on the response.\n\n"
        f"{examples}\n\n"
        "Write a new, improved instruction for the assistant. Work out from the inputs what the task is "
        "and what format the answer must have; work out from the responses and the feedback what went "
        "wrong and what worked. Put into the instruction the task-specific facts the assistant needed "
        "and any general strategy that helps on inputs of this kind: it will be used on new inputs, "
        "without these examples.\n\n"
        f"Give the new instruction inside a block that starts with a line {FENCE} and ends with a line "
        f"{FENCE}, and nothing else inside the block."
    )


def observations(examples: Sequence[Any], records: Sequence[Any]) -> list[Observation]:
    """The reflection's view of an evaluation: its per-example ``records`` (response, value,
    feedback) beside the ``examples`` (input, gold answer)."""
    return [
        Observation(ex.input, r.response, ex.target, float(r.score), r.feedback, r.error)
        for ex, r in zip(examples, records, strict=True)
    ]


def reflection_request(prompt: str, p: Mapping[str, Any], seed: int) -> Request:
    """The request of one reflection: the run's temperature and max_tokens, ``seed`` derived from
    (run seed, iteration) so a resumed run asks exactly what an uninterrupted one asked."""
    return Request.chat(prompt, temperature=p["temperature"], max_tokens=p["max_tokens"], seed=seed)


def parse_reflection(raw: str, max_chars: int = MAX_REFLECTED_CHARS) -> str | Rejected:
    """The instruction in ``raw``: its longest closed fenced block (the first of equally long ones),
    else the text of a final block that was never closed, else the whole answer when it has no
    fence; or why there is none."""
    text = (raw or "").replace("\r\n", "\n")
    closed, unclosed = _blocks(text)
    if closed:
        body = max(closed, key=len)  # max keeps the first of equal keys
    elif unclosed is not None:
        body = unclosed
    else:
        return _checked(text.strip(), max_chars, "the answer is empty")
    return _checked(body, max_chars, f"the {FENCE} block is empty")


def _blocks(text: str) -> tuple[list[str], str | None]:
    """The stripped bodies of ``text``'s closed fenced blocks in order, and the body of a final
    block that is opened but not closed (``None`` when there is none)."""
    closed: list[str] = []
    pos = 0
    while (start := text.find(FENCE, pos)) >= 0:
        after = start + len(FENCE)
        line_end = text.find("\n", after)
        inline_end = text.find(FENCE, after)
        if inline_end >= 0 and (line_end < 0 or inline_end < line_end):  # ```text``` on one line
            closed.append(text[after:inline_end].strip())
            pos = inline_end + len(FENCE)
            continue
        if line_end < 0:  # a fence (and perhaps a language tag) ends the answer
            return closed, ""
        end = text.find(FENCE, line_end)
        if end < 0:
            return closed, text[line_end + 1 :].strip()
        closed.append(text[line_end + 1 : end].strip())
        pos = end + len(FENCE)
    return closed, None


def _checked(instruction: str, max_chars: int, empty: str) -> str | Rejected:
    if not instruction:
        return Rejected("unparseable", empty)
    if len(instruction) > max_chars:
        return Rejected("invalid", f"longer than {max_chars} characters ({len(instruction)})")
    return instruction
