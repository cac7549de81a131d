"""OPRO's instruction search as a Task plug-in: find the instruction that makes a scorer LLM
answer a dataset's questions best.

A candidate is an instruction (``Candidate.text == Candidate.value``: the instruction itself).
Its score is the scorer LLM's accuracy (0–100) on a seeded train subset, with the instruction
placed at ``Q_begin``, ``Q_end``, ``A_begin`` or as the ``system`` message
(:mod:`promptopt.prompting`, the same placement ``AlignedLLM`` uses when deploying it).

API for the OPRO loop (``create(...)`` is registered as task ``instructions``)::

    task = create(dataset="bbh:navigate", data_dir=..., position="Q_begin", scorer=llm)
    task.describe()                     # TaskDescription in the meta_prompt variant (chat|bracket)
    task.format_score(81.7)             # "82"
    task.exemplars(rng, 3)              # problems with <INS> where the instruction goes
    task.parse(optimizer_text)          # Candidate | Rejected (<INS>...</INS>, or [...] for bracket)
    await task.ascore(candidates)       # one concurrent batch; Scored.info has counts
    report = task.final_report(best)    # validation pick, then test accuracy vs the baselines

Validation: ``final_report(best)`` shortlists ``best`` plus the next best instructions by
training accuracy that this task object scored (``val_top_k``, default 5), keeps the one with
the best validation accuracy (ties go to the better training score) and reports it on the test
split next to the baselines ("", "Let's think step by step.", "Let's solve the problem.") and,
when it differs, the training best. ``select_on_validation(candidates)`` exposes the pick alone
for callers that keep their own shortlist. With ``num_val=0`` or ``val_top_k<=1`` the training
best is reported as is.

Caching: every scorer request is temperature 0 with a fixed seed, and the request contains the
instruction in place, the example and the sampling settings; the request cache that
``build_llm`` wraps around the scorer adds the model name. That is the per-(instruction,
position, example, scorer) cache: re-scoring an instruction, in this run or a resumed one, makes
no backend call. The task also memoises whole evaluations in memory for its own lifetime.

Scoring strategies (``scoring``, :data:`SCORING_STRATEGIES`): ``full`` scores every candidate on
every training example (the paper); ``racing`` (:mod:`promptopt.evaluators.racing`) scores
candidates on growing prefixes of a seeded order of the training examples and stops those whose
upper confidence bound falls below the incumbent (the best full training accuracy so far). A
stopped candidate's score is its *partial* mean, on the examples it saw; ``Scored.info`` marks
it ``partial`` with ``examples`` (used), ``of`` (the split size), ``bound`` and ``rungs``. The
meta-prompt shows that partial mean like any score: it is below the incumbent by construction, so
a stopped candidate never becomes the best, and it shows the optimizer a low score for a bad
instruction. The final choice uses full scores only: stopped candidates are left out of the
validation shortlist, and validation and test are always scored in full. ``info["requests"]``
(``info["total"]`` with full scoring) is the number of training examples a candidate was scored on
(cache hits included: it is the cost of the strategy, not of this machine's cache), and
``final_report``'s ``scoring`` section sums them next to what full scoring would have asked.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.errors import ConfigError
from promptopt.evaluators.accuracy import Evaluation, aevaluate_many
from promptopt.evaluators.racing import RaceOutcome, RacingConfig, arace, example_order
from promptopt.llm.base import LLM, Constraint, Message, run_sync
from promptopt.prompting import apply_instruction, check_position
from promptopt.tasks.base import Candidate, ProposalShape, Rejected, Scored, TaskDescription
from promptopt.tasks.instructions.datasets import Dataset, Example, Splits, load_dataset, split_dataset
from promptopt.tasks.shapes import bounded_text, grammar, literal

#: name → instruction; the paper's comparison points.
BASELINES: tuple[tuple[str, str], ...] = (
    ("empty", ""),
    ("step_by_step", "Let's think step by step."),
    ("solve", "Let's solve the problem."),
)
#: OPRO's starting instruction for GSM8K and BBH (``initial_instructions`` in the reference's
#: opro/optimization/optimize_instructions.py).
DEFAULT_INITIAL: tuple[str, ...] = ("Let's solve the problem.",)
#: The reference's limit on a proposed instruction's length (opt_utils.run_evolution: > 500
#: characters is "too long, skipped").
MAX_INSTRUCTION_CHARS = 500
_POSITION_WORDS = {
    "Q_begin": "at the beginning of the question",
    "Q_end": "at the end of the question",
    "A_begin": "at the beginning of the answer",
    "system": "as the system message",
}
_PLACEHOLDER_RE = re.compile(
    r"(?:<\s*/?\s*(?:ins|start)\s*>|/?\s*(?:ins|start)|\.{3}|…|"
    r"(?:(?:your|the|a|my)\s+)?(?:(?:new|improved|better)\s+)?"
    r"(?:instruction|text|prompt|starting sentence|sentence)(?:\s+here)?)",
    re.IGNORECASE,
)
_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("\u00ab", "\u00bb"),
           ("\u201e", "\u201c"), ("\u300c", "\u300d"), ("\u300e", "\u300f"), ("`", "`"))  # fmt: skip
_CHECKBOX_MARKS = frozenset({"x", "✓", "✔", "✗", "✘", "*", "-", "+", "•"})
_LABEL_RE = re.compile(r"^\s*(?:new\s+|improved\s+)?(?:instruction|text|prompt)\s*:\s*", re.IGNORECASE)
#: What OPRO drops on GSM8K-like datasets: instructions with digits (opt_utils.run_evolution).
#: MultiArith is the same kind of problem (numbers in the exemplars an optimizer can copy).
DIGIT_FREE_DATASETS = frozenset({"gsm8k", "multiarith"})


#: The ``scoring`` option: how training scores are computed (see the module docstring).
SCORING_STRATEGIES: Mapping[str, str] = {
    "full": "every candidate on every training example (the paper)",
    "racing": "growing subsets; stop a candidate once it cannot beat the incumbent (racing.py)",
}


def check_scoring(name: str) -> str:
    """``name`` if it is a scoring strategy, else a ConfigError that lists them."""
    if isinstance(name, str) and name in SCORING_STRATEGIES:
        return name
    known = ", ".join(f"{k} ({v})" for k, v in SCORING_STRATEGIES.items())
    raise ConfigError(f"unknown scoring {name!r}; choose one of: {known}")


@dataclass(frozen=True)
class ValidationChoice:
    """The candidate with the best validation accuracy, and one row per candidate (given order)."""

    best: Candidate
    rows: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- parsing


def _bracket_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each outermost matched ``[...]``, in order; stray brackets are ignored,
    so "[[a]" yields the span of "[a]" and "a]]" none. One pass with a stack: model output is
    untrusted, and a quadratic rescan of "[[[[..." would be a cheap way to stall the loop."""
    stack: list[int] = []
    pairs: list[tuple[int, int]] = []
    for i, ch in enumerate(text):
        if ch == "[":
            stack.append(i)
        elif ch == "]" and stack:
            pairs.append((stack.pop(), i))
    pairs.sort()
    out: list[tuple[int, int]] = []
    for a, b in pairs:
        if not out or a > out[-1][1]:
            out.append((a, b))
    return out


