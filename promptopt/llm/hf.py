"""transformers backend: ``hf:<hub id or local dir>``, batched generation on CPU or GPU.

Why batched: scorers send hundreds of short requests; one padded ``generate`` over many prompts is
far faster than one call per prompt, on a GPU and even on CPU. Requests are grouped by their
sampling parameters (a ``generate`` call has one set), sorted by length inside a group to waste
little padding, and cut into ``batch_size`` rows; ``n > 1`` becomes ``n`` rows.

Why left padding: decoder-only models continue from the last position, so every row's prompt must
end at the same column.

Seeds: a request with a seed is generated in a batch of requests with the same seed, under
``torch.random.fork_rng`` + ``manual_seed(seed + chunk)``, so the output is reproducible for the same
batch without touching the caller's global RNG. Sampling uses only the request's temperature and
top_p (the model's own generation defaults such as top_k are not applied), like the other backends.

Loading: the spec is passed to ``from_pretrained`` as is, so a hub id loads from the Hub (or its
local cache, honouring ``HF_HUB_OFFLINE``) and a path loads from disk. An encoder-decoder
checkpoint (T5, BART: ``is_encoder_decoder`` in its config) loads as a seq2seq model and its
prompt goes to the encoder (right padding, no prompt in the output). All torch work runs on one
worker thread owned by the backend, so the event loop stays free.

Local-model options: a :class:`GenerationRequest` (a ``Request`` subclass, so caches, budgets and
other backends handle it as a plain request) adds exact input token ids, a per-request minimum
length and banned words — what BPO's rewriter needs (its template is tokenized piecewise, and its
aggressive mode forces a rewrite longer than the prompt). This backend and the vLLM engine honour
them; other backends see the plain Request fields only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptopt.errors import ConfigError
from promptopt.llm.base import (
    BackendUnavailableError,
    BaseLLM,
    Choice,
    Completion,
    LLMBadRequestError,
    LLMError,
    Request,
    Usage,
    engine_error,
    settle_results,
)
from promptopt.llm.worker import Worker

DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class GenerationRequest(Request):
    """A Request with options that only local model backends (hf, vllm) can honour.

    ``prompt_ids``: the model input as token ids, used instead of tokenizing ``prompt`` (which
    then only names the request for budgets and logs); ``min_new_tokens``: neither EOS nor a
    token holding a ``stop`` string may end the output before this many new tokens — the way
    transformers' ``min_length`` suppresses every EOS id (BPO's reference makes the newline token
    an EOS for that); ``bad_words``: strings that must never be generated (tokenized without
    special tokens, as transformers' ``bad_words_ids`` expects).
    """

    prompt_ids: tuple[int, ...] | None = None
    min_new_tokens: int = 0
    bad_words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {self.min_new_tokens}")
        if self.prompt_ids is not None and not isinstance(self.prompt_ids, tuple):
            object.__setattr__(self, "prompt_ids", tuple(int(i) for i in self.prompt_ids))
        if not isinstance(self.bad_words, tuple):
            object.__setattr__(self, "bad_words", tuple(self.bad_words))


def min_new_tokens(request: Request) -> int:
    """The request's minimum output length (0 for a plain Request), at most its max_tokens."""
    return min(getattr(request, "min_new_tokens", 0), request.max_tokens)


def bad_words(request: Request) -> tuple[str, ...]:
    return tuple(getattr(request, "bad_words", ()) or ())


def stop_token_ids(tokenizer: Any, stop: Sequence[str]) -> list[int]:
    """Ids of the vocabulary tokens whose text holds a stop string (e.g. every token with a
    newline). Suppressing them, with EOS, below a minimum length is what keeps a single-character
    stop such as ``"\n"`` from ending the output early, whatever the tokenizer merged it into."""
    wanted = [s for s in stop if s]
    if not wanted:
        return []
    size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False)
    return [i for i, t in enumerate(texts) if any(s in t for s in wanted)]


@dataclass(frozen=True)
class _Row:
    """One sequence to generate: sample ``sample`` of request ``index``."""

    index: int
    sample: int
    ids: list[int]
    min_new: int = 0


