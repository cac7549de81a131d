"""check_gguf: a whole GGUF file passes with its layout read right; a file that is not GGUF, has an
unsupported version, or is cut anywhere (header, metadata, tensor table, tensor data) is one
DataError line. The files are written here byte by byte (no ``gguf`` package needed); where the
package is installed, its own writer's output and its type table are checked against ours."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from promptopt.errors import DataError
from promptopt.llm.gguf_file import GGML_BLOCK_SIZES, check_gguf

F32, Q4_0 = 0, 2
UINT32, STRING, ARRAY = 4, 8, 9


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_bytes(
    *,
    version: int = 3,
    tensors: tuple[tuple[str, tuple[int, ...], int], ...] = (("w", (4, 8), F32), ("q", (32,), Q4_0)),
    alignment: int | None = None,
) -> bytes:
    """A small GGUF file: a string, an array of strings (a vocabulary), optional alignment, and
    ``tensors`` (name, dims, ggml type) laid out one after the other, zero-filled."""
    kvs = [
        _str("general.architecture") + struct.pack("<I", STRING) + _str("tiny"),
        _str("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", ARRAY, STRING, 3)
        + b"".join(map(_str, ("a", "bb", "ccc"))),
    ]
    if alignment is not None:
        kvs.append(_str("general.alignment") + struct.pack("<II", UINT32, alignment))
    align = alignment or 32
    infos, offset, data = [], 0, b""
    for name, dims, ggml_type in tensors:
        block, size = GGML_BLOCK_SIZES[ggml_type]
        n = 1
        for d in dims:
            n *= d
        nbytes = n // block * size
        infos.append(
            _str(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
            + struct.pack("<IQ", ggml_type, offset)
        )  # fmt: skip
        pad = -nbytes % align
        data += b"\x00" * nbytes + (b"\x00" * pad if name != tensors[-1][0] else b"")
        offset += nbytes + pad
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(infos)
    return head + b"\x00" * (-len(head) % align) + data


def _write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_a_whole_file_is_read_right(tmp_path: Path) -> None:
    data = gguf_bytes()
    info = check_gguf(_write(tmp_path, data))
    assert (info.version, info.tensor_count, info.kv_count) == (3, 2, 2)
    assert info.architecture == "tiny" and info.alignment == 32
    assert info.data_end == info.file_size == len(data)  # the last tensor ends where the file does


def test_alignment_from_the_metadata(tmp_path: Path) -> None:
    data = gguf_bytes(alignment=64)
    info = check_gguf(_write(tmp_path, data))
    assert info.alignment == 64 and info.data_offset % 64 == 0 and info.data_end == len(data)


def test_every_cut_is_one_line(tmp_path: Path) -> None:
    data = gguf_bytes()
    for cut in range(len(data)):  # every prefix: header, metadata, tensor table, tensor data
        p = _write(tmp_path, data[:cut])
        with pytest.raises(DataError) as exc:
            check_gguf(p)
        msg = str(exc.value)
        assert "\n" not in msg and str(p) in msg, (cut, msg)
        expected = "is empty" if cut == 0 else "not a GGUF file" if cut < 4 else "is truncated"
        assert expected in msg, (cut, msg)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"hello world, not a model", r"is not a GGUF file: it starts with b'hell'"),
        (b"PK\x03\x04" + b"\x00" * 64, "is not a GGUF file"),
        (b"", "is not a GGUF file: it is empty"),
    ],
)
def test_not_gguf(tmp_path: Path, data: bytes, match: str) -> None:
    with pytest.raises(DataError, match=match):
        check_gguf(_write(tmp_path, data))


def test_unsupported_version(tmp_path: Path) -> None:
    for version in (1, 4, 99):
        with pytest.raises(DataError, match=f"GGUF version {version} is not supported"):
            check_gguf(_write(tmp_path, gguf_bytes(version=version)))


def test_absurd_counts_are_refused_without_walking(tmp_path: Path) -> None:
    data = b"GGUF" + struct.pack("<IQQ", 3, 2**60, 2**60) + b"\x00" * 64
    with pytest.raises(DataError, match="announces .* more than its 88 bytes can hold"):
        check_gguf(_write(tmp_path, data))


def test_big_endian_file(tmp_path: Path) -> None:
    data = (
        b"GGUF" + struct.pack(">IQQ", 3, 0, 1) + struct.pack(">Q", 1) + b"k" + struct.pack(">II", UINT32, 7)
    )
    info = check_gguf(_write(tmp_path, data))
    assert (info.version, info.tensor_count, info.kv_count) == (3, 0, 1)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        check_gguf(tmp_path / "absent.gguf")
    with pytest.raises(DataError, match="is not a file"):
        check_gguf(tmp_path)


def test_block_sizes_match_the_gguf_package() -> None:
    gguf = pytest.importorskip("gguf")
    theirs = {int(k): tuple(v) for k, v in gguf.GGML_QUANT_SIZES.items()}
    for type_id, sizes in GGML_BLOCK_SIZES.items():
        assert theirs.get(type_id) == sizes, type_id


def test_agrees_with_the_gguf_writer(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    path = tmp_path / "w.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_tensor("a", np.zeros((3, 5), dtype=np.float32))
    w.add_tensor("b", np.zeros((7,), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    info = check_gguf(path)
    assert info.architecture == "llama" and info.tensor_count == 2
    assert info.data_end <= info.file_size
    data = path.read_bytes()
    with pytest.raises(DataError, match="is truncated: its tensors need"):
        check_gguf(_write(tmp_path, data[: info.data_end - 1], "cut.gguf"))


def test_local_spec_refuses_a_bad_file_when_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``local:FILE`` checks the user's file when the backend is built, so a run never starts with
    a model whose every call fails (before, `opro run` exited 0 with every proposal failed)."""
    from promptopt.llm import local

    monkeypatch.setattr(local, "require_installed", lambda *a, **k: None)  # llama_cpp not needed here
    cut = _write(tmp_path, gguf_bytes()[:100], "cut.gguf")
    with pytest.raises(DataError, match="cut.gguf is truncated"):
        local.from_spec(str(cut))
    good = local.from_spec(str(_write(tmp_path, gguf_bytes(), "good.gguf")))
    assert good._llama is None  # checking read metadata only; nothing was loaded
    good.close()
