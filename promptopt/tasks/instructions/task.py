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
from promptopt.evaluators.accuracy import Evaluation
from promptopt.evaluators.answers.extraction import check_extract_mode
from promptopt.evaluators.metrics.base import Metric
from promptopt.evaluators.metrics.registry import (
    JUDGE_MODES,
    metric_spec_of,
    metric_wants_judge,
    resolve_metric,
)
from promptopt.evaluators.racing import RacingConfig
from promptopt.llm.base import LLM, run_sync
from promptopt.prompting import Demo, check_position
from promptopt.tasks.base import Candidate, ProposalShape, Rejected, Scored, TaskDescription
from promptopt.tasks.instructions import costs, prompts
from promptopt.tasks.instructions.answer_log import ANSWERS_FILE, AnswerLog
from promptopt.tasks.instructions.datasets import Dataset, Example, Splits, load_dataset, split_dataset
from promptopt.tasks.instructions.parsing import (
    DIGIT_FREE_DATASETS,
    MAX_INSTRUCTION_CHARS,
    check_proposal,
    is_placeholder,
)
from promptopt.tasks.instructions.parsing import clean_instruction as _clean_instruction
from promptopt.tasks.instructions.program import PromptProgram
from promptopt.tasks.instructions.prompts import (
    META_PROMPT_STYLES,
    MetaPromptStyle,
    extract_instruction,
    meta_prompt_style,
)
from promptopt.tasks.instructions.report import answers_section, report_section, summary
from promptopt.tasks.instructions.rewrite import (
    check_guard,
    check_keep_original,
    recorded_guard,
    rewrite_splits,
)
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
        metric: Metric | None = None,
        system_prompt: str | None = None,
        program: PromptProgram | None = None,
        keep_answers: bool = True,
        extract_answer: str = "never",
    ) -> None:
        self.dataset = dataset
        self.splits = splits
        #: where the instruction goes and what is fixed around it (position, base system prompt)
        self.program = program or PromptProgram(position=position, system_prompt=system_prompt)
        self.position = check_position(self.program.position)
        #: scores every answer (None: ``auto``, the built-in grader for each example's kind)
        self.metric = metric
        #: keep every answer in the run directory's ``answers.jsonl`` (see :meth:`bind_run`)
        self.keep_answers = keep_answers
        self._answer_log: AnswerLog | None = None
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
            metric=metric,
            system=self.program.system_prompt,
            sink=self._log_answers,
            extract_answer=extract_answer,
        )

    # -- the run's answer log
    def bind_run(self, run: Any) -> None:
        """Keep every answer in ``answers.jsonl`` in ``run``'s directory (the optimizer calls this
        before scoring; nothing when ``keep_answers`` is off). Deduplicated across a resume."""
        path = getattr(run, "path", None)
        if self.keep_answers and path is not None:
            self._answer_log = AnswerLog(path / ANSWERS_FILE)

    def _log_answers(
        self, split: str, evaluation: Any, examples: Sequence[Example], demos: Sequence[Demo] = ()
    ) -> None:
        if self._answer_log is not None:
            self._answer_log.add(split, evaluation, examples, demos)

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

    def score(self, candidates: Sequence[Candidate]) -> list[Scored]:
        """Sync door to :meth:`ascore` (scripts, notebooks, tests)."""
        return run_sync(self.ascore(candidates))

    async def aevaluate(
        self,
        split: str,
        instructions: Sequence[str],
        *,
        examples: Sequence[Example] | None = None,
        demos: Sequence[Demo] = (),
    ) -> list[Evaluation]:
        """Per-example evaluations of ``instructions`` (with few-shot ``demos``) on ``examples``
        (default: the whole ``split``: ``train``, ``val`` or ``test``), through the same scorer
        options, request cache, metric and answer log as every other score of this task. The
        door for optimizers that need per-example values and the metric's feedback (reflective
        proposals, demonstration search), not one number per candidate."""
        if examples is None:
            if split not in ("train", "val", "test"):
                raise ConfigError(f"unknown split {split!r}; choose train, val or test")
            examples = getattr(self.splits, split)
        return await self._book.evaluate(split, examples, list(instructions), demos)

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

    def scoring_metric(self) -> Metric | None:
        """The metric every answer is really scored with: ``metric``, or with an extraction turn
        the built-in grader wrapped in it (its kind, seed and token limit). Public so the cost
        projection (:mod:`.costs`) reads the one place scoring picks its metric."""
        return self._book.scoring_metric()

    #: the parts :meth:`cost_projection` names, in the order a run spends them (see :mod:`.costs`)
    cost_parts: tuple[str, ...] = costs.PARTS

    def cost_projection(
        self,
        candidates: int,
        part: str | None = None,
        *,
        demos: int | None = 0,
        max_metric_calls: int | None = None,
    ) -> list[tuple[str, Any, int]]:
        """(model, typical request, how many) of every scorer and judge request a run scoring
        ``candidates`` instructions (then, with ``demos`` K, a demo phase under
        ``max_metric_calls``) makes; ``part``: one of :attr:`cost_parts` (see :mod:`.costs`)."""
        return costs.cost_projection(self, candidates, part, demos=demos, max_metric_calls=max_metric_calls)

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
        self,
        best: Candidate | str,
        ranked: Sequence[tuple[Candidate, float]] = (),
        demos: Sequence[Demo] = (),
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

        With few-shot ``demos`` (chosen together with ``best`` on validation by the demonstration
        search), ``best`` is reported as it is, validated and tested *with* its demos; ``demos``
        records them, ``test.best_without_demos`` the instruction alone; baselines stay without.
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
            "metric": getattr(self.metric, "name", "auto"),
        }
        if self.program.system_prompt is not None or self.program.template is not None:
            report["program"] = self.program.to_json()
        selected, selected_by = train_best, "training score"
        demos = tuple(demos)
        if demos:  # picked on validation jointly with its demos: a shortlist without them would undo that
            selected_by = "validation accuracy with demos"
            if self.splits.val:
                choice = await aselect_on_validation(self._book, [best], scores, demos)
                report["validation"] = choice.rows
        elif len(candidates) > 1 and self.splits.val:
            choice = await aselect_on_validation(self._book, candidates, scores)
            selected, selected_by = instruction_of(choice.best), "validation accuracy"
            report["validation"] = choice.rows
        report["instruction"] = selected
        report["selected_by"] = selected_by
        if demos:
            report["demos"] = [d.to_json() for d in demos]
        report["scoring"] = self.scoring_stats()
        report.update(await atest_report(self._book, selected, train_best, demos))
        return report

    def final_report(
        self, best: Candidate, ranked: Sequence[tuple[Candidate, float]] = (), demos: Sequence[Demo] = ()
    ) -> dict[str, Any]:
        """Sync door to :meth:`afinal_report`."""
        return run_sync(self.afinal_report(best, ranked, demos))

    def config(self) -> dict[str, Any]:
        """Options that rebuild this task (the scorer is passed again by the caller)."""
        return dict(self._options)

    # -- report hooks (see promptopt.tasks.base): called on the class, from a run's files only
    summary = staticmethod(summary)
    report_section = staticmethod(report_section)
    answers_section = staticmethod(answers_section)


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
    input_field: str | list[str] | None = None,
    target_field: str | None = None,
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
    guard_model: str | None = None,
    guard_llm: LLM | None = None,
    keep_original: bool = False,
    scoring: str = "full",
    race_delta: float = 0.1,
    race_first: int = 10,
    race_growth: float = 1.5,
    split_seed: int | None = None,
    race_target: str = "shortlist",
    metric: str | Any = None,
    judge: str | None = None,
    judge_model: str | None = None,
    judge_llm: LLM | None = None,
    judge_max_tokens: int | None = None,
    template: str | None = None,
    system_prompt: str | None = None,
    train: int | float | None = None,
    val: int | float | None = None,
    test: int | float | None = None,
    keep_answers: bool = True,
    extract_answer: str = "never",
) -> InstructionTask:
    """Instruction search on a dataset: a prompt task is *dataset × prompt program × metric*.

    **Dataset** (:mod:`.datasets`): ``dataset`` is a built-in benchmark (gsm8k, bbh:<task>,
    multiarith, aqua), a data file (``.jsonl``/``.json``/``.csv``/``.tsv``/``.parquet``, a folder,
    ``jsonl:PATH``) or a Hugging Face id. ``input_field`` (one name, several, or None: found by
    name), ``target_field`` (None: found by name; a file without one has no gold answers),
    ``template`` (``"Context: {context}\nQuestion: {question}"`` over the row's columns).
    ``data_dir`` (else ``$PROMPTOPT_DATA_DIR``) reads OPRO's data files; without it the Hub is used.
    Splits: ``train`` / ``val`` / ``test`` as counts or fractions (your own data defaults to 50 % /
    20 % / the rest); the benchmarks keep OPRO's recipe (``train_ratio`` 0.035 for GSM8K, 0.2
    otherwise; ``num_val`` / ``num_train`` / ``num_test`` as before). ``split_seed`` draws the split
    instead of ``seed`` (repeated runs on one fixed split, as the paper's repeats).

    **Prompt program** (:mod:`.program`): ``position`` (Q_begin, Q_end, A_begin, system),
    ``system_prompt`` (a fixed base system message kept beside the instruction), ``max_tokens`` per
    scorer answer. ``rewriter`` (a BPO rewriter directory or hub id, or a loaded rewriter) rewrites
    every question once before anything is scored (``rewrite_mode``: default or aggressive), so the
    search finds the instruction ``AlignedLLM(llm, rewriter=..., instruction=...)`` deploys.
    ``guard_llm`` (an LLM) or ``guard_model`` (a spec) puts BPO's rewrite guard behind the
    rewriter: a rewrite the judge says drops a requirement of the question is not scored, the
    question as written is (the prompts ``AlignedLLM(..., guard=...)`` and ``serve --guard-model``
    send); the split recipe counts its decisions (:func:`.rewrite.rewrite_splits`).
    ``keep_original`` scores each question the rewriter changed as the question followed by its
    rewrite (``AlignedLLM(..., keep_original=True)``, ``serve --keep-original``), after the guard.

    **Metric** (:mod:`promptopt.evaluators.metrics`): ``metric`` is a name (``auto`` — the built-in
    grader per answer kind, the default —, ``exact``, ``contains``, ``regex:PATTERN``, ``f1``,
    ``number``, ``choice``, ``boolean``, ``text``, ``judge``, ``python:module:function``) or any
    callable ``metric(example, answer)`` returning a value in [0, 1] (or a ``Score`` with feedback).
    ``judge`` (``rubric`` or ``pairwise``) scores answers with a judge model instead, with no gold
    answers needed: ``judge_llm`` (an LLM) or ``judge_model`` (a spec; default: the scorer model);
    ``judge_max_tokens`` bounds each judgement (default: the judge's own, 512).

    **Search**: ``initial`` instructions, proposals longer than ``max_instruction_chars`` or with
    "INS" (or digits when ``reject_digits``, default on for gsm8k and multiarith) dropped as in OPRO;
    ``meta_prompt`` picks OPRO's variant (``chat``: ``<INS>`` tags; ``bracket``: text-bison style);
    ``topic`` names the problems in the meta-prompt; ``val_top_k`` instructions compared on
    validation at the end; ``scoring`` ``full`` (the paper) or ``racing`` (stop a candidate early
    once, at confidence ``1 - race_delta``, it cannot reach the validation shortlist or, with
    ``race_target="best"``, beat the best; first rung ``race_first`` examples, each next
    ``race_growth`` times larger; see :mod:`promptopt.evaluators.racing`). ``keep_answers`` keeps
    every answer with its score and feedback in the run's ``answers.jsonl``. ``extract_answer``
    (``never``, ``undecided``, ``always``; see :mod:`promptopt.evaluators.answers.extraction`) asks the
    scorer once more, "Therefore, the answer is", for answers the rules cannot read (or for all).
    """
    check_position(position)
    meta_prompt_style(meta_prompt)
    check_scoring(scoring)
    racing = RacingConfig(race_delta, race_first, race_growth, race_target)  # checked even when unused
    if rewriter is None and rewrite_mode != "default":
        raise ConfigError("rewrite_mode applies to a rewriter; give rewriter=DIR (opro run --rewriter DIR)")
    check_guard(rewriter, guard_model, guard_llm)
    check_keep_original(rewriter, keep_original)
    if reject_digits is not None and not isinstance(reject_digits, bool):
        raise ConfigError(f"reject_digits must be true, false or None, got {reject_digits!r}")
    if not isinstance(keep_answers, bool):
        raise ConfigError(f"keep_answers must be true or false, got {keep_answers!r}")
    check_extract_mode(extract_answer)
    _check_int("max_tokens", max_tokens, 1)
    _check_int("max_instruction_chars", max_instruction_chars, 1)
    _check_int("val_top_k", val_top_k, 0)
    if initial is None:
        initial_list = list(DEFAULT_INITIAL)
    else:
        initial_list = [initial] if isinstance(initial, str) else [str(x) for x in initial]
    metric_spec = _metric_spec(metric, judge)
    ds = load_dataset(
        dataset,
        data_dir=data_dir,
        input_field=input_field,
        target_field=target_field,
        answer_type=answer_type,
        hf_config=hf_config,
        topic=topic,
        template=template,
    )
    program = PromptProgram(  # the fields and template the loader chose (found by name when not given)
        position=position,
        system_prompt=system_prompt,
        template=ds.template,
        input_fields=ds.input_fields if ds.user else (),
    )
    splits = split_dataset(
        ds,
        seed=seed if split_seed is None else split_seed,
        train_ratio=train_ratio,
        num_train=num_train,
        num_val=num_val,
        num_test=num_test,
        train=train,
        val=val,
        test=test,
    )
    if judge_max_tokens is not None:
        _check_int("judge_max_tokens", judge_max_tokens, 1)
    metric_obj = _build_metric(
        metric_spec, judge_llm=judge_llm, judge_model=judge_model, scorer=scorer, max_tokens=judge_max_tokens
    )
    _check_gold(ds, splits, metric_obj)
    if rewriter is not None:
        splits = rewrite_splits(
            splits,
            rewriter,
            rewrite_mode,
            guard=guard_llm if guard_llm is not None else guard_model,
            keep_original=keep_original,
        )
    options: dict[str, Any] = {
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
    # each of these only when set: config.json of runs without them stays as it was
    if scoring != "full":
        options.update(
            scoring=scoring,
            race_delta=race_delta,
            race_first=race_first,
            race_growth=race_growth,
            race_target=race_target,
        )
    if split_seed is not None:
        options["split_seed"] = split_seed
    if rewriter is not None:
        options["rewriter"] = (
            rewriter if isinstance(rewriter, str) else str(getattr(rewriter, "name", "rewriter"))
        )
        options["rewrite_mode"] = rewrite_mode
        options["keep_original"] = keep_original
    extra = {
        "guard_model": recorded_guard(guard_model, guard_llm),
        "metric": _recorded_metric(metric_spec, metric_obj),
        "judge_model": judge_model,
        "judge_max_tokens": judge_max_tokens,
        "template": template,
        "system_prompt": system_prompt,
        "train": train,
        "val": val,
        "test": test,
    }
    options.update({k: v for k, v in extra.items() if v is not None})
    if not keep_answers:
        options["keep_answers"] = False
    if extract_answer != "never":
        options["extract_answer"] = extract_answer
    return InstructionTask(
        ds,
        splits,
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
        metric=metric_obj,
        program=program,
        keep_answers=keep_answers,
        extract_answer=extract_answer,
    )


def _metric_spec(metric: Any, judge: str | None) -> Any:
    """The metric asked for: ``judge="rubric"`` is ``metric="judge:rubric"``; both at once must agree."""
    if judge is None:
        return metric
    if not isinstance(judge, str) or judge not in JUDGE_MODES:
        raise ConfigError(f"unknown judge {judge!r}; choose one of: {', '.join(JUDGE_MODES)}")
    if metric is None or metric == "judge" or metric == f"judge:{judge}":
        return f"judge:{judge}"
    raise ConfigError(
        f"judge={judge!r} scores with a judge model, but metric={metric!r} was also given; give one of them"
    )


#: how config.json records a metric object that cannot be re-imported (a lambda, a closure)
UNRECORDED = "unrecorded:"


def _recorded_metric(spec: Any, metric: Metric | None) -> str | None:
    """The metric as config.json records it: its spec string, ``python:module:function`` for an
    importable function, else ``unrecorded:NAME`` (a resume must pass the metric again)."""
    if spec is None:
        return None
    return metric_spec_of(spec) or f"{UNRECORDED}{getattr(metric, 'name', 'metric')}"


def _build_metric(
    spec: Any,
    *,
    judge_llm: LLM | None,
    judge_model: str | None,
    scorer: LLM | str | None,
    max_tokens: int | None = None,
) -> Metric | None:
    """The metric object (None: ``auto``, built by the scorer on first use). A judge metric gets
    ``judge_llm``, else a model built from ``judge_model``, else the scorer (an LLM, or its spec)."""
    if spec is None or spec == "auto":
        return None
    if isinstance(spec, str) and spec.startswith(UNRECORDED):
        raise ConfigError(
            f"this run's metric ({spec[len(UNRECORDED) :]}) was a Python object that config.json cannot "
            "record; resume it from Python: OPRO().resume(RUN_DIR, task=make_task('instructions', ..., "
            "metric=YOUR_METRIC))"
        )
    context: dict[str, Any] = {}
    name = spec if isinstance(spec, str) else ""
    if metric_wants_judge(spec):
        context["judge_llm"] = _judge_llm(judge_llm, judge_model, scorer)
        if max_tokens is not None:
            context["max_tokens"] = max_tokens
    elif judge_llm is not None or judge_model is not None:
        raise ConfigError(f"a judge model was given, but the metric {name or spec!r} is not a judge")
    return resolve_metric(spec, **context)


def _judge_llm(judge_llm: LLM | None, judge_model: str | None, scorer: LLM | str | None) -> LLM:
    if judge_llm is not None:
        return judge_llm
    if judge_model is None and scorer is not None and not isinstance(scorer, str):
        return scorer
    from promptopt.llm.factory import build_llm

    spec = judge_model or (scorer if isinstance(scorer, str) else "local")
    return build_llm(spec, cache_policy="deterministic")


def _check_gold(ds: Dataset, splits: Splits, metric: Metric | None) -> None:
    """A metric that reads gold answers on data without them is refused before anything runs."""
    needs_gold = True if metric is None else bool(getattr(metric, "needs_gold", False))
    if not needs_gold:
        return
    examples = [*splits.train, *splits.val, *splits.test]
    missing = sum(ex.target is None for ex in examples)
    if missing:
        name = "auto" if metric is None else metric.name
        raise ConfigError(
            f"dataset {ds.name} has no gold answers for {missing} of {len(examples)} examples, and the "
            f"metric {name!r} compares with gold answers: score with a judge (--judge rubric|pairwise, "
            "Python judge=...), use a metric of your own that needs none, or name the gold column "
            "(--target-field NAME)"
        )
