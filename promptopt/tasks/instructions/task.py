"""OPRO's instruction search as a Task plug-in: find the instruction that makes a scorer LLM
answer a dataset's questions best.

A candidate is an instruction (``Candidate.text == Candidate.value``: the instruction itself).
Its score is the scorer LLM's accuracy (0–100) on a seeded train subset, with the instruction
placed at ``Q_begin``, ``Q_end``, ``A_begin`` or as the ``system`` message
(:mod:`promptopt.prompting`, the same placement ``AlignedLLM`` uses when deploying it).

API for the OPRO loop (``make_task(...)`` is registered as task ``instructions``)::

    task = make_task(dataset="bbh:navigate", data_dir=..., position="Q_begin", scorer=llm)
    task.describe()                     # TaskDescription; past ones shown as <INS>...</INS> + score
    task.format_score(81.7)             # "82"
    task.exemplars(rng, 3)              # "input:/output:" pairs with <INS> where it goes
    task.parse(optimizer_text)          # Candidate | Rejected ("[...]" or <INS>...</INS>)
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
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.tasks.instructions.datasets import Dataset, Example, Splits, load_dataset, split_dataset
from promptopt.errors import ConfigError
from promptopt.evaluators.accuracy import Evaluation, aevaluate_many
from promptopt.llm.base import LLM, Message, run_sync
from promptopt.prompting import apply_instruction, check_position
from promptopt.tasks.base import Candidate, Rejected, Scored, TaskDescription

#: name → instruction; the paper's comparison points.
BASELINES: tuple[tuple[str, str], ...] = (
    ("empty", ""),
    ("step_by_step", "Let's think step by step."),
    ("solve", "Let's solve the problem."),
)
#: OPRO's starting instruction for GSM8K and BBH.
DEFAULT_INITIAL: tuple[str, ...] = ("Let's solve the problem.",)
_POSITION_WORDS = {
    "Q_begin": "at the beginning of the question",
    "Q_end": "at the end of the question",
    "A_begin": "at the beginning of the answer",
    "system": "as the system message",
}
_PLACEHOLDERS = frozenset(
    {
        "ins",
        "<ins>",
        "instruction",
        "your instruction",
        "new instruction",
        "text",
        "your text",
        "new text",
        "...",
    }
)
_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("\u00ab", "\u00bb"),
           ("\u201e", "\u201c"), ("\u300c", "\u300d"), ("\u300e", "\u300f"), ("`", "`"))  # fmt: skip
_TAG_RE = re.compile(r"<\s*(INS|Start)\s*>(.*?)<\s*/\s*\1\s*>", re.IGNORECASE | re.DOTALL)
_SQUARE_TAG_RE = re.compile(r"\[\s*INS\s*\](.*?)\[\s*/\s*INS\s*\]", re.IGNORECASE | re.DOTALL)
_OPEN_TAG_RE = re.compile(r"<\s*(?:INS|Start)\s*>([^\n]*)", re.IGNORECASE)
_LABEL_RE = re.compile(r"^\s*(?:new\s+|improved\s+)?(?:instruction|text|prompt)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ValidationChoice:
    """The candidate with the best validation accuracy, and one row per candidate (given order)."""

    best: Candidate
    rows: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- parsing


def _balanced_brackets(text: str) -> str | None:
    """Content of the first top-level ``[...]`` (nested brackets kept), or None."""
    start = text.find("[")
    while start >= 0:
        depth = 0
        for j in range(start, len(text)):
            if text[j] == "[":
                depth += 1
            elif text[j] == "]":
                depth -= 1
                if depth == 0:
                    return text[start + 1 : j]
        start = -1  # unbalanced: no closing bracket anywhere after the first "["
    return None


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
    """Strip tags, wrapping quotes, control characters and extra blank space; keep Unicode."""
    text = re.sub(r"<\s*/?\s*(?:INS|Start)\s*>", "", text, flags=re.IGNORECASE)
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


def extract_instruction(text: str) -> str | None:
    """The proposed instruction in an optimizer's output, or None when none is marked.

    In order: ``<INS>...</INS>`` (or ``<Start>``), ``[INS]...[/INS]``, the first balanced
    ``[...]``, an unclosed ``<INS>`` line, and last a lone line ("Instruction: ..." allowed).
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    for m in _TAG_RE.finditer(text):
        if _clean_instruction(m.group(2)):
            return m.group(2)
    m = _SQUARE_TAG_RE.search(text)
    if m and _clean_instruction(m.group(1)):
        return m.group(1)
    inner = _balanced_brackets(text)
    if inner is not None:
        return inner
    m = _OPEN_TAG_RE.search(text)
    if m and _clean_instruction(m.group(1)):
        return m.group(1)
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) == 1 and not lines[0].rstrip().endswith(":"):
        return _LABEL_RE.sub("", lines[0])
    return None


# --------------------------------------------------------------------------- the task


