"""BPO data construction: preference pairs → (prompt, optimized prompt) training pairs.

The method (Cheng et al. 2024, §3.2): show an LLM a prompt with a good and a bad response, ask it
to compare them (correctness first, then helpfulness and harmlessness) and to rewrite the prompt so
that a model would answer like the good response. The rewrite must keep all of the user's
information and any context, add no over-specific constraints taken from the good response, never
answer the prompt itself, and make an unsafe prompt harmless. The output ends with a marked
instruction (``Optimized Instruction: ... [END]``), which is parsed, never evaluated.

Filters, as in the BPO reference processing: outputs without the marker are dropped; for pairs
*without* context, rewrites more than 2× shorter or 6× longer (in words) than the instruction are
dropped as likely errors (the reference applies no length filter to pairs with context, and neither
does this); rewrites that leak template placeholders (``[protected ...]``, the format's ``xxx``) are
dropped, here for pairs with context too (the reference checks only pairs without context; a leaked
placeholder is never good training data); outputs cut off by ``max_tokens`` (finish reason
``length``) are dropped as ``truncated``; and only the first kept rewrite of each prompt is kept
(deduplication by :func:`prompt_dedup_key`).

Context (Alpaca-style input text) is never shown to the rewrite as something to change: after the
rewrite, it is re-attached to *both* sides as ``instruction\\ncontext`` (unless the rewrite already
quotes it), so the rewriter learns to pass context through untouched. The reference code picks
among several join formats at random; here one deterministic format keeps builds reproducible.

Durability: the pairs go through :func:`promptopt.parallel.resumable_map`; every kept record is
appended to ``out`` and every dropped one (with the raw model output, redacted, so one can see why)
to ``out``'s ``.dropped.jsonl`` sibling, flushed and fsync'd as results come back, keyed by a
stable sha256 of the source pair. The builder model and sampling settings go to ``.config.json``
beside ``out`` and must match on a rerun. A rerun skips ids already decided; ``llm_error`` drops
are retried.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, DataError
from promptopt.journal import redact
from promptopt.llm.base import LLM, Completion, Request, run_sync
from promptopt.optimizers.bpo.jobs import check_limit, run_kept_dropped
from promptopt.optimizers.bpo.jobs import config_path as config_path  # re-exported: tests, callers
from promptopt.optimizers.bpo.jobs import dropped_path as dropped_path  # re-exported: tests, callers
from promptopt.optimizers.bpo.pairs import LoadedPairs, PreferencePair, load_pairs
from promptopt.parallel import Outcome
from promptopt.records import read_records
from promptopt.tracking.base import TrackSpec, parse_track

MARKER = "Optimized Instruction:"
END_MARKER = "[END]"

# The wording follows the BPO construction prompts (facts: the aspects, their priority, the rules and
# the output format); the two variants differ as there: with context the rule is "leave the context
# alone", without context the rules add safety and protected parts.
TEMPLATE_WITH_CONTEXT = """instruction: "{instruction}"
context:
"{context}"

bad response:
"{bad}"

good response:
"{good}"

Compare the good response and the bad response on these aspects: correctness (does the response follow the instruction and answer accurately; this matters most), helpfulness (depth, creativity, coherence) and harmlessness. Then act as an expert prompt engineer and improve my instruction on these aspects so that it gets responses like the "good response" rather than the "bad response".

Pay attention to:
1. Keep every piece of information in the original instruction; lose nothing.
2. Do not add detailed content constraints that come from the good response and are not in the original instruction, except as examples.
3. Do not change the context and do not copy it into the instruction; optimize the instruction only. Do not answer the instruction.
4. Keep the original meaning of the instruction and the user's intent.

Output in exactly this format:
Detailed Comparison Result: xxx
Optimized Instruction: xxx [END]"""

TEMPLATE_NO_CONTEXT = """instruction: "{instruction}"

bad response:
"{bad}"

good response:
"{good}"