def _group_key(r: Request) -> tuple[Any, ...]:
    # The minimum length is per row (a logits processor), so it does not split a batch.
    return (r.temperature, r.top_p, r.max_tokens, r.stop, r.seed, bad_words(r))


class _RowMinLength:
    """Logits processor: row r may not end (EOS or a stop token) before ``mins[r]`` new tokens.

    Why not transformers' ``min_new_tokens``: that is one value per ``generate`` call, and BPO's
    minimum depends on each prompt's length; one value would split every batch into single rows.
    """

    def __init__(self, mins: Sequence[int], start: int, banned: Sequence[int], device: Any) -> None:
        import torch

        self.start = start
        self.mins = torch.tensor(list(mins), device=device)
        self.banned = torch.tensor(sorted(set(banned)), dtype=torch.long, device=device)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        done = input_ids.shape[1] - self.start
        rows = (self.mins > done).nonzero().flatten()
        if rows.numel() and self.banned.numel():
            scores[rows.unsqueeze(1), self.banned.unsqueeze(0)] = float("-inf")
        return scores


def _stop_length(tok: Any, ids: Sequence[int], stop: Sequence[str]) -> int:
    """Tokens up to the one completing the first stop string (binary search: whether a prefix
    holds a stop string only grows with the prefix). Why: with pad = EOS (common), the padding
    after a stop would otherwise look like a generated EOS and be counted."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if truncate_at_stop(tok.decode(ids[:mid], skip_special_tokens=True), stop)[1]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; True if one was found."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def fallback_chat_text(messages: Sequence[Mapping[str, str]]) -> str:
    """A plain transcript for tokenizers without a chat template (base models)."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nassistant:"


