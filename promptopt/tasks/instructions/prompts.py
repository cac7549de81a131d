"""The two variants of OPRO's instruction meta-prompt: their texts, exemplars and proposal shape.

The sentences are the reference's (opro/optimization/opt_utils.py, gen_meta_prompt) and are
pinned byte for byte by tests/unit/test_opro_reference.py: edit them only to follow the
reference. Each variant shows past instructions in the format it asks the new one in, and reads
only that format back (:mod:`.parsing`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from promptopt.errors import ConfigError
from promptopt.llm.base import Constraint, Message
from promptopt.prompting import apply_instruction
from promptopt.tasks.base import ProposalShape, TaskDescription
from promptopt.tasks.instructions.datasets import Example
from promptopt.tasks.instructions.parsing import extract_bracketed, extract_tagged, normalize_output
from promptopt.tasks.shapes import bounded_text, grammar, literal

_POSITION_WORDS = {
    "Q_begin": "at the beginning of the question",
    "Q_end": "at the end of the question",
    "A_begin": "at the beginning of the answer",
    "system": "as the system message",
}


@dataclass(frozen=True)
class MetaPromptStyle:
    """One self-consistent variant of OPRO's instruction meta-prompt: past instructions are shown
    in the format the new one is asked in, and the parser reads only that format (so an echoed
    old instruction in another format can never win over the new one)."""

    name: str
    summary: str
    #: how a past instruction is wrapped in the meta-prompt and in the request
    wrap: Callable[[str, str], str]
    #: (output text, tag) -> the raw proposed instruction, or None
    extract: Callable[[str, str], str | None]


#: The variants of the reference's gen_meta_prompt (opro/optimization/opt_utils.py) for a
#: fine-tuned optimizer ("both_instructions_and_exemplars"), by name: the ``meta_prompt`` option.
META_PROMPT_STYLES: Mapping[str, MetaPromptStyle] = {
    "chat": MetaPromptStyle(
        "chat",
        "the reference's GPT variant: <INS>...</INS> tags (<Start> at A_begin)",
        lambda text, tag: f"<{tag}>{text}</{tag}>",
        extract_tagged,
    ),
    "bracket": MetaPromptStyle(
        "bracket",
        "the reference's text-bison variant: texts in [square brackets]",
        lambda text, tag: f"[{text}]",
        extract_bracketed,
    ),
}


def meta_prompt_style(name: str) -> MetaPromptStyle:
    """The named variant, or a ConfigError that lists them."""
    try:
        return META_PROMPT_STYLES[name]
    except (KeyError, TypeError):
        known = ", ".join(f"{k} ({v.summary})" for k, v in META_PROMPT_STYLES.items())
        raise ConfigError(f"unknown meta_prompt {name!r}; choose one of: {known}") from None


def extract_instruction(text: str, meta_prompt: str = "chat", tag: str = "INS") -> str | None:
    """The proposed instruction in an optimizer's output for the ``meta_prompt`` variant, or None
    when none is marked (see :data:`META_PROMPT_STYLES`)."""
    return meta_prompt_style(meta_prompt).extract(normalize_output(text), tag)


def answer_tag(style: MetaPromptStyle, position: str) -> str:
    """The tag a proposal is asked in: the chat variant asks for an answer starting sentence
    ``<Start>`` at ``A_begin``, as the reference does; ``INS`` otherwise."""
    return "Start" if style.name == "chat" and position == "A_begin" else "INS"


def describe(style: MetaPromptStyle, tag: str, position: str, topic: str) -> TaskDescription:
    """The meta-prompt's sentences for ``style``: the reference's (opt_utils.gen_meta_prompt) plus
    one that names the problems (``topic``) and where the instruction goes (``position``); the
    reference leaves both to the exemplars, and with no exemplars nothing would say it.

    - ``chat`` (the reference's GPT optimizer variant): past instructions as
      ``text:`` ``<INS>...</INS>`` ``score:``, exemplars as ``Problem:`` / ``Ground truth
      answer:``, and a request for a different, higher-scoring instruction in ``<INS>`` tags
      (``<Start>`` "starting sentences" at ``A_begin``).
    - ``bracket`` (the text-bison variant): past texts as ``text:`` ``[...]`` ``score:`` in
      ascending order, exemplars as ``input:`` / ``output:``, and a request for a new,
      different text in square brackets.

    Both show past instructions in the format the answer is asked in, and the task's parser
    reads only that format.
    """
    where = _POSITION_WORDS[position]
    entry = "text:\n" + style.wrap("{text}", tag) + "\nscore:\n{score}"
    if style.name == "bracket":
        return TaskDescription(
            problem=(
                "I have some texts along with their corresponding scores. The texts are arranged "
                "in ascending order based on their scores, where higher scores indicate better "
                f"quality. Each text is an instruction placed {where} to help a language model "
                f"solve {topic} problems."
            ),
            solution_name="text",
            score_name="score",
            output_format=(
                "Write your new text that is different from the old ones and has a score as high "
                "as possible. Write the text in square brackets."
            ),
            entry_template=entry,
            exemplars_intro=(
                "The following exemplars show how to apply your text: you replace <INS> in each "
                "input with your text, then read the input and give an output. We say your output "
                "is wrong if your output is different from the given output, and we say your "
                "output is correct if they are the same."
            ),
        )
    if tag == "Start":
        return TaskDescription(
            problem=(
                "Your task is to generate the answer starting sentence <Start>. The starting "
                f"sentence is placed {where} to help a language model solve {topic} problems. "
                "Below are some previous starting sentences with their scores. The score ranges "
                "from 0 to 100."
            ),
            solution_name="starting sentence",
            score_name="score",
            output_format=(
                "Generate a starting sentence that is different from all the <Start> sentences "
                "above, and has a higher score than all the <Start> sentences above. The starting "
                "sentence should begin with <Start> and end with </Start>."
            ),
            instruction_suffix=(
                "The starting sentence should be concise, effective, and generally applicable to "
                "all QA pairs above."
            ),
            entry_template=entry,
            exemplars_intro="Below are some problems.",
        )
    return TaskDescription(
        problem=(
            "Your task is to generate the instruction <INS>. The instruction is placed "
            f"{where} to help a language model solve {topic} problems. Below are some "
            "previous instructions with their scores. The score ranges from 0 to 100."
        ),
        solution_name="instruction",
        score_name="score",
        output_format=(
            "Generate an instruction that is different from all the instructions <INS> above, "
            "and has a higher score than all the instructions <INS> above. The instruction "
            "should begin with <INS> and end with </INS>."
        ),
        instruction_suffix=(
            "The instruction should be concise, effective, and generally applicable to all problems above."
        ),
        entry_template=entry,
        exemplars_intro="Below are some problems.",
    )


def proposal_shape(
    style: MetaPromptStyle, tag: str, output_format: str, max_chars: int, reject_digits: bool
) -> ProposalShape:
    """The tagged or bracketed instruction ``style`` asks for, alone on one line, at most
    ``max_chars`` characters, without the characters that would end it early (nor digits when
    ``reject_digits``); ``output_format`` (the description's) gets one sentence saying so."""
    excluded = "<" if style.name == "chat" else "[]"
    if reject_digits:
        excluded += "0123456789"
    body = bounded_text(excluded, max_chars)
    if style.name == "chat":
        start, end = literal(f"<{tag}>"), literal(f"</{tag}>")
    else:
        start, end = literal("["), literal("]")
    constraint = Constraint(
        gbnf=grammar(f"{start.gbnf} {body.gbnf} {end.gbnf}"), pattern=start.regex + body.regex + end.regex
    )
    limit = f"on one line of at most {max_chars} characters"
    sentence = f" Write only that, {limit}{', without digits' if reject_digits else ''}."
    return ProposalShape(constraint, output_format + sentence)


def render_exemplar(style: MetaPromptStyle, tag: str, position: str, example: Example) -> str:
    """One exemplar with ``<INS>`` (``<Start>``) where the instruction goes: ``Problem:`` /
    ``Ground truth answer:`` in the chat variant, ``input:`` / ``output:`` in the bracket one
    (the reference's labels for each); an example without a gold answer shows its problem only."""
    msgs = apply_instruction([Message("user", example.input)], f"<{tag}>", position)
    if position == "system":
        shown = "\n".join(f"{m.role}: {m.content}" for m in msgs)
    else:
        shown = msgs[-1].content
    if example.target is None:  # a prompts-only dataset (judge-scored): no answer to show
        return f"input:\n{shown}" if style.name == "bracket" else f"Problem:\n{shown}"
    if style.name == "bracket":
        return f"input:\n{shown}\noutput:\n{example.target}"
    return f"Problem:\n{shown}\nGround truth answer:\n{example.target}"
