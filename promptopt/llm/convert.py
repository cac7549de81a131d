"""Turn an embedded GGUF model into an ordinary ``save_pretrained`` folder (bf16 safetensors).

Why: the embedded weights are GGUF files for llama.cpp, but fine-tuning (BPO's rewriter), the
``hf:`` backend and vLLM want a transformers folder. transformers reads a GGUF with
``gguf_file=`` (through the ``gguf`` package) and dequantizes it to float32; that in-memory model
still carries GGUF-loading traces in its config (a ``quantization_config`` on some versions) and
is 4× larger than needed. So the conversion builds a *fresh* model from a cleaned copy of the
config, loads the dequantized state dict into it in the target dtype, and saves it with the
tokenizer and its chat template. The folder is written beside ``OUT`` under a temporary name and
renamed at the end, so an interrupted conversion never leaves a half folder under the final name.

Needs the ``train`` extra (torch, transformers, accelerate, gguf); imported only when called.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, UnknownNameError
from promptopt.extras import require
from promptopt.llm.gguf_file import GGUFInfo, check_gguf

#: config attributes that describe how the *source* was stored, not the model (dropped on save).
SOURCE_ONLY_CONFIG_KEYS = ("quantization_config", "_name_or_path", "_model_name_or_path")
DTYPES = ("bfloat16", "float16", "float32")

Notice = Callable[[str], None]


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion wrote: the folder, its size on disk, the seconds it took, the source."""

    out: Path
    source: Path
    dtype: str
    bytes: int
    seconds: float
    parameters: int


def resolve_gguf(name_or_path: str, *, on_notice: Notice | None = None) -> Path:
    """The GGUF file of an embedded model name (``qwen2.5-coder-0.5b``, ``local:NAME`` too; assembled
    and verified as for ``local``) or an existing ``.gguf`` path; else a one-line error."""
    from promptopt.llm.embedded import EMBEDDED_MODELS, ensure_weights

    name = name_or_path.removeprefix("local:")
    if name in EMBEDDED_MODELS:
        return ensure_weights(EMBEDDED_MODELS[name], on_notice=on_notice)
    p = Path(name_or_path).expanduser()
    if p.suffix.lower() == ".gguf":
        if not p.is_file():
            raise UnknownNameError(f"GGUF file {p} does not exist")
        return p
    raise UnknownNameError(
        f"unknown model {name_or_path!r}: not one of {', '.join(EMBEDDED_MODELS)} and not a .gguf file"
    )


def check_out_dir(out: str | os.PathLike[str]) -> Path:
    """``out`` must not exist, or be an empty folder (a conversion never overwrites work)."""
    p = Path(out).expanduser()
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise ConfigError(f"{p} exists and is not an empty folder; choose another OUT or delete it")
    return p


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def clean_config(config: Any, dtype: str) -> Any:
    """A copy of ``config`` without what only described the source file (its quantization and
    path), with ``torch_dtype``/``dtype`` set to the saved dtype. The original is untouched."""
    cfg = copy.deepcopy(config)
    for key in SOURCE_ONLY_CONFIG_KEYS:
        if key in cfg.__dict__:
            delattr(cfg, key)
    for attr in ("torch_dtype", "dtype"):
        try:
            setattr(cfg, attr, dtype)
        except (AttributeError, TypeError):  # a transformers version without that attribute
            pass
    return cfg


def rebuild(model: Any, dtype: str) -> Any:
    """A fresh model of ``model``'s architecture from its cleaned config, holding ``model``'s
    weights cast to ``dtype`` (every parameter and buffer checked: no key may be missing)."""
    torch = require("torch", "train")
    transformers = require("transformers", "train")
    tdtype = getattr(torch, dtype)
    cfg = clean_config(model.config, dtype)
    fresh = transformers.AutoModelForCausalLM.from_config(cfg, dtype=tdtype)
    state = {k: v.to(tdtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    tied = set(getattr(fresh, "_tied_weights_keys", None) or ())
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ConfigError(
            f"the converted weights do not fit the model built from their config (missing "
            f"{missing[:3]}, unexpected {list(unexpected)[:3]})"
        )
    if getattr(cfg, "tie_word_embeddings", False) and hasattr(fresh, "tie_weights"):
        fresh.tie_weights()
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        fresh.generation_config = copy.deepcopy(gen)
    return fresh.eval()


def save_converted(model: Any, tokenizer: Any, out: Path, dtype: str = "bfloat16") -> Path:
    """Rebuild ``model`` in ``dtype`` and save it with ``tokenizer`` into ``out`` (atomically:
    a temporary folder beside it, renamed when complete)."""
    fresh = rebuild(model, dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the folder is an ordinary output
        if out.exists():
            out.rmdir()  # empty (checked before the work started)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _chat_template_from_gguf(path: Path) -> str | None:
    """The chat template stored in the GGUF metadata (``tokenizer.chat_template``), if any."""
    gguf = require("gguf", "train")
    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("tokenizer.chat_template")
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def load_gguf(path: Path) -> tuple[Any, Any]:
    """(model in float32, tokenizer with its chat template) read from a GGUF file."""
    for module in ("torch", "transformers", "accelerate", "gguf"):
        require(module, "train", what="converting a GGUF model (promptopt models convert)")
    torch = require("torch", "train")
    transformers = require("transformers", "train")
    kw: Mapping[str, Any] = {"gguf_file": path.name}
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), **kw)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=torch.float32, **kw)
    if not getattr(tok, "chat_template", None):
        template = _chat_template_from_gguf(path)
        if template:
            tok.chat_template = template
    return model, tok


def _load_checked(src: Path, info: GGUFInfo) -> tuple[Any, Any]:
    """:func:`load_gguf` of a file :func:`check_gguf` passed. What transformers still refuses
    then is the file's content, not a bug here: an architecture its GGUF loader does not map
    (``ValueError``/``KeyError``/``NotImplementedError``), or a tokenizer it cannot rebuild."""
    try:
        return load_gguf(src)
    except (ValueError, KeyError, NotImplementedError) as exc:
        arch = f" (architecture {info.architecture!r})" if info.architecture else ""
        detail = " ".join(str(exc).split()) or exc.__class__.__name__
        raise ConfigError(f"transformers cannot convert {src}{arch}: {detail}") from None


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def convert(
    name_or_path: str,
    out: str | os.PathLike[str],
    *,
    dtype: str = "bfloat16",
    on_notice: Notice | None = None,
) -> ConvertResult:
    """Convert an embedded model (or a .gguf path) into a ``save_pretrained`` folder at ``out``.

    Bad input fails before any loading and before anything is written: an unknown name, an
    ``out`` that holds something, a dtype not in :data:`DTYPES`, a missing ``train`` extra, a
    file that is not GGUF or is cut short (:func:`~promptopt.llm.gguf_file.check_gguf`), each in
    one line. A whole GGUF file transformers cannot read (an architecture it does not convert) is
    a one-line :class:`ConfigError` too, raised before the output folder is made.
    """
    check_dtype(dtype)
    dest = check_out_dir(out)
    for module in ("torch", "transformers", "accelerate", "gguf"):
        require(module, "train", what="converting a GGUF model (promptopt models convert)")
    src = resolve_gguf(name_or_path, on_notice=on_notice)
    info = check_gguf(src)
    t0 = time.perf_counter()
    model, tok = _load_checked(src, info)
    save_converted(model, tok, dest, dtype)
    params = sum(p.numel() for p in model.parameters())
    del model
    return ConvertResult(dest, src, dtype, folder_bytes(dest), time.perf_counter() - t0, params)
