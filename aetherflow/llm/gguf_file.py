"""Reading a GGUF file's header without loading the model: is it GGUF, is it whole, what is inside.

llama-cpp-python can take the whole process down on some broken files (a truncated download, a file that is not
GGUF at all), so every file is checked here first. The format is simple: the magic `GGUF`, a version, the tensor
and metadata counts, the metadata as typed key-value pairs, then one record per tensor (name, shape, type,
offset into the data section), and the tensor data at the next multiple of `general.alignment`. Reading the
records tells how long the file must be, so a short file is caught before llama.cpp maps it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# A metadata string or array longer than this is a broken length field, not data (the largest real arrays, token
# lists of big vocabularies, hold a few hundred thousand entries).
_MAX_COUNT = 1 << 28

GGUFProblem = Literal["missing", "not_gguf", "truncated", "unsupported"]

# Metadata value types: struct format of the scalar ones; 8 is a string, 9 an array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# ggml tensor types: (elements per block, bytes per block), from ggml's type traits.
_TENSOR_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17),
}

# llama.cpp's `general.file_type` (enum llama_ftype): the quantisation a file was made with.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
    37: "TQ2_0", 38: "MXFP4_MOE",
}

MetaValue = int | float | bool | str


class GGUFError(Exception):
    """The file cannot be used as a GGUF model; `problem` says which way it is broken."""

    def __init__(self, problem: GGUFProblem, message: str) -> None:
        super().__init__(message)
        self.problem: GGUFProblem = problem


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF file's header says about the model in it. Arrays are summarised by their length."""

    path: Path
    size_bytes: int
    version: int
    tensor_count: int
    metadata: dict[str, MetaValue] = field(repr=False)
    array_lengths: dict[str, int] = field(repr=False)

    @property
    def architecture(self) -> str:
        """`general.architecture`, e.g. 'llama' or 'qwen2'."""
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        """`general.name`, else the file name."""
        return str(self.metadata.get("general.name") or self.path.name)

    @property
    def quantisation(self) -> str:
        """The quantisation from `general.file_type` ('Q4_K_M'), or 'unknown'."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and not isinstance(file_type, bool):
            return FILE_TYPES.get(file_type, f"type {file_type}")
        return "unknown"

    @property
    def context_length(self) -> int | None:
        """The context length the model was trained with (`<architecture>.context_length`), if the file says."""
        value = self.metadata.get(f"{self.architecture}.context_length")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def summary(self) -> str:
        """One line for `aether doctor` and `aether models`: name, quantisation, size and trained context."""
        context = f", trained context {self.context_length}" if self.context_length else ""
        return f"{self.name} ({self.quantisation}), {self.size_bytes / 1_000_000:.0f} MB{context}"


def inspect_gguf(path: Path) -> GGUFInfo:
    """Read and check `path`'s GGUF header and tensor table, without loading the model.

    Raises GGUFError: "missing" (no such file), "not_gguf" (wrong magic), "truncated" (shorter than its header or
    tensor data says), "unsupported" (a GGUF version this reader does not know).
    """
    if not path.is_file():
        raise GGUFError("missing", f"{path} does not exist")
    size = path.stat().st_size
    with path.open("rb") as handle:
        reader = _Reader(handle, size, path)
        version, tensor_count, kv_count = reader.header()
        metadata, arrays = reader.metadata(kv_count)
        needed = reader.tensor_table(tensor_count, _alignment(metadata))
    if needed > size:
        raise GGUFError(
            "truncated",
            f"{path} is truncated: its tensors need {needed:,} bytes but the file has {size:,} "
            "(an interrupted download or copy)",
        )
    return GGUFInfo(path, size, version, tensor_count, metadata, arrays)


def _alignment(metadata: dict[str, MetaValue]) -> int:
    value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    return value if isinstance(value, int) and value > 0 else DEFAULT_ALIGNMENT


class _Reader:
    """Sequential little-endian reads that turn running out of file into a "truncated" GGUFError."""

    def __init__(self, handle: BinaryIO, size: int, path: Path) -> None:
        self._handle = handle
        self._size = size
        self._path = path

    def _read(self, count: int) -> bytes:
        data = self._handle.read(count)
        if len(data) < count:
            raise GGUFError(
                "truncated", f"{self._path} is truncated: it ends inside its header after {self._size:,} bytes"
            )
        return data

    def _unpack(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self._read(struct.calcsize(fmt)))[0]
        return value

    def _count(self) -> int:
        value = int(self._unpack("<Q"))
        if value > _MAX_COUNT:
            raise GGUFError("truncated", f"{self._path} is damaged: a length field says {value:,}")
        return value

    def _string(self) -> str:
        return self._read(self._count()).decode("utf-8", "replace")

    def header(self) -> tuple[int, int, int]:
        """(version, tensor count, metadata count) after checking the magic."""
        magic = self._handle.read(4)
        if magic != GGUF_MAGIC:
            raise GGUFError(
                "not_gguf", f"{self._path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')"
            )
        version = int(self._unpack("<I"))
        if version not in (2, 3):
            raise GGUFError("unsupported", f"{self._path} is GGUF version {version}; versions 2 and 3 are supported")
        return version, self._count(), self._count()

    def metadata(self, count: int) -> tuple[dict[str, MetaValue], dict[str, int]]:
        """Scalars and strings by key, and the length of each array (their items are skipped, not kept)."""
        values: dict[str, MetaValue] = {}
        arrays: dict[str, int] = {}
        for _ in range(count):
            key = self._string()
            kind = int(self._unpack("<I"))
            if kind == _ARRAY:
                arrays[key] = self._skip_array()
            else:
                values[key] = self._value(kind)
        return values, arrays

    def _value(self, kind: int) -> MetaValue:
        if kind == _STRING:
            return self._string()
        fmt = _SCALARS.get(kind)
        if fmt is None:
            raise GGUFError("truncated", f"{self._path} is damaged: unknown metadata type {kind}")
        return self._unpack(fmt)

    def _skip_array(self) -> int:
        kind = int(self._unpack("<I"))
        length = self._count()
        if kind == _STRING:
            for _ in range(length):
                self._handle.seek(self._count(), 1)
        elif kind in _SCALARS:
            self._handle.seek(struct.calcsize(_SCALARS[kind]) * length, 1)
        else:
            for _ in range(length):  # nested arrays and arrays of strings' kin: rare, but legal
                if kind == _ARRAY:
                    self._skip_array()
                else:
                    self._value(kind)
        if self._handle.tell() > self._size:
            raise GGUFError("truncated", f"{self._path} is truncated: it ends inside its metadata")
        return length

    def tensor_table(self, count: int, alignment: int) -> int:
        """Read every tensor record; return the file size the tensor data needs."""
        end_of_data = 0
        for _ in range(count):
            self._string()
            dims = [self._count() for _ in range(int(self._unpack("<I")))]
            ggml_type = int(self._unpack("<I"))
            offset = int(self._unpack("<Q"))
            end_of_data = max(end_of_data, offset + _tensor_bytes(ggml_type, dims))
        data_start = -(-self._handle.tell() // alignment) * alignment
        return data_start + end_of_data


def _tensor_bytes(ggml_type: int, dims: list[int]) -> int:
    """Bytes of one tensor's data; 0 for a type this table lacks (its offset is still checked)."""
    block = _TENSOR_TYPES.get(ggml_type)
    if block is None:
        return 0
    elements = 1
    for dim in dims:
        elements *= dim
    per_block, block_bytes = block
    return -(-elements // per_block) * block_bytes
