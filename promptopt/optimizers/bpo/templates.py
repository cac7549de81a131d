"""The rewriter's prompt template and generation defaults, and how they travel with a model.

Why a JSON file next to the weights: a trained rewriter must be usable by anyone who has the
directory — the template it was trained with and the sampling settings BPO recommends are part of
the model, not of the code that happens to load it. ``save_pretrained`` keeps weights and
tokenizer; ``bpo_rewriter.json`` keeps the rest, and transformers alone can still load the model.

Why the template is split at its one ``{}`` rather than filled with ``str.format``: training must
truncate the *user prompt* and never the template header (the reference implementation cuts the
header when a prompt is long), so the header and the tail are tokenized separately from the prompt.
Splitting also lets a template hold other braces and a prompt hold anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from promptopt.errors import ConfigError
from promptopt.records import read_json_object

#: The rewriter template of BPO's released Llama-2-chat rewriter: ``prompt_template`` in
#: thu-coai/BPO src/infer_example.py (commit 9bf5415), character for character. The released
#: model was trained on exactly this text; a reworded header is a different model input.
BPO_TEMPLATE = (
    "[INST] You are an expert prompt engineer. Please help me improve this prompt to get a more "
    "helpful and harmless response:\n{} [/INST]"
)
#: Strings BPO's aggressive mode bans (``bad_words_ids`` in ``gen_aggressive``, same file):
#: placeholders the rewriter learned from its training data.
BPO_BANNED = ("[PROTECT]", "\n\n[PROTECT]", "[KEEP", "[INSTRUCTION]")
#: ``gen_aggressive`` draws this many rewrites of a prompt.
BPO_AGGRESSIVE_SAMPLES = 5
#: ``gen_aggressive``'s ``min_length`` is the template-filled input plus the prompt's own tokens
#: plus 5: every rewrite is at least the prompt's token count + 5 new tokens long.
BPO_MIN_EXTRA_TOKENS = 5
CONFIG_FILE = "bpo_rewriter.json"
FORMAT_VERSION = 1

Family = Literal["seq2seq", "causal"]
Mode = Literal["default", "aggressive"]
MODES: tuple[str, ...] = ("default", "aggressive")


@dataclass(frozen=True)
class SamplingDefaults:
    """How one rewriting mode samples. ``samples`` is how many candidates a prompt gets.

    ``min_extra_tokens``: when set, a rewrite may not end (EOS or, with ``stop_at_newline``, a
    newline) before the prompt's token count (special tokens included, as the reference counts)
    plus this many tokens. ``require_longer``: candidates longer than the prompt are preferred.
    """

    temperature: float
    top_p: float
    max_new_tokens: int = 512
    samples: int = 1
    stop_at_newline: bool = False
    banned: tuple[str, ...] = ()
    require_longer: bool = False
    min_extra_tokens: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["banned"] = list(self.banned)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], base: SamplingDefaults | None = None) -> SamplingDefaults:
        """Settings from JSON; keys a file lacks (written by an older version) come from ``base``,
        so an old rewriter directory gets a newer default such as ``min_extra_tokens``."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "banned" in kw:
            kw["banned"] = tuple(kw["banned"])
        return replace(base, **kw) if base is not None else cls(**kw)


#: BPO's stable optimization (infer_example.py ``gen``): one sample, top_p 0.9, temperature 0.6.
DEFAULT_SAMPLING = SamplingDefaults(temperature=0.6, top_p=0.9)
#: BPO's aggressive optimization (``gen_aggressive``): 5 samples at temperature 0.9 / top_p 0.9,
#: placeholders banned, the first newline ends a rewrite, and no rewrite may end before the
#: prompt's length + 5 tokens (so it never comes back unchanged).
AGGRESSIVE_SAMPLING = SamplingDefaults(
    temperature=0.9,
    top_p=0.9,
    samples=BPO_AGGRESSIVE_SAMPLES,
    stop_at_newline=True,
    banned=BPO_BANNED,
    require_longer=True,
    min_extra_tokens=BPO_MIN_EXTRA_TOKENS,
)