def _wrapped_in_brackets(text: str) -> bool:
    """Whether the first "[" is closed by the last "]" (so "[[a]]" yes, "[a] and [b]" no)."""
    if not (text.startswith("[") and text.endswith("]")):
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if depth == 0:
            return i == len(text) - 1
    return False


def _clean_instruction(text: str) -> str:
    """Strip wrapping quotes and brackets, control characters and extra blank space; keep Unicode.

    Tags inside are kept: an instruction that still holds "<INS>" is dropped by the "INS"
    filter, as in the reference."""
    text = "".join(ch if ch == "\n" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    text = "\n".join(line for line in lines if line).strip()
    changed = True
    while changed and len(text) >= 2:
        changed = False
        # unbalanced outer brackets left by a sloppy answer such as "[[Do this.]"
        while text.startswith("[") and text.count("[") > text.count("]"):
            text, changed = text[1:].lstrip(), True
        while text.endswith("]") and text.count("]") > text.count("["):
            text, changed = text[:-1].rstrip(), True
        if _wrapped_in_brackets(text):
            text, changed = text[1:-1].strip(), True
        for left, right in _QUOTES:
            if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right) - 1:
                text = text[len(left) : len(text) - len(right)].strip()
                changed = True
    return text


def is_placeholder(text: str) -> bool:
    """Whether cleaned text is the format's own wording ("instruction", "<INS>", "...") rather
    than an instruction."""
    return _PLACEHOLDER_RE.fullmatch(text.strip(" .:")) is not None


def _junk_bracket(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end + 1]`` is a bracket that does not hold an instruction: a citation
    ("[1]", "[2, 3]", "[^4]"), an empty box or checkbox ("[ ]", "[x]"), a markdown link or image
    ("[docs](https://...)", "![alt](...)"), a single letter, or a placeholder ("[instruction]")."""
    if text[end + 1 : end + 2] in ("(", "[") or text[start - 1 : start] == "!":
        return True
    inner = _clean_instruction(text[start + 1 : end])
    if not any(ch.isalpha() for ch in inner):  # empty, "[1]", "[1-3]", "[^2]", "[...]", "[?]"
        return True
    return inner.casefold() in _CHECKBOX_MARKS or len(inner) == 1 or is_placeholder(inner)


def _lone_line(text: str) -> str | None:
    """A one-line answer with no marker at all ("Instruction: ..." allowed): a small model's way
    of answering a format it did not follow; nothing else in the output competes with it."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) == 1 and not lines[0].rstrip().endswith(":"):
        return _LABEL_RE.sub("", lines[0])
    return None


def _extract_bracketed(text: str) -> str | None:
    """The text-bison variant: the first ``[...]`` that holds an instruction (the reference takes
    the first ``[...]`` whatever it holds, so "According to [1], ..." gave "1")."""
    for start, end in _bracket_spans(text):
        if not _junk_bracket(text, start, end):
            return text[start + 1 : end]
    return _lone_line(text)


