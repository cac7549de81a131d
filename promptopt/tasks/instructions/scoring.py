"""Training scores of instructions: the ``full`` and ``racing`` strategies and their bookkeeping.

:class:`ScoreBook` owns everything scoring depends on across a run: the in-memory memo of whole
evaluations (per split and instruction), the training accuracy of each instruction, the
incumbent a race must beat, the candidates a race stopped and the training requests each
candidate cost. ``restore`` rebuilds it from a run's committed trials, so a resumed run scores
exactly as an uninterrupted one.

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
(cache hits included: it is the cost of the strategy, not of this machine's cache), and the
``scoring`` section of ``InstructionTask.final_report`` sums them next to what full scoring would
have asked.

Caching: every scorer request is temperature 0 with the same fixed seed (:data:`SCORER_SEED`, not
the run's seed: a greedy answer does not depend on it, so runs with different seeds share their
cached answers), and the request contains the instruction in place, the example and the sampling
settings; the request cache that
``build_llm`` wraps around the scorer adds the model name. That is the per-(instruction,
position, example, scorer) cache: re-scoring an instruction, in this run or a resumed one, makes
no backend call. The book also memoises whole evaluations in memory for the task's lifetime.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from promptopt.errors import ConfigError
from promptopt.evaluators.accuracy import Evaluation, aevaluate_many
from promptopt.evaluators.answers.extraction import GRADED_SPECS, ExtractionMetric, check_extract_mode
from promptopt.evaluators.metrics.base import Metric
from promptopt.evaluators.racing import RaceOutcome, RacingConfig, arace, example_order
from promptopt.llm.base import LLM
from promptopt.prompting import Demo
from promptopt.tasks.base import Candidate, Scored
from promptopt.tasks.instructions.datasets import Example, Splits

#: The seed of every scorer request. Scoring is greedy, so the run seed would change nothing but
#: the cache key: repeated runs (seeds) on one split would re-ask every baseline and shared answer.
SCORER_SEED = 0

#: The ``scoring`` option: how training scores are computed (see the task module's docstring).
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


def instruction_of(candidate: Candidate | str) -> str:
    """The instruction a candidate stands for (its value, else its text; a string as is)."""
    if isinstance(candidate, str):
        return candidate
    return candidate.value if isinstance(candidate.value, str) else candidate.text


class ScoreBook:
    """Scores instructions with the scorer LLM and remembers what later choices need.

    ``llm`` is called on first use (the task builds its scorer lazily); ``racing`` is None for
    full scoring. ``train_scores`` (instruction → full training accuracy) and ``partial`` (the
    instructions a race stopped) feed the validation shortlist; ``requests`` (instruction →
    training examples scored) feeds :meth:`stats`.
    """

    def __init__(
        self,
        llm: Callable[[], LLM],
        splits: Splits,
        *,
        position: str,
        max_tokens: int,
        seed: int,
        strategy: str,
        racing: RacingConfig | None,
        shortlist_size: int = 1,
        metric: Metric | None = None,
        system: str | None = None,
        sink: Callable[[str, Evaluation, Sequence[Example], Sequence[Demo]], None] | None = None,
        extract_answer: str = "never",
    ) -> None:
        self._llm = llm
        #: scores every answer (None: ``auto``, the built-in grader per answer kind)
        self.metric = metric
        #: the answer-extraction turn (:mod:`promptopt.evaluators.answers.extraction`): never,
        #: undecided or always; it wraps the built-in graders only
        self.extract_answer = check_extract_mode(extract_answer)
        spec = None if metric is None else (getattr(metric, "spec", None) or getattr(metric, "name", "?"))
        if self.extract_answer != "never" and spec not in GRADED_SPECS:
            raise ConfigError(
                f"extract_answer={self.extract_answer} reads answers for the built-in graders (metric auto, "
                f"number, choice, boolean or text), not metric {spec!r}; drop one of them"
            )
        self._extracting: ExtractionMetric | None = None
        #: the prompt program's fixed base system prompt (None: none)
        self.system = system
        #: told every fresh evaluation with its split (the run's answer log), never a memoised one
        self.sink = sink
        self.splits = splits
        self.position = position
        self.max_tokens = max_tokens
        self.seed = seed
        self.strategy = strategy
        self.racing = racing
        #: how many instructions the final choice compares on validation (1: none, the best wins)
        self.shortlist_size = max(1, shortlist_size)
        self._memo: dict[tuple[Any, str], Evaluation] = {}
        self.train_scores: dict[str, float] = {}
        #: the best full training accuracy so far (what a race must beat)
        self.incumbent: float | None = None
        self.partial: set[str] = set()
        self.requests: dict[str, int] = {}

    async def _ask(
        self, instructions: list[str], examples: Sequence[Example], demos: Sequence[Demo] = ()
    ) -> list[Evaluation]:
        """The scorer's answers to ``instructions`` on ``examples``, one concurrent batch: the one
        place scorer requests are built (same options, :data:`SCORER_SEED`), so full scores, race
        rungs and validation share the request cache."""
        return await aevaluate_many(
            self._llm(),
            instructions,
            examples,
            position=self.position,
            metric=self.scoring_metric(),
            max_tokens=self.max_tokens,
            seed=SCORER_SEED,
            system=self.system,
            demos=demos,
        )

    def scoring_metric(self) -> Metric | None:
        """The metric every answer is scored with: ``metric``, or with an extraction turn the
        built-in grader wrapped in :class:`ExtractionMetric` on the scorer (built on first use)."""
        if self.extract_answer == "never":
            return self.metric
        if self._extracting is None:
            spec = None if self.metric is None else getattr(self.metric, "spec", None)
            kind = None if spec in (None, "auto") else spec
            self._extracting = ExtractionMetric(self._llm, self.extract_answer, kind=kind, seed=SCORER_SEED)
        return self._extracting

    def _tell(
        self,
        split: str,
        evaluations: Sequence[Evaluation],
        examples: Sequence[Example],
        demos: Sequence[Demo] = (),
    ) -> None:
        if self.sink is not None:
            for ev in evaluations:
                self.sink(split, ev, examples, demos)

    async def evaluate(
        self,
        split: str,
        examples: Sequence[Example],
        instructions: Sequence[str],
        demos: Sequence[Demo] = (),
    ) -> list[Evaluation]:
        """Full evaluations of ``instructions`` (with the few-shot ``demos``) on ``examples`` (one
        concurrent batch for those not memoised under ``split``, these examples and demos); an
        evaluation with failed requests is not memoised, so the failures stay retryable."""
        where = (split, tuple(ex.id for ex in examples), tuple(demos))
        missing = [ins for ins in dict.fromkeys(instructions) if (where, ins) not in self._memo]
        fresh: dict[str, Evaluation] = {}
        if missing:
            evals = await self._ask(missing, examples, demos)
            self._tell(split, evals, examples, demos)
            for ev in evals:
                fresh[ev.instruction] = ev
                if ev.failed == 0:  # keep failures retryable
                    self._memo[(where, ev.instruction)] = ev
        return [fresh.get(ins) or self._memo[(where, ins)] for ins in instructions]

    async def ascore(self, instructions: Sequence[str]) -> list[Scored]:
        """Training accuracy of each instruction, by the strategy (see ``InstructionTask.ascore``)."""
        if self.racing is None or not self.splits.train:
            evals = await self.evaluate("train", self.splits.train, instructions)
            out = [self._scored(ev, None) for ev in evals]
        else:
            races = await self._race(instructions)
            out = [self._scored(races[ins].evaluation, races[ins]) for ins in instructions]
        for sc in out:  # the incumbent moves after the batch: each candidate raced the same one
            if sc.score is not None and not sc.info.get("partial"):
                self.incumbent = sc.score if self.incumbent is None else max(self.incumbent, sc.score)
        return out

    async def _race(self, instructions: Sequence[str]) -> dict[str, RaceOutcome]:
        """Race the distinct ``instructions`` on the training split in the run's race order."""
        assert self.racing is not None
        train = self.splits.train
        ordered = [train[i] for i in example_order(len(train), self.seed)]
        unique = list(dict.fromkeys(instructions))
        races = await arace(unique, ordered, self.bar(), self._ask, self.racing)
        self._tell("train", [r.evaluation for r in races], ordered)
        return dict(zip(unique, races, strict=True))

    def bar(self) -> float | None:
        """What a racing candidate must be able to reach to go on (see
        :mod:`promptopt.evaluators.racing`): the incumbent, or with ``target="shortlist"`` the
        k-th best full training score (None until k instructions have one: nothing is stopped)."""
        if self.racing is None or self.racing.target == "best" or self.shortlist_size <= 1:
            return self.incumbent
        ranked = sorted(self.train_scores.values(), reverse=True)
        return ranked[self.shortlist_size - 1] if len(ranked) >= self.shortlist_size else None

    def _scored(self, ev: Evaluation, race: RaceOutcome | None) -> Scored:
        """The Scored of one evaluation (full, or a race's) and the bookkeeping of it."""
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
        self.requests[ins] = ev.total
        if race is not None and race.stopped:
            self.partial.add(ins)
        elif ev.accuracy is not None:
            self.train_scores[ins] = ev.accuracy
            self.partial.discard(ins)
        return Scored(ev.accuracy, info, ev.error)

    def restore(self, trials: Sequence[Any]) -> None:
        """Rebuild the incumbent, stopped candidates, requests and training scores from a run's
        committed trials (see ``InstructionTask.restore``)."""
        self.incumbent, self.partial, self.requests, self.train_scores = None, set(), {}, {}
        for t in trials:
            info = getattr(t, "info", None) or {}
            if getattr(t, "status", None) not in ("scored", "initial") or t.score is None:
                continue
            ins = str(t.text)
            self.requests[ins] = int(info.get("requests", info.get("total", 0)) or 0)
            if info.get("partial"):
                self.partial.add(ins)
                continue
            self.train_scores[ins] = float(t.score)
            self.incumbent = float(t.score) if self.incumbent is None else max(self.incumbent, t.score)

    def train_scores_of(self, ranked: Sequence[tuple[Candidate, float]]) -> dict[str, float]:
        """Instruction → training accuracy: from ``ranked`` (the optimizer's journal-backed
        history, best first) when given, so a resumed run sees what an uninterrupted one saw."""
        if not ranked:
            return dict(self.train_scores)
        scores: dict[str, float] = {}
        for cand, score in ranked:
            scores.setdefault(instruction_of(cand), score)
        return scores

    def stats(self) -> dict[str, Any]:
        """Training scorer requests of the candidates scored so far, next to what full scoring
        would have asked (the figure the racing benchmark compares)."""
        n = len(self.splits.train)
        asked = sum(self.requests.values())
        full = n * len(self.requests)
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "train_examples": n,
            "candidates": len(self.requests),
            "stopped_early": len(self.partial),
            "train_requests": asked,
            "train_requests_if_full": full,
            "share_of_full": round(asked / full, 4) if full else None,
        }
        if self.racing is not None:
            out["racing"] = dataclasses.asdict(self.racing)
        if self.extract_answer != "never":
            out["extract_answer"] = self.extract_answer
        return out