class HFLLM(BaseLLM):
    """A causal LM (``AutoModelForCausalLM``) or an encoder-decoder one (``AutoModelForSeq2SeqLM``,
    chosen by the checkpoint's config) with its ``AutoTokenizer``.

    ``device``: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
    ``dtype``: ``auto`` (bfloat16/float16 on CUDA, float32 on CPU) or a torch dtype name.
    ``model_kwargs`` go to ``from_pretrained`` (e.g. ``device_map``, ``attn_implementation``).
    """

    def __init__(
        self,
        model_id: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        revision: str | None = None,
        trust_remote_code: bool = False,
        model_kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not model_id.strip():
            raise ConfigError("the hf backend needs a model: hf:<hub id or local directory>")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model_id = model_id.strip()
        self.device_option = device
        self.dtype_option = dtype
        self.batch_size = batch_size
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.model_kwargs = dict(model_kwargs or {})
        self.name = name or f"hf:{self.model_id}"
        self._worker = Worker("hf")
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None
        self._seq2seq = False
        self._stop_ids: dict[tuple[str, ...], list[int]] = {}

    # ------------------------------------------------------------------ worker thread only

    def _load(self) -> tuple[Any, Any]:
        if self._model is not None:
            return self._model, self._tokenizer
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        device = self.device_option
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"{self.name}: device {device!r} asked for, but torch sees no CUDA GPU"
            )
        dtype: Any = self.dtype_option
        if dtype == "auto":
            if device.startswith("cuda"):
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dtype = torch.float32
        elif isinstance(dtype, str):
            resolved = getattr(torch, dtype, None)
            if not isinstance(resolved, torch.dtype):
                raise ConfigError(f"unknown dtype {dtype!r} (try float32, bfloat16, float16)")
            dtype = resolved
        common: dict[str, Any] = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        try:
            config = AutoConfig.from_pretrained(self.model_id, **common)
            seq2seq = bool(getattr(config, "is_encoder_decoder", False))
            auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
            tokenizer = AutoTokenizer.from_pretrained(self.model_id, **common)
            model = auto.from_pretrained(self.model_id, dtype=dtype, **common, **self.model_kwargs)
        except (OSError, ValueError) as exc:
            raise BackendUnavailableError(
                f"{self.name}: cannot load model or tokenizer {self.model_id!r}: {exc}"
            ) from None
        if "device_map" not in self.model_kwargs:
            model.to(device)
        model.eval()
        tokenizer.padding_side = "right" if seq2seq else "left"
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise BackendUnavailableError(
                    f"{self.name}: the tokenizer has neither a pad nor an eos token"
                )
            tokenizer.pad_token = tokenizer.eos_token
        self._model, self._tokenizer, self._device = model, tokenizer, model.device
        self._seq2seq = seq2seq
        return model, tokenizer

    def _encode(self, request: Request) -> list[int]:
        tok = self._tokenizer
        ids = getattr(request, "prompt_ids", None)
        if ids is not None:
            return list(ids)
        if request.messages is not None:
            messages = request.chat_messages()
            if getattr(tok, "chat_template", None):
                text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                # The template already holds any BOS text, so the tokenizer must not add another.
                return list(tok(text, add_special_tokens=False)["input_ids"])
            return list(tok(fallback_chat_text(messages))["input_ids"])
        return list(tok(request.prompt or "")["input_ids"])

    def _eos_ids(self) -> set[int]:
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self._tokenizer.eos_token_id
        if eos is None:
            return set()
        return {int(e) for e in eos} if isinstance(eos, (list, tuple)) else {int(eos)}

    def _generate_rows(
        self, rows: list[_Row], template: Request, chunk_no: int
    ) -> list[tuple[str, int, str]]:
        """One padded ``generate``; returns (text, completion tokens, finish reason) per row."""
        import torch
        from transformers import GenerationConfig

        model, tok = self._model, self._tokenizer
        width = max(len(r.ids) for r in rows)
        pad = tok.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r.ids:
                # Left padding for decoder-only models (every prompt ends at the last column);
                # an encoder reads the whole input, so seq2seq pads on the right as trained.
                cols = slice(0, len(r.ids)) if self._seq2seq else slice(width - len(r.ids), width)
                input_ids[i, cols] = torch.tensor(r.ids, dtype=torch.long)
                mask[i, cols] = 1
        eos = self._eos_ids()
        sampling = template.temperature > 0
        gen_cfg = GenerationConfig(
            max_new_tokens=template.max_tokens,
            do_sample=sampling,
            temperature=template.temperature if sampling else None,
            top_p=template.top_p if sampling else None,
            top_k=0 if sampling else None,
            pad_token_id=pad,
            eos_token_id=sorted(eos) or None,
            bos_token_id=model.generation_config.bos_token_id,
            decoder_start_token_id=model.generation_config.decoder_start_token_id,
        )
        extra: dict[str, Any] = {}
        if template.stop:
            gen_cfg.stop_strings = list(template.stop)
            extra = {"tokenizer": tok}
        banned_words = [list(tok(w, add_special_tokens=False)["input_ids"]) for w in bad_words(template)]
        if any(banned_words):
            gen_cfg.bad_words_ids = [w for w in banned_words if w]
        # Output starts after the prompt (causal) or after the decoder start token (seq2seq).
        start = 1 if self._seq2seq else width
        if any(r.min_new for r in rows):
            from transformers import LogitsProcessorList

            ending = sorted(eos) + self._stop_token_ids(template.stop)
            extra["logits_processor"] = LogitsProcessorList(
                [_RowMinLength([r.min_new for r in rows], start, ending, self._device)]
            )
        devices = [self._device] if self._device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            if template.seed is not None:
                torch.manual_seed(template.seed + chunk_no)
            out = model.generate(
                input_ids=input_ids.to(self._device),
                attention_mask=mask.to(self._device),
                generation_config=gen_cfg,
                **extra,
            )
        results: list[tuple[str, int, str]] = []
        for i in range(len(rows)):
            gen = out[i, start:].tolist()
            length, hit_eos = len(gen), False
            for j, t in enumerate(gen):
                if t in eos:
                    length, hit_eos = j + 1, True
                    break
            if not hit_eos:
                while length and gen[length - 1] == pad:  # rows stopped early by a stop string
                    length -= 1
            text = tok.decode(gen[:length], skip_special_tokens=True)
            text, hit_stop = truncate_at_stop(text, template.stop)
            if hit_stop:  # a row that a stop string ended is padded after it: count up to it
                length = _stop_length(tok, gen[:length], template.stop)
            finish = "stop" if hit_eos or hit_stop or length < template.max_tokens else "length"
            results.append((text, length, finish))
        return results

    def _stop_token_ids(self, stop: tuple[str, ...]) -> list[int]:
        if stop not in self._stop_ids:
            self._stop_ids[stop] = stop_token_ids(self._tokenizer, stop)
        return self._stop_ids[stop]

    def _run_group(self, requests: list[Request], indices: list[int]) -> dict[int, Completion | LLMError]:
        """Generate every sample of the requests of one parameter group (worker thread)."""
        self._load()
        template = requests[indices[0]]
        failed: dict[int, LLMError] = {}
        encoded: dict[int, list[int]] = {}
        for i in indices:
            ids = self._encode(requests[i])
            if not ids and self._tokenizer.bos_token_id is not None:
                ids = [self._tokenizer.bos_token_id]
            if ids:
                encoded[i] = ids
            else:
                failed[i] = LLMBadRequestError(f"{self.name}: the prompt is empty")
        rows = [
            _Row(i, s, ids, min_new_tokens(requests[i]))
            for i, ids in encoded.items()
            for s in range(requests[i].n)
        ]
        rows.sort(key=lambda r: len(r.ids))
        texts: dict[tuple[int, int], tuple[str, int, str]] = {}
        for chunk_no, start in enumerate(range(0, len(rows), self.batch_size)):
            chunk = rows[start : start + self.batch_size]
            try:
                outs = self._generate_rows(chunk, template, chunk_no)
            except (ValueError, RuntimeError) as exc:  # a rejected row, CUDA out of memory, ...
                err = engine_error(self.name, exc)
            else:
                for r, o in zip(chunk, outs, strict=True):
                    texts[(r.index, r.sample)] = o
                continue
            for r in chunk:
                failed[r.index] = err
        results: dict[int, Completion | LLMError] = {}
        for i in indices:
            if i in failed:
                results[i] = failed[i]
                continue
            outs = [texts[(i, s)] for s in range(requests[i].n)]
            results[i] = Completion(
                tuple(Choice(t, f) for t, _, f in outs),
                Usage(prompt_tokens=len(encoded[i]), completion_tokens=sum(n for _, n, _ in outs), calls=1),
                model=self.name,
            )
        return results

    # ------------------------------------------------------------------ public

    async def _complete(self, request: Request) -> Completion:
        result = (await self.agenerate([request]))[0]
        return result

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        reqs = list(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, r in enumerate(reqs):
            groups.setdefault(_group_key(r), []).append(i)
        results: list[Any] = [None] * len(reqs)
        for indices in groups.values():
            try:
                done = await self._worker.run(self._run_group, reqs, indices)
            except LLMError as exc:  # loading failed: every request of the group fails alike
                done = dict.fromkeys(indices, exc)
            for i, value in done.items():
                results[i] = value
        return settle_results(results, return_exceptions)

    async def load(self) -> None:
        """Load model and tokenizer now (otherwise the first request does)."""
        await self._worker.run(self._load)

    def _free(self) -> None:
        self._model = self._tokenizer = self._device = None

    async def aclose(self) -> None:
        await self._worker.shutdown(self._free)


_OPTIONS = {"device", "dtype", "batch_size", "revision", "trust_remote_code", "model_kwargs", "name"}


def from_spec(rest: str, **options: Any) -> HFLLM:
    """Registry factory for ``hf:<hub id or local directory>``.

    Options: ``device``, ``dtype``, ``batch_size``, ``revision``, ``trust_remote_code``,
    ``model_kwargs`` (to ``from_pretrained``). transformers is imported on first use, not here.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ConfigError(f"unknown option(s) for the hf backend: {', '.join(unknown)}")
    return HFLLM(rest, **options)