def _extract_tagged(text: str, tag: str) -> str | None:
    """The chat variant: the first non-empty ``<TAG>...</TAG>`` (``[TAG]...[/TAG]`` too, a common
    slip), else the rest of the line after an unclosed ``<TAG>``, else a lone line."""
    t = re.escape(tag)
    for pattern in (rf"<\s*{t}\s*>(.*?)<\s*/\s*{t}\s*>", rf"\[\s*{t}\s*\](.*?)\[\s*/\s*{t}\s*\]"):
        for m in re.finditer(pattern, text, re.IGNORECASE | re.DOTALL):
            if _clean_instruction(m.group(1)):
                return m.group(1)
    if not re.search(rf"<\s*/\s*{t}\s*>", text, re.IGNORECASE):
        m = re.search(rf"<\s*{t}\s*>([^\n]*)", text, re.IGNORECASE)
        if m and _clean_instruction(m.group(1)):
            return m.group(1)
    return _lone_line(text)


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
        _extract_tagged,
    ),
    "bracket": MetaPromptStyle(
        "bracket",
        "the reference's text-bison variant: texts in [square brackets]",
        lambda text, tag: f"[{text}]",
        lambda text, tag: _extract_bracketed(text),
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
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return meta_prompt_style(meta_prompt).extract(text, tag)


# --------------------------------------------------------------------------- the task


class InstructionTask:
    """Instruction search on a dataset (see the module docstring)."""

    name = "instructions"
    direction = "max"
    #: the reference's settings (opro/optimization/optimize_instructions.py): num_search_steps =
    #: 200, num_generated_instructions_in_each_step = 8, max_num_instructions = 20 in the
    #: meta-prompt, num_few_shot_questions_for_instruction_refinement = 3 exemplars
    opro_defaults: dict[str, Any] = {"steps": 200, "per_step": 8, "top_k": 20, "num_exemplars": 3}

    def __init__(
        self,
        dataset: Dataset,
        splits: Splits,
        *,
        position: str = "Q_begin",
        scorer: LLM | str | None = None,
        max_tokens: int = 400,
        seed: int = 0,
        initial: Sequence[str] = DEFAULT_INITIAL,
        max_instruction_chars: int = MAX_INSTRUCTION_CHARS,
        val_top_k: int = 5,
        options: dict[str, Any] | None = None,
        meta_prompt: str = "chat",
        reject_digits: bool | None = None,
        scoring: str = "full",
        racing: RacingConfig | None = None,
    ) -> None:
        self.dataset = dataset
        self.splits = splits
        self.position = check_position(position)
        self._scorer_spec = scorer
        self._scorer: LLM | None = scorer if scorer is not None and not isinstance(scorer, str) else None
        self.max_tokens = max_tokens
        self.seed = seed
        self.initial = tuple(initial)
        self.max_instruction_chars = max_instruction_chars
        self.style = meta_prompt_style(meta_prompt)
        #: the chat variant asks for an answer starting sentence <Start> at A_begin, as the reference
        self.tag = "Start" if self.style.name == "chat" and self.position == "A_begin" else "INS"
        #: drop proposals with digits (the reference does on GSM8K); None: by dataset
        self.reject_digits = dataset.name in DIGIT_FREE_DATASETS if reject_digits is None else reject_digits
        self._options = dict(options or {})
        self.val_top_k = val_top_k
        self._memo: dict[tuple[str, str], Evaluation] = {}
        #: training accuracy of every instruction scored by this task object (for final_report)
        self._train_scores: dict[str, float] = {}
        self.scoring = check_scoring(scoring)
        #: the race settings; None when scoring is full
        self.racing = (racing or RacingConfig()) if scoring == "racing" else None
        #: the best full training accuracy so far (what a race must beat), stopped candidates,
        #: training examples scored per instruction; rebuilt from a run's history by ``restore``
        self._incumbent: float | None = None
        self._partial: set[str] = set()
        self._requests: dict[str, int] = {}

    # -- scorer
    @property
    def scorer(self) -> LLM:
        """The scorer LLM; built on first use from a spec string, or the embedded ``local`` model."""
        if self._scorer is None:
            from promptopt.llm.factory import build_llm

            spec = self._scorer_spec if isinstance(self._scorer_spec, str) else "local"
            self._scorer = build_llm(spec)
        return self._scorer

    # -- meta-prompt text
    def describe(self) -> TaskDescription:
        """OPRO's instruction meta-prompt in the ``meta_prompt`` variant, the reference's sentences
        (opt_utils.gen_meta_prompt) plus one that names the problems and where the instruction
        goes (the reference leaves both to the exemplars; with no exemplars nothing would say it).

        - ``chat`` (the reference's GPT optimizer variant): past instructions as
          ``text:`` ``<INS>...</INS>`` ``score:``, exemplars as ``Problem:`` / ``Ground truth
          answer:``, and a request for a different, higher-scoring instruction in ``<INS>`` tags
          (``<Start>`` "starting sentences" at ``A_begin``).
        - ``bracket`` (the text-bison variant): past texts as ``text:`` ``[...]`` ``score:`` in
          ascending order, exemplars as ``input:`` / ``output:``, and a request for a new,
          different text in square brackets.

        Both show past instructions in the format the answer is asked in, and :meth:`parse` reads
        only that format. Scores are accuracies 0–100, worst first and best last.
        """
        where = _POSITION_WORDS[self.position]
        topic = self.dataset.topic
        tag = self.tag
        entry = "text:\n" + self.style.wrap("{text}", tag) + "\nscore:\n{score}"
        if self.style.name == "bracket":
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
                "The instruction should be concise, effective, and generally applicable to all "
                "problems above."
            ),
            entry_template=entry,
            exemplars_intro="Below are some problems.",
        )

    def proposal_shape(self) -> ProposalShape:
        """The tagged (``<INS>...</INS>``) or bracketed (``[...]``) instruction the variant asks
        for, alone on one line, at most ``max_instruction_chars`` characters, without the
        characters that would end it early (and without digits when ``reject_digits``);
        :meth:`parse` still applies every filter."""
        excluded = "<" if self.style.name == "chat" else "[]"
        if self.reject_digits:
            excluded += "0123456789"
        body = bounded_text(excluded, self.max_instruction_chars)
        if self.style.name == "chat":
            start, end = literal(f"<{self.tag}>"), literal(f"</{self.tag}>")
        else:
            start, end = literal("["), literal("]")
        constraint = Constraint(
            gbnf=grammar(f"{start.gbnf} {body.gbnf} {end.gbnf}"), pattern=start.regex + body.regex + end.regex
        )
        limit = f"on one line of at most {self.max_instruction_chars} characters"
        sentence = f" Write only that, {limit}{', without digits' if self.reject_digits else ''}."
        return ProposalShape(constraint, self.describe().output_format + sentence)

    def format_solution(self, candidate: Candidate) -> str:
        """How a past instruction is shown in the meta-prompt (``entry_template`` without score)."""
        return self.style.wrap(candidate.text, self.tag)

    def format_score(self, score: float) -> str:
        """Accuracy as an integer 0–100 (half rounds up)."""
        return str(int(math.floor(min(100.0, max(0.0, float(score))) + 0.5)))

    def render_exemplar(self, example: Example) -> str:
        """One exemplar with ``<INS>`` (``<Start>``) where the instruction goes: ``Problem:`` /
        ``Ground truth answer:`` in the chat variant, ``input:`` / ``output:`` in the bracket one
        (the reference's labels for each)."""
        msgs = apply_instruction([Message("user", example.input)], f"<{self.tag}>", self.position)
        if self.position == "system":
            shown = "\n".join(f"{m.role}: {m.content}" for m in msgs)
        else:
            shown = msgs[-1].content
        if self.style.name == "bracket":
            return f"input:\n{shown}\noutput:\n{example.target}"
        return f"Problem:\n{shown}\nGround truth answer:\n{example.target}"

    def exemplars(self, rng: random.Random, k: int) -> list[str]:
        """``k`` random training examples (OPRO's "random" exemplar selection)."""
        train = list(self.splits.train)
        if k <= 0 or not train:
            return []
        return [self.render_exemplar(ex) for ex in rng.sample(train, min(k, len(train)))]

    def initial_candidates(self, rng: random.Random) -> list[Candidate]:
        return [Candidate(text, text) for text in self.initial]

    # -- parsing
    def parse(self, text: str) -> Candidate | Rejected:
        """An instruction from optimizer output (untrusted text: regexes only), in the format the
        meta-prompt asked for, then the reference's filters (opt_utils.run_evolution): longer than
        ``max_instruction_chars`` (500), digits when ``reject_digits`` (GSM8K), or "INS"."""
        raw = extract_instruction(text or "", self.style.name, self.tag)
        if raw is None:
            where = (
                "in [square brackets]"
                if self.style.name == "bracket"
                else f"in <{self.tag}>...</{self.tag}> tags"
            )
            return Rejected("unparseable", f"no instruction {where}")
        instruction = _clean_instruction(raw)
        if not instruction:
            return Rejected("invalid", "empty instruction")
        if is_placeholder(instruction):
            return Rejected("invalid", f"placeholder instead of an instruction: {instruction!r}")
        if len(instruction) > self.max_instruction_chars:
            return Rejected(
                "invalid",
                f"too long: {len(instruction)} characters; the limit is {self.max_instruction_chars}",
            )
        if self.reject_digits and any(ch.isdigit() for ch in instruction):
            return Rejected("invalid", f"contains digits (dropped on {self.dataset.name}, as in OPRO)")
        if "INS" in instruction:
            return Rejected("invalid", "contains 'INS' (the meta-prompt's marker, not an instruction)")
        return Candidate(instruction, instruction)

    # -- scoring
    async def _evaluate(
        self, split: str, examples: Sequence[Example], instructions: Sequence[str]
    ) -> list[Evaluation]:
        missing = [ins for ins in dict.fromkeys(instructions) if (split, ins) not in self._memo]
        fresh: dict[str, Evaluation] = {}
        if missing:
            evals = await aevaluate_many(
                self.scorer,
                missing,
                examples,
                position=self.position,
                max_tokens=self.max_tokens,
                seed=self.seed,
            )
            for ev in evals:
                fresh[ev.instruction] = ev
                if ev.failed == 0:  # keep failures retryable
                    self._memo[(split, ev.instruction)] = ev
        return [fresh.get(ins) or self._memo[(split, ins)] for ins in instructions]

    @staticmethod
    def _instruction(candidate: Candidate | str) -> str:
        if isinstance(candidate, str):
            return candidate
        return candidate.value if isinstance(candidate.value, str) else candidate.text

    async def ascore(self, candidates: Sequence[Candidate]) -> list[Scored]:
        """Training accuracy of each candidate: with ``full`` scoring all (candidate × example)
        requests in one batch, with ``racing`` one batch per rung (see the module docstring).

        ``Scored.info``: ``correct``, ``total`` (examples scored), ``failed`` (requests that
        errored; they count as wrong), ``coverage`` (answered / total), ``no_answer`` (responses
        with no readable answer), ``per_example`` (``1`` right, ``0`` wrong, ``x`` failed, ``-``
        not scored, in train order); with racing also ``requests`` (examples scored: ``total``
        with full scoring; cache hits are not told apart, so a resumed run journals what an
        uninterrupted one does), ``scoring``, ``partial``, ``examples``, ``of``, ``bound`` and
        ``rungs``. All requests failed → ``Scored(None, error=...)``.
        """
        instructions = [self._instruction(c) for c in candidates]
        if self.racing is None or not self.splits.train:
            evals = await self._evaluate("train", self.splits.train, instructions)
            out = [self._scored(ev, None) for ev in evals]
        else:
            races = await self._race(instructions)
            out = [self._scored(races[ins].evaluation, races[ins]) for ins in instructions]
        for sc in out:  # the incumbent moves after the batch: each candidate raced the same one
            if sc.score is not None and not sc.info.get("partial"):
                self._incumbent = sc.score if self._incumbent is None else max(self._incumbent, sc.score)
        return out

    async def _race(self, instructions: Sequence[str]) -> dict[str, RaceOutcome]:
        """Race the distinct ``instructions`` on the training split in the run's race order."""
        train = self.splits.train
        ordered = [train[i] for i in example_order(len(train), self.seed)]

        async def evaluate(ins: list[str], examples: Sequence[Example]) -> list[Evaluation]:
            return await aevaluate_many(
                self.scorer, ins, examples, position=self.position, max_tokens=self.max_tokens, seed=self.seed
            )

        unique = list(dict.fromkeys(instructions))
        races = await arace(unique, ordered, self._incumbent, evaluate, self.racing)
        return dict(zip(unique, races, strict=True))

    def _scored(self, ev: Evaluation, race: RaceOutcome | None) -> Scored:
        """The Scored of one evaluation (full, or a race's) and this task's bookkeeping of it."""
        ins = ev.instruction
        if race is None:
            marks = ev.correctness()
        else:  # race order back to train order, "-" where the race did not go
            order = example_order(len(self.splits.train), self.seed)
            chars = ["-"] * len(order)
            for j, mark in enumerate(ev.correctness()):
                chars[order[j]] = mark
            marks = "".join(chars)
        info: dict[str, Any] = {
            "correct": ev.correct,
            "total": ev.total,
            "failed": ev.failed,
            "coverage": round(ev.coverage, 4),
            "no_answer": ev.no_answer,
            "per_example": marks,
        }
        if race is not None:  # full scoring asks ``total`` requests: its info stays as it was
            info.update(requests=ev.total, scoring="racing", **race.info())
        self._requests[ins] = ev.total
        if race is not None and race.stopped:
            self._partial.add(ins)
        elif ev.accuracy is not None:
            self._train_scores[ins] = ev.accuracy
            self._partial.discard(ins)
        return Scored(ev.accuracy, info, ev.error)

    def restore(self, trials: Sequence[Any]) -> None:
        """Rebuild what scoring depends on from a run's committed trials (the optimizer calls this
        before its first step; empty for a new run): the incumbent a race must beat, the stopped
        candidates and the requests per candidate. So a resumed run races exactly as an
        uninterrupted one."""
        self._incumbent, self._partial, self._requests, self._train_scores = None, set(), {}, {}
        for t in trials:
            info = getattr(t, "info", None) or {}
            if getattr(t, "status", None) not in ("scored", "initial") or t.score is None:
                continue
            ins = str(t.text)
            self._requests[ins] = int(info.get("requests", info.get("total", 0)) or 0)
            if info.get("partial"):
                self._partial.add(ins)
                continue
            self._train_scores[ins] = float(t.score)
            self._incumbent = float(t.score) if self._incumbent is None else max(self._incumbent, t.score)

    def scoring_stats(self) -> dict[str, Any]:
        """Training scorer requests of the candidates scored so far, next to what full scoring
        would have asked (the figure the racing benchmark compares)."""
        n = len(self.splits.train)
        asked = sum(self._requests.values())
        full = n * len(self._requests)
        out: dict[str, Any] = {
            "strategy": self.scoring,
            "train_examples": n,
            "candidates": len(self._requests),
            "stopped_early": len(self._partial),
            "train_requests": asked,
            "train_requests_if_full": full,
            "share_of_full": round(asked / full, 4) if full else None,
        }
        if self.racing is not None:
            out["racing"] = dataclasses.asdict(self.racing)
        return out

    async def aselect_on_validation(
        self, candidates: Sequence[Candidate | str], train_scores: Mapping[str, float] | None = None
    ) -> ValidationChoice:
        """The candidate with the best validation accuracy (ties keep the given order).
        ``train_scores`` (instruction → training accuracy) fills the rows' ``train_accuracy``;
        default: the scores this task object saw."""
        known = self._train_scores if train_scores is None else train_scores
        if not candidates:
            raise ConfigError("select_on_validation needs at least one candidate")
        cands = [c if isinstance(c, Candidate) else Candidate(c, c) for c in candidates]
        if not self.splits.val:
            rows = [
                {"instruction": c.text, "val_accuracy": None, "note": "no validation split"} for c in cands
            ]
            return ValidationChoice(cands[0], rows)
        evals = await self._evaluate("val", self.splits.val, [self._instruction(c) for c in cands])
        rows = [
            {
                "instruction": c.text,
                "train_accuracy": known.get(self._instruction(c)),
                "val_accuracy": ev.accuracy,
                "correct": ev.correct,
                "total": ev.total,
                "failed": ev.failed,
                "coverage": round(ev.coverage, 4),
            }
            for c, ev in zip(cands, evals, strict=True)
        ]

        def rank(i: int) -> tuple[float, int]:
            acc = evals[i].accuracy
            return (-1.0 if acc is None else acc, -i)

        return ValidationChoice(cands[max(range(len(cands)), key=rank)], rows)

    def select_on_validation(self, candidates: Sequence[Candidate | str]) -> ValidationChoice:
        """Sync door to :meth:`aselect_on_validation`."""
        return run_sync(self.aselect_on_validation(candidates))

    def _train_scores_of(self, ranked: Sequence[tuple[Candidate, float]]) -> dict[str, float]:
        """Instruction → training accuracy: from ``ranked`` (the optimizer's journal-backed
        history, best first) when given, so a resumed run sees what an uninterrupted one saw."""
        if not ranked:
            return dict(self._train_scores)
        scores: dict[str, float] = {}
        for cand, score in ranked:
            scores.setdefault(self._instruction(cand), score)
        return scores

    def _shortlist(
        self, best: Candidate | str, ranked: Sequence[tuple[Candidate, float]] = ()
    ) -> list[Candidate]:
        """``best`` first, then the other instructions with the highest training accuracy, up to
        ``val_top_k`` in all. ``ranked`` (the optimizer's history, best first) is used when given,
        so a resumed run shortlists exactly what an uninterrupted one would; otherwise the scores
        this task object saw."""
        best_ins = self._instruction(best)
        scores = self._train_scores_of(ranked)
        # a candidate stopped by a race has a partial score: the final choice is made on full ones
        full = [ins for ins in scores if ins != best_ins and ins not in self._partial]
        others = sorted(full, key=lambda ins: -scores[ins])
        first = best if isinstance(best, Candidate) else Candidate(best, best)
        return [first, *(Candidate(ins, ins) for ins in others[: max(0, self.val_top_k - 1)])]

    async def afinal_report(
        self, best: Candidate | str, ranked: Sequence[tuple[Candidate, float]] = ()
    ) -> dict[str, Any]:
        """Pick the final instruction on validation, then report its test accuracy against the
        baselines; all scorer requests of a phase go in one concurrent batch.

        The shortlist is ``best`` (the loop's best by training score) plus the next best
        instructions of ``ranked`` (else those this task object scored), ``val_top_k`` in all; with ``val_top_k <= 1`` or no
        validation split, ``best`` is kept as is. Returned keys: ``dataset, source, position,
        scorer, splits``; ``instruction`` (the one reported) and ``selected_by``;
        ``validation`` (one row per shortlisted instruction, when used); ``test`` with ``best``,
        ``train_best`` (when validation picked another one) and one entry per baseline
        (``empty``, ``step_by_step``, ``solve``), each ``instruction, accuracy, correct, total,
        failed, coverage`` (failed requests count as wrong; coverage = answered / total); ``best_minus_best_baseline``; ``per_example``: name → list of 1 / 0 / None
        (right / wrong / failed) over the test examples.
        """
        train_best = self._instruction(best)
        shortlist = self._shortlist(best, ranked)
        report: dict[str, Any] = {
            "dataset": self.dataset.name,
            "source": self.dataset.source,
            "position": self.position,
            "scorer": getattr(self.scorer, "name", ""),
            "splits": dict(self.splits.recipe),
        }
        selected, selected_by = train_best, "training score"
        if len(shortlist) > 1 and self.splits.val:
            choice = await self.aselect_on_validation(shortlist, self._train_scores_of(ranked))
            selected, selected_by = self._instruction(choice.best), "validation accuracy"
            report["validation"] = choice.rows
        report["instruction"] = selected
        report["selected_by"] = selected_by
        report["scoring"] = self.scoring_stats()

        names = ["best"] + (["train_best"] if selected != train_best else []) + [n for n, _ in BASELINES]
        instructions = (
            [selected] + ([train_best] if selected != train_best else []) + [i for _, i in BASELINES]
        )
        evals = await self._evaluate("test", self.splits.test, instructions)
        by_name = dict(zip(names, evals, strict=True))
        report["test"] = {name: ev.summary() for name, ev in by_name.items()}
        base_scores = [by_name[n].accuracy for n, _ in BASELINES if by_name[n].accuracy is not None]
        best_acc = by_name["best"].accuracy
        report["best_minus_best_baseline"] = (
            None if best_acc is None or not base_scores else round(best_acc - max(base_scores), 4)
        )
        report["per_example"] = {
            name: [None if r.correct is None else int(r.correct) for r in ev.records]
            for name, ev in by_name.items()
        }
        return report

    def final_report(self, best: Candidate, ranked: Sequence[tuple[Candidate, float]] = ()) -> dict[str, Any]:
        """Sync door to :meth:`afinal_report`."""
        return run_sync(self.afinal_report(best, ranked))

    def config(self) -> dict[str, Any]:
        """Options that rebuild this task (the scorer is passed again by the caller)."""
        return dict(self._options)

    # -- report hooks (see promptopt.tasks.base): called on the class, from a run's files only
    @staticmethod
    def summary(report: dict[str, Any]) -> list[str]:
        from promptopt.tasks.base import short_number as n

        lines = [
            f"instruction ({report.get('selected_by', 'training score')}): {report.get('instruction')!r}",
            f"dataset: {report.get('dataset')}  position: {report.get('position')}  scorer: {report.get('scorer')}",
        ]
        for name, row in (report.get("test") or {}).items():
            if isinstance(row, dict):
                lines.append(
                    f"held-out test accuracy, {name}: {n(row.get('accuracy'))} "
                    f"({row.get('correct')}/{row.get('total')}, failed {row.get('failed')}"
                    + (f", coverage {n(row['coverage'])})" if row.get("coverage") is not None else ")")
                )
        lines.append(f"best minus best baseline: {n(report.get('best_minus_best_baseline'))}")
        return lines

    @staticmethod
    def report_section(report: dict[str, Any], search: dict[str, Any]) -> list[str]:
        import json

        from promptopt.tasks.base import number as n

        if not isinstance(report.get("test"), dict):
            raise KeyError("test")  # a report of another shape: the generic section
        rows = ["| instruction | held-out test accuracy | correct / total |", "|---|---|---|"]
        for name, row in report["test"].items():
            text = str(row.get("instruction", "")).replace("|", "\\|").replace("\n", " ")
            rows.append(
                f"| {name}: `{text}` | {n(row.get('accuracy'))} | {row.get('correct')} / {row.get('total')} |"
            )
        rest = [
            f"- **{k}**: {json.dumps(v, default=str) if isinstance(v, list | dict) else n(v)}"
            for k, v in report.items()
            if not (isinstance(v, list | dict) and len(json.dumps(v, default=str)) > 300)
        ]
        return [
            f"Dataset {report.get('dataset')}, position {report.get('position')}, scorer `{report.get('scorer')}`; "
            f"reported instruction selected by {report.get('selected_by')}.",
            "",
            *rows,
            "",
            *rest,
        ]


