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

Where the parts live: the meta-prompt variants' texts in :mod:`.prompts`; reading and
filtering proposals in :mod:`.parsing`; training scores (``full`` or ``racing``), caching and
resume in :mod:`.scoring`; the validation pick and the test report in :mod:`.validation`; the
report hooks in :mod:`.report`; rewriting questions through a BPO rewriter in :mod:`.rewrite`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from promptopt.errors import ConfigError
from promptopt.evaluators.racing import RacingConfig
from promptopt.llm.base import LLM, run_sync
from promptopt.prompting import check_position
from promptopt.tasks.base import Candidate, ProposalShape, Rejected, Scored, TaskDescription
from promptopt.tasks.instructions import prompts
from promptopt.tasks.instructions.datasets import Dataset, Example, Splits, load_dataset, split_dataset
from promptopt.tasks.instructions.parsing import (
    DIGIT_FREE_DATASETS,
    MAX_INSTRUCTION_CHARS,
    check_proposal,
    is_placeholder,
)
from promptopt.tasks.instructions.parsing import clean_instruction as _clean_instruction
from promptopt.tasks.instructions.prompts import (
    META_PROMPT_STYLES,
    MetaPromptStyle,
    extract_instruction,
    meta_prompt_style,
)
from promptopt.tasks.instructions.report import report_section, summary
from promptopt.tasks.instructions.rewrite import rewrite_splits
from promptopt.tasks.instructions.scoring import SCORING_STRATEGIES, ScoreBook, check_scoring, instruction_of
from promptopt.tasks.instructions.validation import (
    BASELINES,
    ValidationChoice,
    aselect_on_validation,
    atest_report,
    shortlist,
)

#: re-exported: tests, bench scripts and the CLI import these from this module
__all__ = [
    "BASELINES", "DEFAULT_INITIAL", "DIGIT_FREE_DATASETS", "MAX_INSTRUCTION_CHARS", "META_PROMPT_STYLES",
    "SCORING_STRATEGIES", "InstructionTask", "MetaPromptStyle", "ValidationChoice", "_clean_instruction",
    "check_scoring", "create", "extract_instruction", "is_placeholder", "meta_prompt_style", "rewrite_splits",
]  # fmt: skip

#: OPRO's starting instruction for GSM8K and BBH (``initial_instructions`` in the reference's
#: opro/optimization/optimize_instructions.py).
DEFAULT_INITIAL: tuple[str, ...] = ("Let's solve the problem.",)