class InstructionTask:
    """Instruction search on a dataset (see the module docstring)."""

    name = "instructions"
    direction = "max"

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
        max_instruction_chars: int = 1000,
        val_top_k: int = 5,
        options: dict[str, Any] | None = None,
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
        self._options = dict(options or {})
        self.val_top_k = val_top_k
        self._memo: dict[tuple[str, str], Evaluation] = {}
        #: training accuracy of every instruction scored by this task object (for final_report)
        self._train_scores: dict[str, float] = {}

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
        """OPRO's instruction meta-prompt: past instructions as ``<INS>...</INS>`` with an integer
        ``score`` (0–100), input/output exemplars with ``<INS>`` where the instruction goes, and
        the request for a new, different instruction in square brackets."""
        where = _POSITION_WORDS[self.position]
        return TaskDescription(
            problem=(
                f"Your task is to write an instruction <INS> that helps a language model solve "
                f"{self.dataset.topic} problems. The instruction is placed {where}, then the model "
                "answers the problem. Below are some previous instructions with their scores. The "
                "score is the model's accuracy on a set of training problems and ranges from 0 to "
                "100. The instructions are arranged in ascending order based on their scores, where "
                "higher scores indicate better quality."
            ),
            solution_name="instruction",
            score_name="score",
            output_format=(
                "Write your new instruction that is different from the old ones and has a score as "
                "high as possible. Write the instruction in square brackets."
            ),
            instruction_suffix=(
                "The instruction should be concise, effective, and generally applicable to all "
                "problems above."
            ),
            entry_template="<INS>{text}</INS>\nscore:\n{score}",
            exemplars_intro=(
                "The following exemplars show how to apply your instruction: you replace <INS> in "
                "each input with your instruction, then read the input and give an output. We say "
                "your output is wrong if it gives a different answer from the given output, and "
                "correct if it gives the same answer."
            ),
        )

    def format_solution(self, candidate: Candidate) -> str:
        """How a past instruction is shown in the meta-prompt (``entry_template`` without score)."""
        return f"<INS>{candidate.text}</INS>"

    def format_score(self, score: float) -> str:
        """Accuracy as an integer 0–100 (half rounds up)."""
        return str(int(math.floor(min(100.0, max(0.0, float(score))) + 0.5)))

    def render_exemplar(self, example: Example) -> str:
        """One ``input:`` / ``output:`` pair with ``<INS>`` where the instruction goes."""
        msgs = apply_instruction([Message("user", example.input)], "<INS>", self.position)
        if self.position == "system":
            shown = "\n".join(f"{m.role}: {m.content}" for m in msgs)
        else:
            shown = msgs[-1].content
        return f"input:\n{shown}\noutput:\n{example.target}"

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
        """An instruction from optimizer output (untrusted text: regexes only)."""
        raw = extract_instruction(text or "")
        if raw is None:
            return Rejected("unparseable", "no instruction in [square brackets] or <INS>...</INS> tags")
        instruction = _clean_instruction(raw)
        if not instruction:
            return Rejected("invalid", "empty instruction")
        if instruction.lower().strip(" .") in _PLACEHOLDERS:
            return Rejected("invalid", f"placeholder instead of an instruction: {instruction!r}")
        if len(instruction) > self.max_instruction_chars:
            return Rejected(
                "invalid",
                f"instruction has {len(instruction)} characters; the limit is {self.max_instruction_chars}",
            )
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
        """Training accuracy of each candidate, all (candidate × example) requests in one batch.

        ``Scored.info``: ``correct``, ``total``, ``failed`` (requests that errored; they are left
        out of the accuracy), ``no_answer`` (responses with no readable answer) and ``per_example`` (``1`` right, ``0`` wrong, ``x`` failed, in
        train order). All requests failed → ``Scored(None, error=...)``.
        """
        evals = await self._evaluate("train", self.splits.train, [self._instruction(c) for c in candidates])
        out = []
        for ev in evals:
            if ev.accuracy is not None:
                self._train_scores[ev.instruction] = ev.accuracy
            info = {
                "correct": ev.correct,
                "total": ev.total,
                "failed": ev.failed,
                "no_answer": ev.no_answer,
                "per_example": ev.correctness(),
            }
            out.append(Scored(ev.accuracy, info, ev.error))
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
        others = sorted((ins for ins in scores if ins != best_ins), key=lambda ins: -scores[ins])
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
        failed``; ``best_minus_best_baseline``; ``per_example``: name → list of 1 / 0 / None
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


def make_task(
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
    max_instruction_chars: int = 1000,
    val_top_k: int = 5,
    topic: str | None = None,
) -> InstructionTask:
    """Instruction search on a dataset (gsm8k, bbh:<task>, multiarith, aqua, jsonl:PATH, HF id).

    ``data_dir`` (else ``$PROMPTOPT_DATA_DIR``) reads OPRO's data files; without it the Hub is
    used. ``train_ratio`` defaults to 0.035 for GSM8K and 0.2 otherwise; ``num_val`` defaults
    to the train size (two-file datasets) or 10 % of the pool; ``num_train`` / ``num_test`` cap
    the train / test sets for quick runs. ``scorer`` is an LLM or a model spec (default
    ``local``); ``max_tokens`` bounds each scorer answer; ``val_top_k`` is how many of the best
    training instructions ``final_report`` compares on validation; ``topic`` names the problems in
    the meta-prompt for user data ("solve <topic> problems"). See :mod:`promptopt.tasks.instructions.datasets`.
    """
    check_position(position)
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
    }
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
    )