def rewrite_splits(splits: Splits, rewriter: Any, mode: str = "default") -> Splits:
    """``splits`` with every question rewritten by a BPO ``rewriter`` (one batch over the unique
    questions; gold answers untouched). A rewriter given as a path is loaded here and closed after.

    Why the questions and not the scorer: the scorer request is the instruction placed around the
    question, and a rewriting scorer would rewrite the instruction too; deployed, the rewriter
    sees only the user's prompt (``AlignedLLM`` rewrites first, then instructs).
    """
    from dataclasses import replace
    from pathlib import Path

    from promptopt.optimizers.bpo.rewriter import RewriteSettings, arewrite_with, load_rewriter

    settings = RewriteSettings(mode=mode)
    loaded = load_rewriter(rewriter, settings)
    owned = isinstance(rewriter, str | Path)
    questions = list(dict.fromkeys(ex.input for ex in (*splits.train, *splits.val, *splits.test)))

    async def go() -> list[str]:
        try:
            return await arewrite_with(loaded, questions, settings)
        finally:
            if owned:
                await loaded.aclose()

    new = dict(zip(questions, run_sync(go()), strict=True))

    def moved(examples: tuple[Example, ...]) -> tuple[Example, ...]:
        return tuple(replace(ex, input=new[ex.input] or ex.input) for ex in examples)

    changed = sum(1 for q in questions if new[q] != q)
    recipe = {**splits.recipe, "rewriter": {"mode": mode, "questions": len(questions), "changed": changed}}
    return replace(
        splits, train=moved(splits.train), val=moved(splits.val), test=moved(splits.test), recipe=recipe
    )