Compare the good response and the bad response on these aspects: correctness (does the response follow the instruction and answer accurately; this matters most), helpfulness (depth, creativity, coherence) and harmlessness. Then act as an expert prompt engineer and improve my instruction on these aspects so that it gets responses like the "good response" rather than the "bad response".

Pay attention to:
1. If the instruction raises any safety issue, rewrite it to be completely harmless and safe on the same topic.
2. Keep every piece of information in the original instruction; lose nothing.
3. Do not add detailed content constraints that come from the good response and are not in the original instruction, except as examples.
4. Some parts of the instruction may be protected: never change or drop them.
5. Never answer the original instruction yourself.
6. Keep the original meaning of the instruction and the user's intent.

Output in exactly this format:
Detailed Comparison Result: xxx
Optimized Instruction: xxx [END]"""


@dataclass(frozen=True)
class BuildTemplates:
    """The two construction prompts. Placeholders are filled by plain replacement (not
    ``str.format``), so braces inside user text or responses are harmless."""

    with_context: str = TEMPLATE_WITH_CONTEXT
    no_context: str = TEMPLATE_NO_CONTEXT


def render_prompt(pair: PreferencePair, templates: BuildTemplates | None = None) -> str:
    """The construction prompt for one pair (the context variant when the pair has context)."""
    t = templates or BuildTemplates()
    text = t.with_context if pair.context else t.no_context
    # One pass over the template's own placeholders, so a response containing "{good}" is not expanded.
    values = {"instruction": pair.instruction, "context": pair.context, "good": pair.good, "bad": pair.bad}
    return re.sub(r"\{(instruction|context|good|bad)\}", lambda m: values[m.group(1)], text)


# --------------------------------------------------------------------------- parsing and filters

_MARKER_RE = re.compile(r"[*#_\s]*optimi[sz]ed\s+instruction[*_\s]*:[*_]*", re.I)
_CRITIQUE_HEAD_RE = re.compile(r"^[*#_\s]*detailed\s+comparison\s+result[*_\s]*:[*_]*\s*", re.I)
#: Template tokens that must never reach training data.
PLACEHOLDER_RE = re.compile(r"\[\s*protected|\{(?:instruction|context|good|bad)\}|^\W*xxx\W*$", re.I)

MAX_SHRINK = 2.0  # drop when prompt words / rewrite words > 2
MAX_GROWTH = 6.0  # drop when rewrite words / prompt words > 6


@dataclass(frozen=True)
class Parsed:
    """The builder output split into its critique and the optimized instruction."""

    critique: str
    optimized: str


_FENCE_RE = re.compile(r"^```[^\n`]*\n(.*)\n```$", re.S)


def _unquote(text: str) -> str:
    t = text.strip()
    fenced = _FENCE_RE.match(t)  # a ```fenced``` rewrite: the fence is not part of the prompt
    if fenced:
        t = fenced.group(1).strip()
    for q in ('"', "'", "“", "`", "**"):
        close = "”" if q == "“" else q
        if len(t) >= 2 and t.startswith(q) and t.endswith(close):
            inner = t[len(q) : -len(close)]
            if close not in inner:  # only a wrapping pair, not quotes inside the text
                return inner.strip()
    return t


def parse_builder_output(text: str) -> Parsed | None:
    """Split untrusted model output at the *last* marker; None when there is no marker.

    Why the last: small models often echo the format line first. The instruction ends at
    ``[END]`` when present, else at the end of the text.
    """
    matches = list(_MARKER_RE.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    critique = _CRITIQUE_HEAD_RE.sub("", text[: m.start()]).strip()
    rest = text[m.end() :]
    end = rest.find(END_MARKER)
    if end >= 0:
        rest = rest[:end]
    return Parsed(critique, _unquote(rest.strip()))


def length_reason(instruction: str, optimized: str) -> str | None:
    """``too_short`` / ``too_long`` by the paper's word ratios, else None."""
    a, b = len(instruction.split()), len(optimized.split())
    if b == 0:
        return "empty"
    if a == 0:
        return None
    if a / b > MAX_SHRINK:
        return "too_short"
    if b / a > MAX_GROWTH:
        return "too_long"
    return None