@dataclass(frozen=True)
class RewriterConfig:
    """Everything besides weights and tokenizer that defines a rewriter.

    ``template`` holds exactly one ``{}`` where the user prompt goes. With ``use_chat_template``
    the filled template becomes a user message rendered by the tokenizer's own chat template
    (for bases other than Llama-2-chat). ``max_length`` is the training length in tokens;
    rewriting truncates prompts to fit it the same way training did.
    """

    family: Family
    template: str = BPO_TEMPLATE
    use_chat_template: bool = False
    max_length: int = 512
    default: SamplingDefaults = DEFAULT_SAMPLING
    aggressive: SamplingDefaults = AGGRESSIVE_SAMPLING
    base_model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        split_template(self.template)
        if self.family not in ("seq2seq", "causal"):
            raise ConfigError(f"unknown rewriter family {self.family!r}; expected seq2seq or causal")
        if self.max_length < 8:
            raise ConfigError(f"max length must be at least 8 tokens, got {self.max_length}")

    def sampling(self, mode: str) -> SamplingDefaults:
        if mode not in MODES:
            raise ConfigError(f"unknown rewrite mode {mode!r}; choose one of {', '.join(MODES)}")
        return self.default if mode == "default" else self.aggressive

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "template": self.template,
            "use_chat_template": self.use_chat_template,
            "max_length": self.max_length,
            "generation": {"default": self.default.to_json(), "aggressive": self.aggressive.to_json()},
            "base_model": self.base_model,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RewriterConfig:
        gen = d.get("generation") or {}
        return cls(
            family=d["family"],
            template=d.get("template", BPO_TEMPLATE),
            use_chat_template=bool(d.get("use_chat_template", False)),
            max_length=int(d.get("max_length", 512)),
            default=SamplingDefaults.from_json(gen.get("default") or {}, DEFAULT_SAMPLING),
            aggressive=SamplingDefaults.from_json(gen.get("aggressive") or {}, AGGRESSIVE_SAMPLING),
            base_model=str(d.get("base_model", "")),
            extra=dict(d.get("extra") or {}),
        )

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: str | Path) -> RewriterConfig | None:
        """The config in ``directory``, or None when the directory has none (a plain model)."""
        path = Path(directory) / CONFIG_FILE
        if not path.is_file():
            return None
        data = read_json_object(path, error=ConfigError, what="rewriter config")
        try:
            return cls.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} is not a valid rewriter config: {exc}") from None


def detect_family(model: str) -> Family:
    """seq2seq when the checkpoint's config is encoder-decoder, causal otherwise.

    Here rather than in ``train.py`` because loading a rewriter needs it too, and rewriting must
    not import the trainer."""
    from promptopt.extras import require

    AutoConfig = require("transformers", "train").AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(model)
    except Exception as exc:  # missing dir, unknown hub id, offline hub
        raise ConfigError(
            f"cannot read the model config of {model!r}: {exc.__class__.__name__}: {exc}"
        ) from None
    return "seq2seq" if getattr(cfg, "is_encoder_decoder", False) else "causal"


def split_template(template: str) -> tuple[str, str]:
    """(header, tail) around the template's single ``{}``."""
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ConfigError("a rewriter template must contain exactly one '{}' where the prompt goes")
    head, tail = template.split("{}")
    return head, tail


# --------------------------------------------------------------------------- encoding

_SENTINEL = "\x00PROMPTOPT_PROMPT\x00"


def _special_wrap(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after any text (BOS, EOS, ``</s>``...).

    Why found by comparison rather than read from attributes: tokenizers disagree on flags
    (``add_bos_token``, post-processors); what they actually emit around a word is the truth.
    """
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    n = len(plain)
    for i in range(len(full) - n + 1):
        if full[i : i + n] == plain:
            return full[:i], full[i + n :]
    return [], []


class PromptEncoder:
    """Turns a user prompt into the rewriter's input ids, identically in training and rewriting.

    The header, the prompt and the tail are tokenized separately and joined, so a long prompt is
    cut from its end while the header and tail are always intact. For a causal model the
    trailing special tokens (an EOS) are dropped since the rewrite follows the input; a seq2seq
    encoder input keeps them.
    """

    def __init__(self, tokenizer: Any, config: RewriterConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config
        if config.use_chat_template:
            if not getattr(tokenizer, "chat_template", None):
                raise ConfigError("use_chat_template is set but the tokenizer has no chat template")
            head, tail = split_template(config.template)
            rendered = tokenizer.apply_chat_template(
                [{"role": "user", "content": f"{head}{_SENTINEL}{tail}"}],
                tokenize=False,
                add_generation_prompt=True,
            )
            head, _, tail = rendered.partition(_SENTINEL)
            lead: list[int] = []
            trail: list[int] = []
        else:
            head, tail = split_template(config.template)
            lead, trail = _special_wrap(tokenizer)
        if config.family == "causal":
            trail = []
        self.lead = lead
        self.trail = trail
        self.head_ids = self._ids(head)
        self.tail_ids = self._ids(tail)

    def _ids(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def fixed_length(self) -> int:
        """Tokens the template costs whatever the prompt."""
        return len(self.lead) + len(self.head_ids) + len(self.tail_ids) + len(self.trail)

    def prompt_ids(self, prompt: str) -> list[int]:
        return self._ids(prompt)

    def join(self, prompt_ids: list[int]) -> list[int]:
        return self.lead + self.head_ids + prompt_ids + self.tail_ids + self.trail

    def source(self, prompt: str, max_tokens: int | None = None) -> list[int]:
        """Input ids for ``prompt``, its end cut so that the whole fits ``max_tokens``."""
        ids = self.prompt_ids(prompt)
        limit = self.config.max_length if max_tokens is None else max_tokens
        room = limit - self.fixed_length
        if room < 1:
            raise ConfigError(
                f"max length {limit} leaves no room for the prompt: the template alone takes "
                f"{self.fixed_length} tokens"
            )
        return self.join(ids[:room])
