"""BPO data construction: preference pairs → (prompt, optimized prompt) training pairs.

The method (Cheng et al. 2024, §3.2): show an LLM a prompt with a good and a bad response, ask it
to compare them (correctness first, then helpfulness and harmlessness) and to rewrite the prompt so
that a model would answer like the good response. The rewrite must keep all of the user's
information and any context, add no over-specific constraints taken from the good response, never
answer the prompt itself, and make an unsafe prompt harmless. The output ends with a marked
instruction (``Optimized Instruction: ... [END]``), which is parsed, never evaluated.

Filters, as in the BPO reference processing: outputs without the marker are dropped; rewrites more
than 2× shorter or 6× longer (in words) than the instruction are dropped as likely errors; rewrites
that leak template placeholders (``[protected ...]``, the format's ``xxx``) are dropped; and only the
first kept rewrite of each prompt is kept (deduplication by normalised prompt text).

Context (Alpaca-style input text) is never shown to the rewrite as something to change: after the
rewrite, it is re-attached to *both* sides as ``instruction\\ncontext`` (unless the rewrite already
quotes it), so the rewriter learns to pass context through untouched. The reference code picks
among several join formats at random; here one deterministic format keeps builds reproducible.

Durability: every kept record is appended to ``out`` and every dropped one to ``out``'s
``.dropped.jsonl`` sibling, flushed and fsync'd as results come back, keyed by a stable sha256 of
the source pair. A rerun skips ids already decided; ``llm_error`` drops are retried.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptopt.optimizers.bpo.pairs import PreferencePair
from promptopt.journal import AppendLog
from promptopt.errors import ConfigError, DataError
from promptopt.llm.base import LLM, BudgetExceededError, LLMError, Request, raise_if_unreachable, run_sync

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


def _unquote(text: str) -> str:
    t = text.strip()
    for q in ('"', "'", "“"):
        close = "”" if q == "“" else q
        if len(t) >= 2 and t.startswith(q) and t.endswith(close):
            inner = t[1:-1]
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


def attach_context(instruction: str, optimized: str, context: str) -> tuple[str, str]:
    """(prompt, optimized_prompt) with the context re-attached on both sides."""
    if not context:
        return instruction.strip(), optimized.strip()
    prompt = f"{instruction}\n{context}".strip()
    if context.lower() in optimized.lower():  # the rewrite already carries the context verbatim
        return prompt, optimized.strip()
    return prompt, f"{optimized}\n{context}".strip()


def normalise(text: str) -> str:
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
    """Apply marker, placeholder and length filters (not dedup, which needs the whole file)."""
    prompt = f"{pair.instruction}\n{pair.context}".strip() if pair.context else pair.instruction
    parsed = parse_builder_output(text)
    if parsed is None:
        return Verdict("dropped", "no_marker", prompt, None, None)
    if not parsed.optimized:
        return Verdict("dropped", "empty", prompt, None, parsed.critique)
    if PLACEHOLDER_RE.search(parsed.optimized):
        return Verdict("dropped", "placeholder", prompt, parsed.optimized, parsed.critique)
    reason = length_reason(pair.instruction, parsed.optimized)
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


def dropped_path(out: str | Path) -> Path:
    """Where dropped records go: ``data.jsonl`` → ``data.dropped.jsonl``."""
    p = Path(out)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.stem
    return p.with_name(f"{stem}.dropped.jsonl")


RETRYABLE = frozenset({"llm_error"})


@dataclass
class BuildReport:
    """Counts of one build (including what earlier runs into the same file decided)."""

    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    skipped_input: dict[str, int] = field(default_factory=dict)
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


def _final_status(kept_log: AppendLog, drop_log: AppendLog) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Latest decision per id (kept wins over any drop), and the normalised kept prompts."""
    latest: dict[str, dict[str, Any]] = {}
    for rec in drop_log.records:
        if "id" in rec:
            latest[rec["id"]] = rec
    prompts: set[str] = set()
    for rec in kept_log.records:
        if "id" in rec:
            latest[rec["id"]] = rec
            prompts.add(normalise(str(rec.get("prompt", ""))))
    return latest, prompts


def _count(latest: Mapping[str, Mapping[str, Any]], report: BuildReport) -> None:
    report.kept = 0
    report.dropped = {}
    for rec in latest.values():
        if rec.get("status") == "kept":
            report.kept += 1
        else:
            reason = str(rec.get("reason"))
            report.dropped[reason] = report.dropped.get(reason, 0) + 1


