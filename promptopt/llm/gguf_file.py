"""Is this file a whole GGUF model? A stdlib reader of the GGUF layout that answers in one line.

Why a reader of our own: the tools that load GGUF files report a file that is not one, or one cut
short by an interrupted copy, in their own terms (``gguf``: "unpack_from requires a buffer of at
least 32 bytes", numpy reshape errors; llama.cpp: "Failed to load model from file"), and only once
loading has begun. :func:`check_gguf` reads the header, walks the metadata and the tensor table
(skipping the values, never allocating what a count claims) and compares the end of the last
tensor's data with the file's size, so ``models convert`` and ``local:FILE`` can refuse a bad file
in one :class:`~promptopt.errors.DataError` line before anything is written. It needs no extra
(the ``local`` extra has no ``gguf`` package) and reads through ``mmap``, so a 1 GB model's
metadata (a 150k-token vocabulary) is checked in well under a second.

The layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): ``b"GGUF"``, a uint32
version, tensor and key-value counts (uint64 since version 2), the key-value pairs, the tensor
infos (name, dims, ggml type, offset), then the tensor data at the next multiple of
``general.alignment`` (default 32). Version 1 (uint32 counts) is refused as llama.cpp refuses it.
Files written big-endian are recognised by their byte-swapped version, as the ``gguf`` reader does.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from promptopt.errors import DataError

__all__ = ["GGML_BLOCK_SIZES", "SUPPORTED_VERSIONS", "GGUFInfo", "check_gguf"]

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

#: ggml tensor type id → (elements per block, bytes per block), as ``gguf.GGML_QUANT_SIZES``
#: (a unit test keeps them equal). A type not listed here (a newer one) is not size-checked.
GGML_BLOCK_SIZES = MappingProxyType(
    {
        0: (1, 4),  # F32
        1: (1, 2),  # F16
        2: (32, 18),  # Q4_0
        3: (32, 20),  # Q4_1
        6: (32, 22),  # Q5_0
        7: (32, 24),  # Q5_1
        8: (32, 34),  # Q8_0
        9: (32, 40),  # Q8_1
        10: (256, 84),  # Q2_K
        11: (256, 110),  # Q3_K
        12: (256, 144),  # Q4_K
        13: (256, 176),  # Q5_K
        14: (256, 210),  # Q6_K
        15: (256, 292),  # Q8_K
        16: (256, 66),  # IQ2_XXS
        17: (256, 74),  # IQ2_XS
        18: (256, 98),  # IQ3_XXS
        19: (256, 50),  # IQ1_S
        20: (32, 18),  # IQ4_NL
        21: (256, 110),  # IQ3_S
        22: (256, 82),  # IQ2_S
        23: (256, 136),  # IQ4_XS
        24: (1, 1),  # I8
        25: (1, 2),  # I16
        26: (1, 4),  # I32
        27: (1, 8),  # I64
        28: (1, 8),  # F64
        29: (256, 56),  # IQ1_M
        30: (1, 2),  # BF16
        34: (256, 54),  # TQ1_0
        35: (256, 66),  # TQ2_0
        39: (32, 17),  # MXFP4
    }
)

#: metadata value type id → its size in bytes (8: string and 9: array have none of their own)
_SCALAR_SIZES = MappingProxyType({0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8})
_STRING, _ARRAY = 8, 9
_MAX_ARRAY_DEPTH = 8  # arrays of arrays: no real file nests deeper
_MAX_DIMS = 8  # ggml tensors have at most 4 dimensions; llama.cpp allows no more than this
# The smallest encodings: a key-value pair (empty key, a uint8) and a tensor info (empty name,
# one dimension, type, offset). Counts claiming more than the file can hold are refused up front.
_MIN_KV_BYTES = 8 + 4 + 1
_MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8


@dataclass(frozen=True)
class GGUFInfo:
    """What :func:`check_gguf` read: enough to say what the file holds, nothing loaded."""

    path: Path
    version: int
    tensor_count: int
    kv_count: int
    architecture: str | None
    alignment: int
    data_offset: int  #: where the tensor data starts
    data_end: int  #: where the last tensor's data ends (the file may be longer: padding)
    file_size: int


class _Truncated(Exception):
    """A read ran past the end of the file (turned into one DataError line by check_gguf)."""


class _Cursor:
    """Sequential little- or big-endian reads over a buffer that refuse to run past its end."""

    def __init__(self, buf: mmap.mmap | bytes, endian: str, pos: int) -> None:
        self.buf, self.endian, self.pos, self.size = buf, endian, pos, len(buf)

    def take(self, n: int) -> int:
        """Skip ``n`` bytes; return where they started."""
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Truncated
        self.pos = start + n
        return start

    def unpack(self, fmt: str) -> int:
        code = self.endian + fmt
        return int(struct.unpack_from(code, self.buf, self.take(struct.calcsize(code)))[0])

    def string(self) -> bytes:
        n = self.unpack("Q")
        start = self.take(n)
        return bytes(self.buf[start : start + n])

    def skip_value(self, vtype: int, depth: int = 0) -> None:
        if vtype in _SCALAR_SIZES:
            self.take(_SCALAR_SIZES[vtype])
        elif vtype == _STRING:
            self.take(self.unpack("Q"))
        elif vtype == _ARRAY and depth < _MAX_ARRAY_DEPTH:
            etype, count = self.unpack("I"), self.unpack("Q")
            if etype in _SCALAR_SIZES:
                self.take(count * _SCALAR_SIZES[etype])  # one bounds check, not a loop
            else:
                if count > self.size - self.pos:  # each element takes at least one byte
                    raise _Truncated
                for _ in range(count):
                    self.skip_value(etype, depth + 1)
        else:
            raise ValueError(f"unknown metadata value type {vtype}")


def _header(buf: mmap.mmap | bytes, where: str) -> tuple[str, int]:
    """(struct byte order, version) of a file that starts with the GGUF magic; else DataError."""
    if buf[:4] != MAGIC:
        start = bytes(buf[:4])
        raise DataError(f"{where} is not a GGUF file: it starts with {start!r}, not {MAGIC!r}")
    if len(buf) < 8:
        raise DataError(f"{where} is truncated: it ends inside its GGUF header ({len(buf)} bytes)")
    (little,) = struct.unpack_from("<I", buf, 4)
    (big,) = struct.unpack_from(">I", buf, 4)
    for endian, version in (("<", little), (">", big)):
        if version in SUPPORTED_VERSIONS:
            return endian, version
    supported = " or ".join(map(str, SUPPORTED_VERSIONS))
    raise DataError(f"{where}: GGUF version {little} is not supported (only {supported})")


def _walk(buf: mmap.mmap | bytes, where: str) -> GGUFInfo:
    endian, version = _header(buf, where)
    cur = _Cursor(buf, endian, 8)
    tensor_count, kv_count = cur.unpack("Q"), cur.unpack("Q")
    room = cur.size - cur.pos
    if tensor_count * _MIN_TENSOR_BYTES + kv_count * _MIN_KV_BYTES > room:
        raise DataError(
            f"{where} is truncated or corrupt: its header announces {tensor_count} tensors and "
            f"{kv_count} metadata entries, more than its {cur.size} bytes can hold"
        )
    architecture: str | None = None
    alignment = DEFAULT_ALIGNMENT
    for _ in range(kv_count):
        key = cur.string()
        vtype = cur.unpack("I")
        if key == b"general.alignment" and vtype == 4:
            alignment = cur.unpack("I")
        elif key == b"general.architecture" and vtype == _STRING:
            architecture = cur.string().decode("utf-8", "replace")
        else:
            cur.skip_value(vtype)
    if alignment <= 0 or alignment % 8:
        raise DataError(f"{where}: general.alignment {alignment} is not a positive multiple of 8")
    data_end_rel = 0
    for _ in range(tensor_count):
        cur.string()
        n_dims = cur.unpack("I")
        if not 1 <= n_dims <= _MAX_DIMS:
            raise DataError(f"{where} is corrupt: a tensor with {n_dims} dimensions")
        elements = math.prod(cur.unpack("Q") for _ in range(n_dims))
        ggml_type, offset = cur.unpack("I"), cur.unpack("Q")
        block = GGML_BLOCK_SIZES.get(ggml_type)
        if block is not None:
            data_end_rel = max(data_end_rel, offset + -(-elements // block[0]) * block[1])
    data_offset = -(-cur.pos // alignment) * alignment
    data_end = data_offset + data_end_rel if tensor_count else cur.pos
    if data_end > cur.size:
        raise DataError(
            f"{where} is truncated: its tensors need {data_end} bytes, the file has {cur.size} "
            "(an interrupted download or copy?)"
        )
    return GGUFInfo(
        path=Path(where),
        version=version,
        tensor_count=tensor_count,
        kv_count=kv_count,
        architecture=architecture,
        alignment=alignment,
        data_offset=data_offset,
        data_end=data_end,
        file_size=cur.size,
    )


def check_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """The layout of the GGUF file at ``path``, after checking that it is one and is complete.

    Raises :class:`DataError` (one line naming the file) when it does not exist, is not a GGUF
    file, has a version other than :data:`SUPPORTED_VERSIONS`, or ends before its metadata, its
    tensor table or its tensor data do. Reads only the metadata and tensor table (memory-mapped).
    """
    p = Path(path).expanduser()
    where = str(p)
    if not p.is_file():
        raise DataError(f"GGUF file {where} does not exist" if not p.exists() else f"{where} is not a file")
    try:
        with open(p, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise DataError(f"{where} is not a GGUF file: it is empty")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _walk(buf, where)
    except _Truncated:
        raise DataError(
            f"{where} is truncated: it ends inside its GGUF metadata (an interrupted download or copy?)"
        ) from None
    except ValueError as exc:  # an unknown metadata value type: not a file any GGUF reader can use
        raise DataError(f"{where} is corrupt: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read {where}: {exc.strerror or exc}") from None