def create(
    dataset: str = "gsm8k",
    data_dir: str | None = None,
    position: str = "Q_begin",
    scorer: LLM | str | None = None,
    seed: int = 0,
    train_ratio: float | None = None,
    num_train: int | None = None,
    num_val: int | None = None,
    num_test: int | None = None,
    max_tokens: int = 400,
    input_field: str = "input",
    target_field: str = "target",
    answer_type: str | None = None,
    hf_config: str | None = None,
    initial: Sequence[str] | str | None = None,
    max_instruction_chars: int = MAX_INSTRUCTION_CHARS,
    val_top_k: int = 5,
    topic: str | None = None,
    meta_prompt: str = "chat",
    reject_digits: bool | None = None,
    rewriter: str | None = None,
    rewrite_mode: str = "default",
    scoring: str = "full",
    race_delta: float = 0.1,
    race_first: int = 10,
    race_growth: float = 1.5,
) -> InstructionTask:
    """Instruction search on a dataset (gsm8k, bbh:<task>, multiarith, aqua, jsonl:PATH, HF id).

    ``data_dir`` (else ``$PROMPTOPT_DATA_DIR``) reads OPRO's data files; without it the Hub is
    used. ``train_ratio`` defaults to 0.035 for GSM8K and 0.2 otherwise; ``num_val`` defaults
    to the train size (two-file datasets) or 10 % of the pool; ``num_train`` / ``num_test`` cap
    the train / test sets for quick runs. ``scorer`` is an LLM or a model spec (default
    ``local``); ``max_tokens`` bounds each scorer answer; ``val_top_k`` is how many of the best
    training instructions ``final_report`` compares on validation; ``topic`` names the problems in
    the meta-prompt for user data ("solve <topic> problems"). ``meta_prompt`` picks the variant of
    OPRO's meta-prompt (``chat``: ``<INS>`` tags; ``bracket``: the text-bison ``[...]`` style; see
    :data:`META_PROMPT_STYLES`). Proposals longer than ``max_instruction_chars``, or containing
    "INS", or digits when ``reject_digits`` (default: on for gsm8k and multiarith) are dropped, as
    in OPRO. ``rewriter`` (a BPO rewriter directory or hub id, or a loaded rewriter) rewrites
    every example's question once, in one batch, before anything is scored (``rewrite_mode``:
    default or aggressive): the search then finds the instruction for the rewritten prompts that
    ``AlignedLLM(llm, rewriter=..., instruction=...)`` deploys (rewrite first, then the
    instruction). ``scoring`` is ``full`` (every candidate on every training example, the paper)
    or ``racing`` (stop a candidate early once, at confidence ``1 - race_delta``, it cannot beat
    the best so far; first rung ``race_first`` examples, each next ``race_growth`` times larger;
    see :mod:`promptopt.evaluators.racing`). See :mod:`promptopt.tasks.instructions.datasets`.
    """
    check_position(position)
    meta_prompt_style(meta_prompt)
    check_scoring(scoring)
    racing = RacingConfig(race_delta, race_first, race_growth)  # checked even when unused
    if rewriter is None and rewrite_mode != "default":
        raise ConfigError("rewrite_mode applies to a rewriter; give rewriter=DIR (opro run --rewriter DIR)")
    if reject_digits is not None and not isinstance(reject_digits, bool):
        raise ConfigError(f"reject_digits must be true, false or None, got {reject_digits!r}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if (
        isinstance(max_instruction_chars, bool)
        or not isinstance(max_instruction_chars, int)
        or max_instruction_chars < 1
    ):
        raise ConfigError(f"max_instruction_chars must be a positive integer, got {max_instruction_chars!r}")
    if isinstance(val_top_k, bool) or not isinstance(val_top_k, int) or val_top_k < 0:
        raise ConfigError(f"val_top_k must be an integer >= 0, got {val_top_k!r}")
    if initial is None:
        initial_list = list(DEFAULT_INITIAL)
    elif isinstance(initial, str):
        initial_list = [initial]
    else:
        initial_list = [str(x) for x in initial]
    ds = load_dataset(
        dataset,
        data_dir=data_dir,
        input_field=input_field,
        target_field=target_field,
        answer_type=answer_type,
        hf_config=hf_config,
        topic=topic,
    )
    splits = split_dataset(
        ds, seed=seed, train_ratio=train_ratio, num_train=num_train, num_val=num_val, num_test=num_test
    )
    if rewriter is not None:
        splits = rewrite_splits(splits, rewriter, rewrite_mode)
    options = {
        "dataset": dataset,
        "data_dir": None if data_dir is None else str(data_dir),
        "position": position,
        "seed": seed,
        "train_ratio": train_ratio,
        "num_train": num_train,
        "num_val": num_val,
        "num_test": num_test,
        "max_tokens": max_tokens,
        "input_field": input_field,
        "target_field": target_field,
        "answer_type": answer_type,
        "hf_config": hf_config,
        "initial": initial_list,
        "max_instruction_chars": max_instruction_chars,
        "val_top_k": val_top_k,
        "topic": topic,
        "meta_prompt": meta_prompt,
        "reject_digits": reject_digits,
    }
    if scoring != "full":  # only when set: config.json of runs with full scoring stays as it was
        options.update(scoring=scoring, race_delta=race_delta, race_first=race_first, race_growth=race_growth)
    if rewriter is not None:  # only when set: config.json of runs without one stays as it was
        options["rewriter"] = (
            rewriter if isinstance(rewriter, str) else str(getattr(rewriter, "name", "rewriter"))
        )
        options["rewrite_mode"] = rewrite_mode
    return InstructionTask(
        ds,
        splits,
        position=position,
        scorer=scorer,
        max_tokens=max_tokens,
        seed=seed,
        initial=initial_list,
        max_instruction_chars=max_instruction_chars,
        val_top_k=val_top_k,
        options=options,
        meta_prompt=meta_prompt,
        reject_digits=reject_digits,
        scoring=scoring,
        racing=racing,
    )
