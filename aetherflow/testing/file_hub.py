"""A static file server on loopback laid out like the Hugging Face hub, for tests of `gguf = "hf:..."` downloads.

`serve_hub(root, {"OWNER/REPO/FILE.gguf": source})` links each source file at `OWNER/REPO/resolve/main/FILE.gguf`
under `root` and serves `root` until the context ends; point AETHER_HF_ENDPOINT at the URL it yields. Python's own
SimpleHTTPRequestHandler answers whole files only (no Range), which is what a server without resume support does.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """Silent: a test's output is not the place for an access log."""


def hub_path(root: Path, ref: str) -> Path:
    """Where `OWNER/REPO/FILE` is served from under `root`."""
    owner, repo, name = ref.split("/", 2)
    return root / owner / repo / "resolve" / "main" / name


@contextmanager
def serve_hub(root: Path, files: dict[str, Path]) -> Iterator[str]:
    """Serve `files` (hub reference -> file on disk) from `root`; yields the base URL."""
    for ref, source in files.items():
        target = hub_path(root, ref)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