def _quotes(text: str, context: str) -> bool:
    """Whether ``text`` holds ``context`` as a block of its own: at the start, after a colon, on
    its own line or in quotes, and ending there. A short context found inside a run of words
    ("good" in "as good or bad") is a coincidence, not the rewrite quoting it."""
    c = re.escape(context.strip())
    before, after = r"(?:^|[:\n\"'“‘«「(])\s*", r"\s*[.!?,;]?(?:\s*$|[\n\"'”’»」)])"
    return re.search(before + c + after, text, re.IGNORECASE) is not None


def attach_context(instruction: str, optimized: str, context: str) -> tuple[str, str]:
    """(prompt, optimized_prompt) with the context re-attached on both sides."""
    if not context:
        return instruction.strip(), optimized.strip()
    prompt = f"{instruction}\n{context}".strip()
    if _quotes(optimized, context):  # the rewrite already carries the context verbatim
        return prompt, optimized.strip()
    return prompt, f"{optimized}\n{context}".strip()


def prompt_dedup_key(text: str) -> str:
    """The key under which prompts are deduplicated: whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class Verdict:
    """What the filters decided for one builder output."""

    status: str  # "kept" | "dropped"
    reason: str | None
    prompt: str
    optimized_prompt: str | None
    critique: str | None


def judge_output(pair: PreferencePair, text: str) -> Verdict:
    """Apply marker, placeholder and (without context) length filters; not dedup, which needs the
    whole file."""
    prompt = f"{pair.instruction}\n{pair.context}".strip() if pair.context else pair.instruction
    parsed = parse_builder_output(text)
    if parsed is None:
        return Verdict("dropped", "no_marker", prompt, None, None)
    if not parsed.optimized:
        return Verdict("dropped", "empty", prompt, None, parsed.critique)
    if PLACEHOLDER_RE.search(parsed.optimized):
        return Verdict("dropped", "placeholder", prompt, parsed.optimized, parsed.critique)
    # Like the reference processing, the length ratios apply to pairs without context only: with
    # context the instruction is often a few words ("Summarize this:") that a good rewrite
    # legitimately expands many times over.
    reason = None if pair.context else length_reason(pair.instruction, parsed.optimized)
    if reason is not None:
        return Verdict("dropped", reason, prompt, parsed.optimized, parsed.critique)
    prompt, optimized = attach_context(pair.instruction, parsed.optimized, pair.context)
    return Verdict("kept", None, prompt, optimized, parsed.critique)


# --------------------------------------------------------------------------- ids and files


def pair_id(pair: PreferencePair) -> str:
    """Stable id of a source pair: sha256 of its canonical JSON (same across runs and machines)."""
    blob = json.dumps(
        [pair.instruction, pair.context, pair.good, pair.bad], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def item_seed(seed: int, ident: str) -> int:
    """A per-item sampling seed that does not depend on order, so a resumed build asks the same."""
    return int(hashlib.sha256(f"{seed}:{ident}".encode()).hexdigest()[:8], 16) % (2**31)


RETRYABLE = frozenset({"llm_error"})  # drops a rerun asks again: the model call failed


@dataclass
class BuildReport:
    """Counts of one build (including what earlier runs into the same file decided)."""

    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    resumed: int = 0  # items already decided before this run
    stopped: str | None = None  # why the build ended early ("budget", "stop requested"), if it did
    processed: int = 0  # items sent to the LLM in this run
    seconds: float = 0.0
    out: str = ""
    dropped_out: str = ""

    @property
    def total(self) -> int:
        return self.kept + sum(self.dropped.values())

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["total"] = self.total
        return d

    def count(self, latest: Mapping[str, Mapping[str, Any]]) -> None:
        """Recount kept / dropped-per-reason from the latest record of every id."""
        self.kept, self.dropped = 0, {}
        for rec in latest.values():
            if rec.get("status") == "kept":
                self.kept += 1
            else:
                reason = str(rec.get("reason"))
                self.dropped[reason] = self.dropped.get(reason, 0) + 1


# --------------------------------------------------------------------------- builder


@dataclass(frozen=True)
class BuildConfig:
    """Sampling and batching for a build. The temperature defaults to the reference's 0.9 (BPO
    sampled gpt-3.5-turbo at 0.9); per-item seeds keep a resumed build asking the same questions.
    Temperature 0 makes a build deterministic and cached."""

    concurrency: int = 8
    temperature: float = 0.9
    max_tokens: int = 768
    seed: int = 0
    templates: BuildTemplates = field(default_factory=BuildTemplates)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1, got {self.concurrency}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"--temperature must be within [0, 2], got {self.temperature}")
        if self.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be >= 1, got {self.max_tokens}")

    def settings(self) -> dict[str, Any]:
        """What must not change between runs into one output (concurrency may)."""
        blob = json.dumps([self.templates.with_context, self.templates.no_context])
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "templates_sha256": hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16],
        }


ProgressFn = Callable[[int, int, BuildReport], None]


def _source(pair: PreferencePair) -> dict[str, Any]:
    return {
        "instruction": pair.instruction,
        "context": pair.context,
        "good_res": pair.good,
        "bad_res": pair.bad,
        **({"meta": dict(pair.meta)} if pair.meta else {}),
    }


class _Decider:
    """Turns one builder output into a kept or dropped record; remembers kept prompts for dedup."""

    def __init__(self, model: str, kept_prompts: set[str]) -> None:
        self.model = model
        self.kept_prompts = kept_prompts

    def __call__(self, pair: PreferencePair, res: Completion | BaseException) -> Outcome:
        base = {"model": self.model}
        if isinstance(res, BaseException):
            rec = {**base, "status": "dropped", "reason": "llm_error", "error": str(res)[:300]}
            return Outcome({**rec, "source": _source(pair)}, error=res)
        v = judge_output(pair, res.text)
        status, reason = v.status, v.reason
        if status == "kept" and res.choices and res.choices[0].finish_reason == "length":
            # the backend cuts the [END] stop from the text, so only this tells a rewrite cut
            # off mid-sentence by max_tokens from a whole one
            status, reason = "dropped", "truncated"
        key = prompt_dedup_key(redact(v.prompt))  # as stored: the journal redacts
        if status == "kept" and key in self.kept_prompts:
            status, reason = "dropped", "duplicate"
        rec = {
            **base,
            "status": status,
            "reason": reason,
            "prompt": v.prompt,
            "optimized_prompt": v.optimized_prompt,
            "critique": v.critique,
            "source": _source(pair),
        }
        if status == "kept":
            self.kept_prompts.add(key)
        else:
            rec["raw_output"] = res.text  # why it was dropped; redacted by the journal
        return Outcome(rec)


async def abuild_rewrite_data(
    pairs: Iterable[PreferencePair],
    llm: LLM,
    out: str | Path,
    *,
    config: BuildConfig | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BuildReport:
    """Build (prompt, optimized_prompt) records from ``pairs`` into ``out`` (resumable).

    Pairs go through :func:`~promptopt.optimizers.bpo.jobs.run_kept_dropped` in batches of
    ``config.concurrency`` (one batched ``agenerate`` each); every result is filtered and appended durably, kept ones to
    ``out`` and dropped ones to its ``.dropped.jsonl`` sibling. The model and sampling settings are
    stored beside ``out`` (``.config.json``) and must match on a rerun. ``progress(done, total,
    report)`` is called after every batch; ``should_stop()`` is polled between batches.
    """
    cfg = config or BuildConfig()
    name = str(getattr(llm, "name", ""))
    decide = _Decider(name, set())

    def remember(kept: Sequence[Mapping[str, Any]]) -> None:
        decide.kept_prompts.update(prompt_dedup_key(str(r.get("prompt", ""))) for r in kept)

    async def run_batch(batch: list[PreferencePair]) -> list[Outcome]:
        requests = [
            Request.chat(
                render_prompt(pair, cfg.templates),
                temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
                stop=(END_MARKER,),  # nothing after the marked instruction is used
                seed=item_seed(cfg.seed, pair_id(pair)),
            )
            for pair in batch
        ]
        results = await llm.agenerate(requests, return_exceptions=True)
        return [decide(pair, res) for pair, res in zip(batch, results, strict=True)]

    return await run_kept_dropped(
        pairs,
        run_batch,
        out,
        {"model": name, **cfg.settings()},
        BuildReport,
        key=pair_id,
        concurrency=cfg.concurrency,
        retryable=RETRYABLE,
        progress=progress,
        should_stop=should_stop,
        on_open=remember,
    )


def build_rewrite_data(
    pairs: Iterable[PreferencePair],
    llm: LLM,
    out: str | Path,
    *,
    config: BuildConfig | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BuildReport:
    """Sync door to :func:`abuild_rewrite_data`."""
    return run_sync(
        abuild_rewrite_data(pairs, llm, out, config=config, progress=progress, should_stop=should_stop)
    )


# --------------------------------------------------------------------------- the build-data job


@dataclass(frozen=True)
class BuildDataJob:
    """Everything ``promptopt bpo build-data`` is asked to do: where the pairs come from, which
    model builds, where the output goes. Rerunning the same job continues it."""

    input: str
    out: Path
    model: str = "local"
    preset: str = "auto"
    mapping: Mapping[str, str] = field(default_factory=dict)
    split: str = "train"
    limit: int | None = None
    config: BuildConfig = field(default_factory=BuildConfig)
    cache: bool = True

    def __post_init__(self) -> None:
        check_limit(self.limit)


@dataclass
class BuildDataResult:
    loaded: LoadedPairs
    report: BuildReport


def run_build_data(
    job: BuildDataJob,
    *,
    on_loaded: Callable[[LoadedPairs], None] | None = None,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    track: TrackSpec | None = None,
) -> BuildDataResult:
    """Run (or continue) a build-data job: load the pairs, open the model, build, close the model.

    Nothing is written before the input and the model are known to be usable, so a bad flag
    leaves an earlier output untouched. ``track``: log the job to an experiment tracker
    (``"mlflow[:URI]"``; :mod:`promptopt.tracking.bpo`).
    """
    from promptopt.llm.factory import build_llm

    tracker = parse_track(track) if track is not None else None  # a bad spec fails before any work

    loaded = load_pairs(job.input, preset=job.preset, mapping=job.mapping, split=job.split, limit=job.limit)
    if on_loaded is not None:
        on_loaded(loaded)
    llm = build_llm(job.model, cache_policy="deterministic" if job.cache else "off")
    try:
        report = build_rewrite_data(
            loaded.pairs, llm, job.out, config=job.config, progress=progress, should_stop=should_stop
        )
    finally:
        run_sync(llm.aclose())
    if tracker is not None:
        from promptopt.tracking.bpo import log_build_data

        log_build_data(tracker, job, report)
    return BuildDataResult(loaded, report)


def load_rewrite_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(prompt, optimized_prompt) of the kept records of a built file, for training.

    Also accepts BPO's own JSON/JSONL files (``prompt``/``optimized_prompt`` rows without status).
    """
    rows = read_records(path)
    out: list[tuple[str, str]] = []
    for i, r in enumerate(rows):
        if r.get("status", "kept") != "kept":
            continue
        prompt, optimized = r.get("prompt"), r.get("optimized_prompt")
        if not isinstance(prompt, str) or not isinstance(optimized, str):
            raise DataError(f"{path}: row {i + 1} lacks prompt/optimized_prompt text")
        out.append((prompt, optimized))
    if not out:
        raise DataError(f"{path} holds no kept (prompt, optimized_prompt) records")
    return out
