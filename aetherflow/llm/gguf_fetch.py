"""Downloading `gguf = "hf:OWNER/REPO/FILE.gguf"` model files, once, into the user cache.

The file goes to `<user cache>/models/OWNER/REPO/FILE` (AETHER_HOME relocates it) and nowhere else. It is written
as `FILE.part`, resumed with an HTTP Range request after an interruption, checked (GGUF header and tensor sizes,
then `gguf_sha256` when configured) and only then renamed into place, so a file under its final name is always
whole. The source is `{AETHER_HF_ENDPOINT}/{OWNER}/{REPO}/resolve/main/{FILE}`, Hugging Face unless the variable
points elsewhere (a mirror, or a test's loopback server). httpx and rich are imported only when downloading.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aetherflow import paths
from aetherflow.errors import ConfigError, ModelUnavailableError
from aetherflow.llm.gguf_file import GGUFError, inspect_gguf

if TYPE_CHECKING:
    import httpx

HF_PREFIX = "hf:"
ENDPOINT_ENV = "AETHER_HF_ENDPOINT"
DEFAULT_ENDPOINT = "https://huggingface.co"
_CHUNK_BYTES = 1 << 20
# One name segment of a reference: no separators, no `..`, nothing a shell or a file system treats specially.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# (bytes written so far, total bytes or None when the server does not say)
ProgressSink = Callable[[int, int | None], None]


class DownloadError(ModelUnavailableError):
    """A model file could not be downloaded; whatever arrived is kept as `.part` for the next attempt."""


@dataclass(frozen=True)
class HFRef:
    """A model file on Hugging Face (or a mirror): `hf:OWNER/REPO/FILE.gguf`, FILE possibly in folders."""

    owner: str
    repo: str
    file: str

    def __str__(self) -> str:
        return f"{HF_PREFIX}{self.owner}/{self.repo}/{self.file}"

    def url(self, endpoint: str | None = None) -> str:
        """Where the file is downloaded from: the endpoint (default: AETHER_HF_ENDPOINT or Hugging Face)."""
        base = (endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")
        return f"{base}/{self.owner}/{self.repo}/resolve/main/{self.file}"

    def local_path(self) -> Path:
        """Where the downloaded file lives in the user cache (it may not exist yet)."""
        return paths.user_models_dir() / self.owner / self.repo / self.file


def is_hf_ref(gguf: str) -> bool:
    """True when a `gguf` setting names a file to download rather than a path."""
    return gguf.startswith(HF_PREFIX)


def parse_hf_ref(gguf: str) -> HFRef:
    """`hf:OWNER/REPO/FILE.gguf` as an HFRef, or a ConfigError saying what the reference must look like.

    Every segment is a plain name, so the cache path built from it cannot leave the models folder.
    """
    segments = gguf.removeprefix(HF_PREFIX).split("/")
    if len(segments) < 3 or not all(_SEGMENT.match(s) for s in segments) or not segments[-1].endswith(".gguf"):
        raise ConfigError(
            f"`gguf = \"{gguf}\"` is not a valid Hugging Face reference.",
            "Write it as hf:OWNER/REPO/FILE.gguf, e.g. "
            "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        )
    return HFRef(segments[0], segments[1], "/".join(segments[2:]))


def fetch(ref: HFRef, sha256: str | None = None, *, progress: ProgressSink | None = None) -> Path:
    """The local copy of `ref`, downloaded first when it is not in the cache yet (blocking).

    `progress` receives byte counts as they arrive; by default a rich progress bar is drawn on stderr. Raises
    DownloadError when the transfer fails (the `.part` file stays, and the next call resumes it), ConfigError
    when the file is not a whole GGUF file or its SHA-256 differs from `sha256` (then nothing is kept).
    """
    final = ref.local_path()
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(final):
        if final.is_file():  # another thread or process finished it while we waited
            return final
        part = final.with_name(final.name + ".part")
        with _progress_sink(ref, progress) as sink:
            _download(ref.url(), part, sink)
        _check(ref, part, sha256)
        os.replace(part, final)
    return final


def _download(url: str, part: Path, sink: ProgressSink) -> None:
    """Append the rest of the file at `url` to `part` (all of it when `part` is empty or the server has no Range)."""
    import httpx

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0)) as client:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 416 and _is_complete(response, have):
                    return  # an earlier attempt got every byte but stopped before the rename
                if response.status_code not in (200, 206) or (
                    response.status_code == 206 and not _starts_at(response, have)
                ):
                    raise _http_error(url, response.status_code, part)
                # 200: the server sent the whole file (no Range support, or nothing to resume): start over.
                _write(response, part, have if response.status_code == 206 else 0, sink)
    except httpx.HTTPError as exc:
        got = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"Downloading {url} failed after {got / 1_000_000:.1f} MB: {type(exc).__name__}: {exc}.",
            f"Run the command again (or `aether models pull`): it resumes from {part.name}.",
        ) from exc


def _write(response: httpx.Response, part: Path, start: int, sink: ProgressSink) -> None:
    length = response.headers.get("Content-Length")
    total = start + int(length) if length and length.isdigit() else None
    done = start
    sink(done, total)
    with part.open("r+b" if start else "wb") as out:
        out.seek(start)
        out.truncate()
        # Chunks as they arrive, not re-buffered: a dropped connection keeps every byte received for the resume.
        for chunk in response.iter_bytes():
            out.write(chunk)
            done += len(chunk)
            sink(done, total)


def _starts_at(response: httpx.Response, have: int) -> bool:
    """A 206 reply continues our `.part` file only if its Content-Range starts where the file ends."""
    return response.headers.get("Content-Range", "").startswith(f"bytes {have}-")


def _is_complete(response: httpx.Response, have: int) -> bool:
    """A 416 reply to `Range: bytes=HAVE-` with `Content-Range: bytes */HAVE` means we already have it all."""
    return have > 0 and response.headers.get("Content-Range", "") == f"bytes */{have}"


def _http_error(url: str, status: int, part: Path) -> DownloadError:
    if status in (206, 416):  # the `.part` file does not fit the file now served: it cannot be resumed
        part.unlink(missing_ok=True)
        return DownloadError(f"The partial download {part} does not match {url} any more; it was deleted.",
                             "Run the command again to download the file from the start.")
    fix = {401: "the repository may be gated or private", 403: "the repository may be gated or private",
           404: "check OWNER, REPO and the file name on the model's page"}.get(status, "try again later")
    return DownloadError(f"Downloading {url} failed: HTTP {status}.", f"Check the `gguf` reference: {fix}.")


def _check(ref: HFRef, part: Path, sha256: str | None) -> None:
    """The downloaded bytes are a whole GGUF file with the configured checksum, or they are deleted."""
    try:
        inspect_gguf(part)
    except GGUFError as exc:
        part.unlink(missing_ok=True)
        raise ConfigError(
            f"The file downloaded for {ref} is not a usable GGUF model ({exc}); it was deleted.",
            "Check that the reference names a .gguf file of that repository, then run `aether models pull`.",
        ) from exc
    if sha256 is None:
        return
    actual = _sha256(part)
    if actual != sha256.lower():
        part.unlink(missing_ok=True)
        raise ConfigError(
            f"The file downloaded for {ref} has SHA-256 {actual}, not the configured gguf_sha256 {sha256.lower()}; "
            "it was deleted.",
            "Copy the SHA-256 shown on the file's page on Hugging Face into gguf_sha256 (or remove the key), "
            "then run `aether models pull`.",
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def _exclusive(final: Path) -> Iterator[None]:
    """One download of `final` at a time: across threads (a lock) and processes (flock on its folder, which leaves
    no lock file behind)."""
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault(final, threading.Lock())
    with lock:
        try:
            import fcntl
        except ImportError:  # Windows: threads are still serialised; two processes could race on the part file
            yield
            return
        folder = os.open(final.parent, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            yield
        finally:
            os.close(folder)  # closing the descriptor releases the lock


@contextmanager
def _progress_sink(ref: HFRef, given: ProgressSink | None) -> Iterator[ProgressSink]:
    """`given`, or a rich progress bar on stderr for the duration of the download."""
    if given is not None:
        yield given
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress("{task.description}", *columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"Downloading {ref.file.rsplit('/', 1)[-1]}", total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update
