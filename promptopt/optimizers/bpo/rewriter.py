"""Rewrite prompts with a trained BPO rewriter, always in batches.

Modes (BPO's ``infer_example.py``): ``default`` samples one rewrite at top_p 0.9 / temperature 0.6
("stable optimization"); ``aggressive`` samples several at temperature 0.9 with placeholder tokens
banned, stops at the first newline and keeps only rewrites longer than the input. ``n`` > 1 draws
n candidates and lets a judge pick one; ``rounds`` rewrites the rewrite again (the paper reports
gains up to 4 rounds). The settings come from the model's ``bpo_rewriter.json``.

Why batches only: generation cost is dominated by per-call overhead on small models and by
memory bandwidth on large ones; padding a batch (on the left for decoder-only models) and calling
``generate`` once per chunk is several times faster than a loop over prompts. With a GPU and an
importable ``vllm`` the whole list goes to one ``vllm.LLM.generate`` call instead.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM
from promptopt.optimizers.bpo.templates import (
    CONFIG_FILE,
    MODES,
    PromptEncoder,
    RewriterConfig,
    SamplingDefaults,
)

#: Fragments the reference cuts an aggressive rewrite at (the start of leaked placeholders).
_PLACEHOLDER_CUTS = ("[KE", "[INS", "[PRO")


class Picker(Protocol):
    """Chooses one candidate per prompt: returns an index into each candidate list."""

    def pick(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[int]: ...


# --------------------------------------------------------------------------- judge picker


class JudgePicker:
    """Best of K by the pairwise LLM judge (``promptopt.evaluators.judge.pick_best``).

    The rule is the judge module's: every pair of a prompt's candidates is judged in both orders,
    a candidate scores 1 per win (both orders agree) and 0.5 per tie or split verdict, and the
    highest score wins (the earliest sample on ties). Without ``target`` the judge compares the
    rewritten prompts themselves; with it, the target model's answers to them (BPO's real goal,
    K more calls per prompt).
    """

    def __init__(self, judge: LLM | Any, *, target: LLM | None = None, max_tokens: int = 512) -> None:
        from promptopt.evaluators.judge import PairwiseJudge

        self.judge = (
            judge if isinstance(judge, PairwiseJudge) else PairwiseJudge(judge, max_tokens=max_tokens)
        )
        self.target = target

    def pick(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[int]:
        from promptopt.evaluators.judge import pick_best

        return pick_best(self.judge, list(prompts), [list(c) for c in candidates], target=self.target)


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
    """Cleaned, non-empty, de-duplicated candidates; with ``require_longer`` only those longer
    (in characters) than the original. An empty list means "keep the original"."""
    seen: set[str] = set()
    out: list[str] = []
    for t in texts:
        c = clean_rewrite(t, sampling)
        if not c or c in seen:
            continue
        if sampling.require_longer and len(c) <= len(original.strip()):
            continue
        seen.add(c)
        out.append(c)
    return out


# --------------------------------------------------------------------------- the rewriter


def _vllm_usable() -> bool:
    """True when a GPU is present and ``vllm`` imports (guarded: it is an optional extra)."""
    try:
        import torch

        if not torch.cuda.is_available():
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
    """A loaded rewriter. Thread-safe: one generation at a time per instance."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        config: RewriterConfig,
        *,
        device: str = "cpu",
        batch_size: int = 16,
        name: str = "rewriter",
        engine: Any = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.device = device
        self.batch_size = batch_size
        self.name = name
        self.engine = engine  # a vllm.LLM when the vLLM path is in use
        self.encoder = PromptEncoder(tokenizer, config)
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        return "vllm" if self.engine is not None else "transformers"

    @classmethod
    def load(
        cls,
        path_or_hf_id: str | Path,
        device: str | None = None,
        *,
        backend: str = "auto",
        batch_size: int = 16,
    ) -> Rewriter:
        """Load a rewriter directory (or hub id). ``backend``: auto, transformers or vllm."""
        if backend not in ("auto", "transformers", "vllm"):
            raise ConfigError(f"unknown rewriter backend {backend!r}; choose auto, transformers or vllm")
        path = str(path_or_hf_id)
        from promptopt.optimizers.bpo.train import detect_family

        family = detect_family(path)
        config = _read_config(path, family)
        if config.family != family:
            raise ConfigError(f"{path}: bpo_rewriter.json says {config.family} but the model is {family}")
        use_vllm = backend == "vllm" or (backend == "auto" and family == "causal" and _vllm_usable())
        if backend == "vllm" and not _vllm_usable():
            raise ConfigError("the vllm backend needs the vllm package and a GPU")

        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except Exception as exc:
            raise ConfigError(f"cannot load the tokenizer of {path!r}: {exc}") from None
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if use_vllm:
            import vllm

            engine = vllm.LLM(model=path, tokenizer=path)
            return cls(
                None, tokenizer, config, device="cuda", batch_size=batch_size, name=path, engine=engine
            )

        import torch

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        auto = AutoModelForSeq2SeqLM if family == "seq2seq" else AutoModelForCausalLM
        # bf16/fp16 matmuls are slow on most CPUs: float32 there, the checkpoint's dtype on GPUs.
        dtype: Any = torch.float32 if str(dev).startswith("cpu") else "auto"
        model = auto.from_pretrained(path, dtype=dtype).to(dev)
        model.eval()
        return cls(model, tokenizer, config, device=dev, batch_size=batch_size, name=path)

    # -- sampling

    def sample(
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
        sources = [self.encoder.source(p) for p in prompts]
        max_new = max_new_tokens or sampling.max_new_tokens
        with self._lock:
            if self.engine is not None:
                return self._sample_vllm(sources, sampling, k, seed, max_new)
            return self._sample_hf(sources, sampling, k, seed, max_new)

    def _bad_words_ids(self, sampling: SamplingDefaults) -> list[list[int]] | None:
        ids = [list(self.tokenizer(b, add_special_tokens=False)["input_ids"]) for b in sampling.banned]
        ids = [i for i in ids if i]
        return ids or None

    def _sample_hf(
        self, sources: list[list[int]], sampling: SamplingDefaults, k: int, seed: int, max_new: int
    ) -> list[list[str]]:
        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id
        causal = self.config.family == "causal"
        gen_kwargs: dict[str, Any] = {
            "do_sample": True,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_new_tokens": max_new,
            "num_return_sequences": k,
            "pad_token_id": pad,
            "eos_token_id": tok.eos_token_id,
        }
        bad = self._bad_words_ids(sampling)
        if bad:
            gen_kwargs["bad_words_ids"] = bad
        if sampling.stop_at_newline:
            gen_kwargs["stop_strings"] = ["\n"]
            gen_kwargs["tokenizer"] = tok
        out: list[list[str]] = [[] for _ in sources]
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))  # less padding
        devices = [torch.device(self.device)] if str(self.device).startswith("cuda") else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                width = max(len(sources[i]) for i in chunk)
                ids, mask = [], []
                for i in chunk:
                    s = sources[i]
                    fill = [pad] * (width - len(s))
                    zeros = [0] * (width - len(s))
                    if causal:  # left padding: every row's last token is its real last token
                        ids.append(fill + s)
                        mask.append(zeros + [1] * len(s))
                    else:
                        ids.append(s + fill)
                        mask.append([1] * len(s) + zeros)
                input_ids = torch.tensor(ids, device=self.device)
                attention = torch.tensor(mask, device=self.device)
                gen = self.model.generate(input_ids=input_ids, attention_mask=attention, **gen_kwargs)
                if causal:
                    gen = gen[:, width:]
                texts = tok.batch_decode(gen, skip_special_tokens=True)
                for row, i in enumerate(chunk):
                    out[i] = [t.strip() for t in texts[row * k : (row + 1) * k]]
        return out

    def _sample_vllm(
        self, sources: list[list[int]], sampling: SamplingDefaults, k: int, seed: int, max_new: int
    ) -> list[list[str]]:
        import vllm

        params = vllm.SamplingParams(
            n=k,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=max_new,
            seed=seed,
            stop=["\n"] if sampling.stop_at_newline else None,
            bad_words=list(sampling.banned) or None,
        )
        inputs = [{"prompt_token_ids": s} for s in sources]
        results = self.engine.generate(inputs, params, use_tqdm=False)
        return [[o.text.strip() for o in r.outputs] for r in results]

    # -- rewriting

    def rewrite(
        self,
        prompts: Sequence[str],
        *,
        mode: str = "default",
        n: int = 1,
        rounds: int = 1,
        seed: int = 0,
        judge: Picker | None = None,
        max_new_tokens: int | None = None,
    ) -> list[str]:
        """One rewrite per prompt, in order.

        Per round every prompt gets ``max(n, mode's samples)`` candidates in one batched call;
        they are cleaned and filtered (aggressive: longer than the input), then the judge picks
        one, or — without a judge — the first survivor is taken. A prompt with no surviving
        candidate (or an empty prompt) stays as it was. ``n`` > 1 needs a judge, since n samples
        without a way to choose would only cost time.
        """
        if mode not in MODES:
            raise ConfigError(f"unknown rewrite mode {mode!r}; choose one of {', '.join(MODES)}")
        if n < 1 or rounds < 1:
            raise ConfigError(f"n and rounds must be >= 1, got n={n}, rounds={rounds}")
        if n > 1 and judge is None:
            raise ConfigError("n > 1 needs a judge to pick the best rewrite (e.g. --judge-model)")
        sampling = self.config.sampling(mode)
        k = max(n, sampling.samples)
        current = [str(p) for p in prompts]
        for r in range(rounds):
            todo = [i for i, p in enumerate(current) if p.strip()]
            if not todo:
                break
            raw = self.sample(
                [current[i] for i in todo], mode=mode, samples=k, seed=seed + r, max_new_tokens=max_new_tokens
            )
            cands = [
                select_candidates(current[i], texts, sampling) for i, texts in zip(todo, raw, strict=True)
            ]
            picks = [0] * len(todo)
            if judge is not None and any(len(c) > 1 for c in cands):
                picks = judge.pick([current[i] for i in todo], cands)
            for i, c, j in zip(todo, cands, picks, strict=True):
                if c:
                    current[i] = c[j]
        return current