# --------------------------------------------------------------------------- builder


@dataclass(frozen=True)
class BuildConfig:
    """Sampling and batching for a build. Defaults are deterministic (temperature 0, cached);
    the paper sampled gpt-3.5-turbo at 0.9."""

    concurrency: int = 8
    temperature: float = 0.0
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


ProgressFn = Callable[[int, int, BuildReport], None]


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

    Batches of ``config.concurrency`` pairs go to ``llm.agenerate(return_exceptions=True)``; each
    result is filtered and appended durably before the next batch starts. ``progress(done, total,
    report)`` is called after every batch; ``should_stop()`` is polled between batches.
    """
    cfg = config or BuildConfig()
    start = time.monotonic()
    report = BuildReport(out=str(out), dropped_out=str(dropped_path(out)))
    with AppendLog(out) as kept_log, AppendLog(dropped_path(out)) as drop_log:
        latest, kept_prompts = _final_status(kept_log, drop_log)
        todo: list[tuple[str, PreferencePair]] = []
        queued: set[str] = set()
        for pair in pairs:
            ident = pair_id(pair)
            if ident in queued:
                continue  # an exact duplicate input pair is built once
            queued.add(ident)
            rec = latest.get(ident)
            if rec is not None and not (rec.get("status") == "dropped" and rec.get("reason") in RETRYABLE):
                report.resumed += 1
                continue
            todo.append((ident, pair))
        _count(latest, report)
        name = getattr(llm, "name", "")
        total = len(todo)
        for b in range(0, total, cfg.concurrency):
            if should_stop is not None and should_stop():
                report.stopped = "stop requested"
                break
            batch = todo[b : b + cfg.concurrency]
            requests = [
                Request.chat(
                    render_prompt(pair, cfg.templates),
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                    stop=(END_MARKER,),  # nothing after the marked instruction is used
                    seed=item_seed(cfg.seed, ident),
                )
                for ident, pair in batch
            ]
            results = await llm.agenerate(requests, return_exceptions=True)
            raise_if_unreachable(results)  # nothing logged for this batch: a rerun redoes it
            for (ident, pair), res in zip(batch, results, strict=True):
                source = {
                    "instruction": pair.instruction,
                    "context": pair.context,
                    "good_res": pair.good,
                    "bad_res": pair.bad,
                    **({"meta": dict(pair.meta)} if pair.meta else {}),
                }
                base = {"id": ident, "model": name}
                if isinstance(res, BudgetExceededError):
                    report.stopped = "budget"
                if isinstance(res, LLMError):
                    rec = {**base, "status": "dropped", "reason": "llm_error", "error": str(res)[:300]}
                    rec["source"] = source
                    drop_log.append(rec)
                    latest[ident] = rec
                    continue
                text = res.text
                v = judge_output(pair, text)
                status, reason = v.status, v.reason
                if status == "kept" and normalise(v.prompt) in kept_prompts:
                    status, reason = "dropped", "duplicate"
                rec = {
                    **base,
                    "status": status,
                    "reason": reason,
                    "prompt": v.prompt,
                    "optimized_prompt": v.optimized_prompt,
                    "critique": v.critique,
                    "source": source,
                }
                if status == "kept":
                    kept_prompts.add(normalise(v.prompt))
                    kept_log.append(rec)
                else:
                    rec["raw_output"] = text
                    drop_log.append(rec)
                latest[ident] = rec
            report.processed += len(batch)
            _count(latest, report)
            if progress is not None:
                progress(min(b + len(batch), total), total, report)
            if report.stopped == "budget":
                break
    report.seconds = time.monotonic() - start
    return report


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


def load_rewrite_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(prompt, optimized_prompt) of the kept records of a built file, for training.

    Also accepts BPO's own JSON/JSONL files (``prompt``/``optimized_prompt`` rows without status).
    """
    from promptopt.optimizers.bpo.testsets import read_records

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


def count_reasons(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Counts per status/reason of a list of records (kept counted under ``kept``)."""
    out: dict[str, int] = {}
    for r in records:
        key = "kept" if r.get("status") == "kept" else str(r.get("reason"))
        out[key] = out.get(key, 0) + 1
    return out