class InstructionTask:
    """Instruction search on a dataset (see the module docstring). The meta-prompt texts live in
    :mod:`.prompts`, proposal parsing in :mod:`.parsing`, training scores in :mod:`.scoring`, the
    final choice in :mod:`.validation` and the report hooks in :mod:`.report`."""

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
        self.tag = prompts.answer_tag(self.style, self.position)
        #: drop proposals with digits (the reference does on GSM8K); None: by dataset
        self.reject_digits = dataset.name in DIGIT_FREE_DATASETS if reject_digits is None else reject_digits
        self._options = dict(options or {})
        self.val_top_k = val_top_k
        self.scoring = check_scoring(scoring)
        #: the race settings; None when scoring is full
        self.racing = (racing or RacingConfig()) if scoring == "racing" else None
        #: memoised evaluations, training scores, the incumbent, stopped candidates, requests
        self._book = ScoreBook(
            lambda: self.scorer,
            splits,
            position=self.position,
            max_tokens=max_tokens,
            seed=seed,
            strategy=self.scoring,
            racing=self.racing,
            shortlist_size=val_top_k if splits.val else 1,
        )

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
        """OPRO's instruction meta-prompt in the ``meta_prompt`` variant: the reference's sentences
        plus one that names the problems and where the instruction goes (see
        :func:`.prompts.describe`). Scores are accuracies 0–100, worst first and best last."""
        return prompts.describe(self.style, self.tag, self.position, self.dataset.topic)

    def proposal_shape(self) -> ProposalShape:
        """The tagged (``<INS>...</INS>``) or bracketed (``[...]``) instruction the variant asks
        for, alone on one line, at most ``max_instruction_chars`` characters, without the
        characters that would end it early (and without digits when ``reject_digits``);
        :meth:`parse` still applies every filter."""
        return prompts.proposal_shape(
            self.style,
            self.tag,
            self.describe().output_format,
            self.max_instruction_chars,
            self.reject_digits,
        )

    def format_solution(self, candidate: Candidate) -> str:
        """How a past instruction is shown in the meta-prompt (``entry_template`` without score)."""
        return self.style.wrap(candidate.text, self.tag)

    def format_score(self, score: float) -> str:
        """Accuracy as an integer 0–100 (half rounds up)."""
        return str(int(math.floor(min(100.0, max(0.0, float(score))) + 0.5)))

    def render_exemplar(self, example: Example) -> str:
        """One exemplar with ``<INS>`` (``<Start>``) where the instruction goes (see
        :func:`.prompts.render_exemplar`)."""
        return prompts.render_exemplar(self.style, self.tag, self.position, example)

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
        return check_proposal(
            extract_instruction(text or "", self.style.name, self.tag),
            style=self.style.name,
            tag=self.tag,
            max_chars=self.max_instruction_chars,
            reject_digits=self.reject_digits,
            dataset=self.dataset.name,
        )

    # -- scoring
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
        return await self._book.ascore([instruction_of(c) for c in candidates])

    def restore(self, trials: Sequence[Any]) -> None:
        """Rebuild what scoring depends on from a run's committed trials (the optimizer calls this
        before its first step; empty for a new run): the incumbent a race must beat, the stopped
        candidates and the requests per candidate. So a resumed run races exactly as an
        uninterrupted one."""
        self._book.restore(trials)

    def scoring_stats(self) -> dict[str, Any]:
        """Training scorer requests of the candidates scored so far, next to what full scoring
        would have asked (the figure the racing benchmark compares)."""
        return self._book.stats()

    # -- the final choice
    async def aselect_on_validation(
        self, candidates: Sequence[Candidate | str], train_scores: Mapping[str, float] | None = None
    ) -> ValidationChoice:
        """The candidate with the best validation accuracy (ties keep the given order).
        ``train_scores`` (instruction → training accuracy) fills the rows' ``train_accuracy``;
        default: the scores this task object saw."""
        known = self._book.train_scores if train_scores is None else train_scores
        return await aselect_on_validation(self._book, candidates, known)

    def select_on_validation(self, candidates: Sequence[Candidate | str]) -> ValidationChoice:
        """Sync door to :meth:`aselect_on_validation`."""
        return run_sync(self.aselect_on_validation(candidates))

    async def afinal_report(
        self, best: Candidate | str, ranked: Sequence[tuple[Candidate, float]] = ()
    ) -> dict[str, Any]:
        """Pick the final instruction on validation, then report its test accuracy against the
        baselines; all scorer requests of a phase go in one concurrent batch.

        The shortlist is ``best`` (the loop's best by training score) plus the next best
        instructions of ``ranked`` (the optimizer's journal-backed history, best first, so a
        resumed run shortlists what an uninterrupted one would; else those this task object
        scored), ``val_top_k`` in all; with ``val_top_k <= 1`` or no validation split, ``best``
        is kept as is. Returned keys: ``dataset, source, position, scorer, splits``;
        ``validation`` (one row per shortlisted instruction, when used); ``instruction`` (the
        one reported) and ``selected_by``; ``scoring`` (:meth:`scoring_stats`); ``test`` with
        ``best``, ``train_best`` (when validation picked another one) and one entry per baseline
        (``empty``, ``step_by_step``, ``solve``), each ``instruction, accuracy, correct, total,
        failed, coverage`` (failed requests count as wrong; coverage = answered / total);
        ``best_minus_best_baseline``; ``per_example``: name → list of 1 / 0 / None (right /
        wrong / failed) over the test examples.
        """
        train_best = instruction_of(best)
        scores = self._book.train_scores_of(ranked)
        candidates = shortlist(best, scores, self._book.partial, self.val_top_k)
        report: dict[str, Any] = {
            "dataset": self.dataset.name,
            "source": self.dataset.source,
            "position": self.position,
            "scorer": getattr(self.scorer, "name", ""),
            "splits": dict(self.splits.recipe),
        }
        selected, selected_by = train_best, "training score"
        if len(candidates) > 1 and self.splits.val:
            choice = await aselect_on_validation(self._book, candidates, scores)
            selected, selected_by = instruction_of(choice.best), "validation accuracy"
            report["validation"] = choice.rows
        report["instruction"] = selected
        report["selected_by"] = selected_by
        report["scoring"] = self.scoring_stats()
        report.update(await atest_report(self._book, selected, train_best))
        return report

    def final_report(self, best: Candidate, ranked: Sequence[tuple[Candidate, float]] = ()) -> dict[str, Any]:
        """Sync door to :meth:`afinal_report`."""
        return run_sync(self.afinal_report(best, ranked))

    def config(self) -> dict[str, Any]:
        """Options that rebuild this task (the scorer is passed again by the caller)."""
        return dict(self._options)

    # -- report hooks (see promptopt.tasks.base): called on the class, from a run's files only
    summary = staticmethod(summary)
    report_section = staticmethod(report_section)


