"""`promptopt models convert`: bad input fails in one line before any loading; the rebuild drops
the source-only config keys, keeps every weight and saves a loadable folder (tiny Qwen2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.cli import main
from promptopt.errors import ConfigError, MissingExtraError, UnknownNameError
from promptopt.llm import convert as conv


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code or 0), capsys.readouterr().err


def test_unknown_name_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = _run_cli(["models", "convert", "no-such-model", str(tmp_path / "o")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "unknown model 'no-such-model'" in err


def test_missing_gguf_path(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="does not exist"):
        conv.resolve_gguf(str(tmp_path / "x.gguf"))


def test_out_not_empty_refused_before_loading(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    code, err = _run_cli(["models", "convert", "qwen2.5-coder-0.5b", str(tmp_path / "o")], capsys)
    assert code == 2 and "is not an empty folder" in err
    assert (tmp_path / "o" / "keep.txt").read_text() == "mine"
    (tmp_path / "f").write_text("a file")
    with pytest.raises(ConfigError, match="not an empty folder"):
        conv.check_out_dir(tmp_path / "f")
    (tmp_path / "empty").mkdir()
    assert conv.check_out_dir(tmp_path / "empty") == tmp_path / "empty"


def test_bad_dtype() -> None:
    with pytest.raises(ConfigError, match="--dtype"):
        conv.convert("qwen2.5-coder-0.5b", "/nonexistent/out", dtype="int8")


def test_missing_extra_names_train(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gguf", None)  # makes `import gguf` fail as if not installed
    with pytest.raises(MissingExtraError, match="'train' extra"):
        conv.convert("qwen2.5-coder-0.5b", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_models_without_subcommand_still_reports(capsys: pytest.CaptureFixture[str]) -> None:
    main(["models", "--json"])  # the group's callback still runs the report
    data = json.loads(capsys.readouterr().out)
    assert "local_models" in data


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from promptopt.testing import tiny_qwen2

    return tiny_qwen2(tmp_path_factory.mktemp("tiny"), ["hello world", "the cat sat"] * 20)


def test_clean_config_drops_source_keys(tiny_model: Path) -> None:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_model)
    cfg.quantization_config = {"quant_method": "gguf"}
    cleaned = conv.clean_config(cfg, "bfloat16")
    assert "quantization_config" not in cleaned.to_dict()
    assert "quantization_config" in cfg.to_dict()  # the original is untouched
    assert cleaned.hidden_size == cfg.hidden_size


def test_save_converted_keeps_weights_and_loads(tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = AutoModelForCausalLM.from_pretrained(tiny_model, torch_dtype=torch.float32)
    src.config.quantization_config = {"quant_method": "gguf"}
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    out = conv.save_converted(src, tok, tmp_path / "out", "bfloat16")
    saved = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in saved
    assert not list(tmp_path.glob(".out.*"))  # the temporary folder was renamed
    back = AutoModelForCausalLM.from_pretrained(out)
    assert back.dtype == torch.bfloat16
    ref = src.state_dict()
    for k, v in back.state_dict().items():
        assert torch.equal(v, ref[k].to(torch.bfloat16)), k
    assert AutoTokenizer.from_pretrained(out).chat_template == tok.chat_template


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<html>404 not found</html>", "is not a GGUF file"),
        (
            b"GGUF\x03\x00\x00\x00" + (1).to_bytes(8, "little") + (2).to_bytes(8, "little") + b"\x05",
            "truncated",
        ),
    ],
)
def test_bad_gguf_file_is_one_line_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, message: str
) -> None:
    """A non-GGUF or truncated file: one line, exit 2 (was "internal error", exit 1), and no
    output folder or temporary folder left beside it."""
    pytest.importorskip("gguf")  # the train extra is checked first; with it, the file is checked
    pytest.importorskip("transformers")
    src = tmp_path / "model.gguf"
    src.write_bytes(content)
    out = tmp_path / "out" / "o"
    code, err = _run_cli(["models", "convert", str(src), str(out)], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and message in err and str(src) in err and "internal error" not in err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


def test_gguf_transformers_cannot_read_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole GGUF file of an architecture transformers does not convert: a ConfigError naming
    the file and its architecture, before any folder is made."""
    from tests.unit.test_gguf_file import gguf_bytes

    src = tmp_path / "m.gguf"
    src.write_bytes(gguf_bytes())

    def unsupported(path: Path) -> None:
        raise ValueError("GGUF model with architecture tiny is not supported yet.")

    monkeypatch.setattr(conv, "load_gguf", unsupported)
    monkeypatch.setattr(conv, "require", lambda *a, **k: None)
    with pytest.raises(ConfigError, match=r"transformers cannot convert .*m.gguf \(architecture 'tiny'\)"):
        conv.convert(str(src), tmp_path / "o")
    assert not (tmp_path / "o").exists()
