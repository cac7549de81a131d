"""Preference pairs without labels, by contrast distillation (RLCD; Yang et al. 2023).

Why: ``bpo build-data`` needs preference pairs (a prompt, a good and a bad response), and many
users only have prompts. RLCD makes the pair itself: the same model answers each prompt twice,
once under a *positive* cue and once under a *negative* one, with the two prompts as alike in
surface form as possible (the same template; only the assistant's description in parentheses is
switched), and the positively cued answer is labelled preferred. No human or model labels it.

Cue pairs live in :data:`CUE_PAIRS` (name -> positive, negative description), chosen with
``--cues``. Their wording follows the paper's style (e.g. its harmlessness prompts end in
"Assistant (helpful, honest, inoffensive response):" vs "Assistant (unhelpful, dishonest, toxic
response):"); ``both`` is the issue's combined description. The model sees a transcript that it is
asked to continue (:data:`RLCD_SYSTEM`, :data:`RLCD_USER`), so the positive and negative prompts
differ in the description only.

Optional judge filter: a :class:`~promptopt.evaluators.pairwise.PairwiseJudge` compares the two
answers in both orders; a pair is kept only when *both* orders prefer the positive answer (the
judge agrees with the RLCD label), else it is dropped as ``judge_disagrees`` with the judgement.

Output: kept rows go to ``out`` with BPO's column layout (``instruction``, ``context``,
``good_res``, ``bad_res``), so ``bpo build-data --input out`` reads them with its ``bpo`` preset
unchanged; dropped rows (with the reason and the answers) go to the ``.dropped.jsonl`` sibling;
the settings go to ``.config.json`` and must match on a rerun. Items go through
:func:`promptopt.parallel.resumable_map` (journalled, resumable); model-call and judge-call
failures (``llm_error``, ``judge_error``) are retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, DataError, UnknownNameError
from promptopt.evaluators.pairwise import JudgeItem, PairJudgement, PairwiseJudge
from promptopt.llm.base import LLM, BudgetExceededError, Completion, LLMError, Request, run_sync
from promptopt.optimizers.bpo.build import item_seed
from promptopt.optimizers.bpo.jobs import check_limit, run_kept_dropped
from promptopt.parallel import Outcome
from promptopt.records import load_rows, read_text

# --------------------------------------------------------------------------- cues


@dataclass(frozen=True)
class CuePair:
    """A positive and a negative assistant description, and what the pair targets."""

    positive: str
    negative: str
    help: str


#: name -> cue pair. Each pair differs in the adjectives only, so the two prompts stay as alike
#: in surface form as RLCD asks.
CUE_PAIRS: Mapping[str, CuePair] = {
    "helpful": CuePair(
        "(helpful, accurate, and detailed response)",
        "(unhelpful, inaccurate, and vague response)",
        "helpfulness: correct, complete, specific answers",
    ),
    "harmless": CuePair(
        "(harmless, ethical, and inoffensive response)",
        "(harmful, unethical, and offensive response)",
        "harmlessness: safe, ethical, non-toxic answers",
    ),
    "both": CuePair(
        "(helpful, honest, and harmless response)",
        "(unhelpful, dishonest, and harmful response)",
        "helpfulness and harmlessness together",
    ),
}

RLCD_SYSTEM = (
    "Continue the conversation below. Write only the Assistant's next reply, exactly in the manner "
    "that the description in parentheses after 'Assistant' asks for."
)
RLCD_USER = "Human: {prompt}\n\nAssistant {cue}:"


def cue_pair(name: str) -> CuePair:
    """The registered cue pair ``name`` (one-line error naming the known ones otherwise)."""
    pair = CUE_PAIRS.get(name)
    if pair is None:
        raise UnknownNameError(f"unknown cue pair {name!r}; choose one of {', '.join(CUE_PAIRS)}")
    return pair


# --------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class PromptItem:
    """One prompt: the instruction and optional input text (kept apart, as BPO's data does)."""

    instruction: str
    context: str = ""

    @property
    def text(self) -> str:
        """What the user asked, context included (shown to the model and to the judge)."""
        return f"{self.instruction}\n\n{self.context}" if self.context else self.instruction


def prompt_id(item: PromptItem) -> str:
    """Stable id of a prompt: sha256 of its canonical JSON."""
    blob = json.dumps([item.instruction, item.context], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def render_cue_prompt(item: PromptItem, cue: str) -> str:
    """The user message for one side. Plain replacement, so braces in the prompt are harmless."""
    return RLCD_USER.replace("{cue}", cue).replace("{prompt}", item.text, 1)


#: Fields tried, in order, when no ``--field`` is given.
PROMPT_FIELDS = ("prompt", "instruction", "question", "text")
CONTEXT_FIELDS = ("context", "input")


@dataclass
class LoadedPrompts:
    """Prompts read from a source, which fields they came from, and how many rows were skipped."""

    items: list[PromptItem]
    prompt_field: str
    context_field: str | None
    skipped: dict[str, int] = field(default_factory=dict)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def prompts_from_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    field_name: str | None = None,
    context_field: str | None = None,
    limit: int | None = None,
    source: str = "the prompt source",
) -> LoadedPrompts:
    """Prompt items from rows; the field is found in the first row unless named."""
    if not rows:
        raise DataError(f"{source} holds no prompts")
    first = rows[0]
    name = field_name or next((f for f in PROMPT_FIELDS if isinstance(first.get(f), str)), None)
    if name is None or name not in first:
        raise DataError(
            f"{source}: no prompt field {field_name or ' / '.join(PROMPT_FIELDS)!r} in columns "
            f"{sorted(first)} (choose one with --field)"
        )
    ctx = context_field
    if ctx is None:
        ctx = next((f for f in CONTEXT_FIELDS if f != name and f in first), None)
    elif ctx not in first:
        raise DataError(f"{source}: no context field {ctx!r} in columns {sorted(first)}")
    items: list[PromptItem] = []
    skipped: dict[str, int] = {}
    for row in rows:
        if limit is not None and len(items) >= limit:
            break
        instruction = _text(row.get(name))
        if not instruction:
            skipped["empty_prompt"] = skipped.get("empty_prompt", 0) + 1
            continue
        items.append(PromptItem(instruction, _text(row.get(ctx)) if ctx else ""))
    if not items:
        raise DataError(f"{source} holds no usable prompts")
    return LoadedPrompts(items, name, ctx, skipped)


def load_prompts(
    source: str | Path,
    *,
    field_name: str | None = None,
    context_field: str | None = None,
    split: str = "train",
    limit: int | None = None,
) -> LoadedPrompts:
    """Prompts from a JSON/JSONL file of objects, a text file (one prompt per line), a local
    dataset folder or a Hugging Face dataset id."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be a positive integer, got {limit}")
    p = Path(source).expanduser()
    if p.is_file() and p.suffix.lower() == ".txt":
        lines = [ln.strip() for ln in read_text(p, what="prompt file").splitlines() if ln.strip()]
        rows: list[dict[str, Any]] = [{"prompt": ln} for ln in lines]
        if field_name not in (None, "prompt") or context_field is not None:
            raise ConfigError(
                "a .txt prompt file has one prompt per line: --field/--context-field do not apply"
            )
        field_name = "prompt"
    else:
        rows = load_rows(source, split=split)
    return prompts_from_rows(
        rows, field_name=field_name, context_field=context_field, limit=limit, source=str(source)
    )


# --------------------------------------------------------------------------- building pairs


@dataclass(frozen=True)
class RLCDConfig:
    """Sampling, cues and batching of a pair build. Both sides of a pair use the same per-prompt
    seed (order-independent, so a resumed build asks the same questions)."""

    cues: str = "helpful"
    temperature: float = 0.7
    max_tokens: int = 512
    seed: int = 0
    concurrency: int = 8
    judge_max_tokens: int = 512

    def __post_init__(self) -> None:
        cue_pair(self.cues)
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1, got {self.concurrency}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"--temperature must be within [0, 2], got {self.temperature}")
        if self.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be >= 1, got {self.max_tokens}")
        if self.judge_max_tokens < 1:
            raise ConfigError(f"--judge-max-tokens must be >= 1, got {self.judge_max_tokens}")

    def settings(self) -> dict[str, Any]:
        """What must not change between runs into one output (concurrency may)."""
        cues = cue_pair(self.cues)
        blob = json.dumps([RLCD_SYSTEM, RLCD_USER, cues.positive, cues.negative])
        return {
            "method": "rlcd",
            "cues": self.cues,
            "positive": cues.positive,
            "negative": cues.negative,
            "template_sha256": hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }


RETRYABLE = frozenset({"llm_error", "judge_error"})  # drops a rerun asks again


@dataclass
class PairsReport:
    """Counts of one pair build (including what earlier runs into the same file decided).

    ``judge_outcomes`` counts, over judged pairs, ``win`` (both orders prefer the positive answer:
    the judge agrees with the RLCD label), ``loss`` (both prefer the negative) and ``tie``.
    """

    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    judge_outcomes: dict[str, int] = field(default_factory=dict)
    resumed: int = 0
    processed: int = 0
    stopped: str | None = None
    seconds: float = 0.0
    out: str = ""
    dropped_out: str = ""

    @property
    def total(self) -> int:
        return self.kept + sum(self.dropped.values())

    @property
    def agreement(self) -> float | None:
        """Share of judged pairs on which the judge agrees with the RLCD label (None: none judged)."""
        n = sum(self.judge_outcomes.values())
        return self.judge_outcomes.get("win", 0) / n if n else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "agreement": self.agreement}

    def count(self, latest: Mapping[str, Mapping[str, Any]]) -> None:
        self.kept, self.dropped, self.judge_outcomes = 0, {}, {}
        for rec in latest.values():
            if rec.get("status") == "kept":
                self.kept += 1
            else:
                reason = str(rec.get("reason"))
                self.dropped[reason] = self.dropped.get(reason, 0) + 1
            outcome = (rec.get("judge") or {}).get("outcome")
            if outcome is not None:
                self.judge_outcomes[outcome] = self.judge_outcomes.get(outcome, 0) + 1


ProgressFn = Callable[[int, int, PairsReport], None]


def _error(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:300]


def decide(
    item: PromptItem,
    cues: str,
    pos: Completion | BaseException,
    neg: Completion | BaseException,
    judgement: PairJudgement | BaseException | None,
) -> Outcome:
    """The record of one prompt from its two answers and (with a judge filter) the judgement."""
    rec: dict[str, Any] = {"instruction": item.instruction, "context": item.context, "cues": cues}
    if isinstance(pos, BaseException) or isinstance(neg, BaseException):
        err = pos if isinstance(pos, BaseException) else neg
        return Outcome({**rec, "status": "dropped", "reason": "llm_error", "error": _error(err)}, error=err)
    rec.update(good_res=pos.text.strip(), bad_res=neg.text.strip())
    if not rec["good_res"] or not rec["bad_res"]:
        return Outcome({**rec, "status": "dropped", "reason": "empty"})
    if rec["good_res"] == rec["bad_res"]:
        return Outcome({**rec, "status": "dropped", "reason": "identical"})
    if isinstance(judgement, BaseException):  # the judge's budget ran out first
        return Outcome(
            {**rec, "status": "dropped", "reason": "judge_error", "error": _error(judgement)}, error=judgement
        )
    if judgement is None:
        return Outcome({**rec, "status": "kept", "reason": None, "judge": None})
    rec["judge"] = judgement.to_json()
    if judgement.error is not None:
        failed = LLMError(judgement.error)  # a failed judge call: retried like any outage
        return Outcome(
            {**rec, "status": "dropped", "reason": "judge_error", "error": judgement.error}, error=failed
        )
    if judgement.outcome != "win":
        return Outcome({**rec, "status": "dropped", "reason": "judge_disagrees"})
    return Outcome({**rec, "status": "kept", "reason": None})


async def abuild_pairs(
    prompts: Iterable[PromptItem],
    llm: LLM,
    out: str | Path,
    *,
    config: RLCDConfig | None = None,
    judge: PairwiseJudge | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PairsReport:
    """Build RLCD preference pairs from ``prompts`` into ``out`` (resumable; see the module docstring).

    Per batch of ``config.concurrency`` prompts: one batched call for the 2 answers of each, then
    (with ``judge``) one batched call for both orders of each usable pair. ``progress(done, total,
    report)`` after every batch; ``should_stop()`` polled between batches.
    """
    cfg = config or RLCDConfig()
    cues = cue_pair(cfg.cues)
    settings: dict[str, Any] = {
        "model": str(getattr(llm, "name", "")),
        **cfg.settings(),
        "judge": None if judge is None else str(getattr(judge.llm, "name", "")),
        "judge_max_tokens": None if judge is None else judge.max_tokens,
    }

    async def run_batch(batch: list[PromptItem]) -> list[Outcome]:
        requests = [
            Request.chat(
                render_cue_prompt(item, cue),
                system=RLCD_SYSTEM,
                temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
                seed=item_seed(cfg.seed, prompt_id(item)),
            )
            for item in batch
            for cue in (cues.positive, cues.negative)
        ]
        answers = await llm.agenerate(requests, return_exceptions=True)
        sides = [(answers[2 * k], answers[2 * k + 1]) for k in range(len(batch))]
        judged: dict[int, PairJudgement | BaseException] = {}
        if judge is not None:
            todo = [
                k for k, (p, n) in enumerate(sides)
                if isinstance(p, Completion) and isinstance(n, Completion)
                and p.text.strip() and n.text.strip() and p.text.strip() != n.text.strip()
            ]  # fmt: skip
            items = [
                JudgeItem(batch[k].text, sides[k][1].text.strip(), sides[k][0].text.strip()) for k in todo
            ]
            try:
                got: Sequence[PairJudgement | BaseException] = await judge.acompare(items) if items else []
            except BudgetExceededError as exc:
                got = [exc] * len(items)
            judged = dict(zip(todo, got, strict=True))
        return [decide(item, cfg.cues, *sides[k], judged.get(k)) for k, item in enumerate(batch)]

    return await run_kept_dropped(
        prompts,
        run_batch,
        out,
        settings,
        PairsReport,
        key=prompt_id,
        concurrency=cfg.concurrency,
        retryable=RETRYABLE,
        progress=progress,
        should_stop=should_stop,
    )


def build_pairs(prompts: Iterable[PromptItem], llm: LLM, out: str | Path, **kwargs: Any) -> PairsReport:
    """Sync door to :func:`abuild_pairs`."""
    return run_sync(abuild_pairs(prompts, llm, out, **kwargs))


# --------------------------------------------------------------------------- the build-pairs job


@dataclass(frozen=True)
class BuildPairsJob:
    """Everything ``promptopt bpo build-pairs`` is asked to do. Rerunning it continues it."""

    prompts: str
    out: Path
    model: str = "local"
    judge_model: str | None = None
    prompt_field: str | None = None
    context_field: str | None = None
    split: str = "train"
    limit: int | None = None
    config: RLCDConfig = field(default_factory=RLCDConfig)
    cache: bool = True

    def __post_init__(self) -> None:
        check_limit(self.limit)


@dataclass
class BuildPairsResult:
    loaded: LoadedPrompts
    report: PairsReport


def run_build_pairs(
    job: BuildPairsJob,
    *,
    on_loaded: Callable[[LoadedPrompts], None] | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BuildPairsResult:
    """Run (or continue) a build-pairs job: load the prompts, open the models, build, close them.

    Nothing is written before the prompts and the models are known to be usable."""
    from promptopt.llm.factory import open_models

    loaded = load_prompts(
        job.prompts,
        field_name=job.prompt_field,
        context_field=job.context_field,
        split=job.split,
        limit=job.limit,
    )
    if on_loaded is not None:
        on_loaded(loaded)
    policy = "deterministic" if job.cache else "off"
    with open_models(job.model, job.judge_model, cache_policy=policy) as (llm, judge_llm):
        assert llm is not None
        judge = (
            PairwiseJudge(judge_llm, max_tokens=job.config.judge_max_tokens, seed=job.config.seed)
            if judge_llm is not None
            else None
        )
        report = build_pairs(
            loaded.items,
            llm,
            job.out,
            config=job.config,
            judge=judge,
            progress=progress,
            should_stop=should_stop,
        )
    return BuildPairsResult(loaded, report)
