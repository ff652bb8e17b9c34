"""File helpers shared by the snapshot, apply and undo: content hashes, durable atomic writes."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def file_sha256(path: Path) -> str | None:
    """sha256 of what is at `path` without following a final symlink; None when nothing is there.

    A symlink hashes as its target text (prefixed) so that re-pointing a link counts as a change; a folder
    (a submodule, say) hashes as None because it is not a file we ever write.
    """
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None  # NotADirectoryError: a folder on the way is now a file, so nothing is at `path`
    if stat.S_ISLNK(st.st_mode):
        return "symlink:" + hashlib.sha256(os.readlink(path).encode("utf-8", "surrogateescape")).hexdigest()
    if not stat.S_ISREG(st.st_mode):
        return None
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bytes_sha256(data: bytes | None) -> str | None:
    """sha256 of `data`, or None for 'no file'."""
    return None if data is None else hashlib.sha256(data).hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write a new file (it must not exist), flush it to disk and set its mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def atomic_replace(path: Path, data: bytes, mode: int | None, tmp: Path) -> None:
    """Replace `path` by `data` through `tmp` (same folder) and os.replace, so a reader sees old or new bytes."""
    tmp.unlink(missing_ok=True)
    try:
        write_durable(tmp, data, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def is_binary(data: bytes) -> bool:
    """True for content we show as 'binary' rather than diff: a NUL byte early on, or not UTF-8."""
    if b"\0" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