def _check_int(name: str, value: object, least: int) -> None:
    """A ConfigError unless ``value`` is an int (not a bool) of at least ``least`` (0 or 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        what = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise ConfigError(f"{name} must be {what}, got {value!r}")


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
    split_seed: int | None = None,
    race_target: str = "shortlist",
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
    or ``racing`` (stop a candidate early once, at confidence ``1 - race_delta``, it cannot reach
    the validation shortlist, ``race_target="shortlist"``, or beat the best so far, ``"best"``; first rung
    ``race_first`` examples, each next ``race_growth`` times larger;
    see :mod:`promptopt.evaluators.racing`). ``split_seed`` draws the train / validation / test
    split instead of ``seed`` (repeated runs with different seeds on one fixed split, as the OPRO
    paper's repeats are: the seeds then differ only in the search, and baselines are scored once).
    See :mod:`promptopt.tasks.instructions.datasets`.
    """
    check_position(position)
    meta_prompt_style(meta_prompt)
    check_scoring(scoring)
    racing = RacingConfig(race_delta, race_first, race_growth, race_target)  # checked even when unused
    if rewriter is None and rewrite_mode != "default":
        raise ConfigError("rewrite_mode applies to a rewriter; give rewriter=DIR (opro run --rewriter DIR)")
    if reject_digits is not None and not isinstance(reject_digits, bool):
        raise ConfigError(f"reject_digits must be true, false or None, got {reject_digits!r}")
    _check_int("max_tokens", max_tokens, 1)
    _check_int("max_instruction_chars", max_instruction_chars, 1)
    _check_int("val_top_k", val_top_k, 0)
    if initial is None:
        initial_list = list(DEFAULT_INITIAL)
    else:
        initial_list = [initial] if isinstance(initial, str) else [str(x) for x in initial]
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
        ds,
        seed=seed if split_seed is None else split_seed,
        train_ratio=train_ratio,
        num_train=num_train,
        num_val=num_val,
        num_test=num_test,
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
        options.update(
            scoring=scoring,
            race_delta=race_delta,
            race_first=race_first,
            race_growth=race_growth,
            race_target=race_target,
        )
    if split_seed is not None:  # only when set: config.json of other runs stays as it was
        options["split_seed"] = split_seed
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
