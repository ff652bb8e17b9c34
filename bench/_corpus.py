"""The benchmark corpus: a large open-source Python project fetched at benchmark time, never committed.

`fetch_sdist` downloads a source distribution with pip into bench/.cache (gitignored) and unpacks it once;
`strip_docstrings` writes a copy of a tree with every docstring removed, which the retrieval benchmark indexes
so that the docstrings can serve as queries without also being the answer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
# Django 5.1.4: 2,788 .py files (879 in the package, the rest its test suite), pure Python.
DEFAULT_PROJECT = ("Django", "5.1.4")


def fetch_sdist(name: str = DEFAULT_PROJECT[0], version: str = DEFAULT_PROJECT[1]) -> Path:
    """The unpacked source tree of NAME==VERSION, downloading and extracting it on first use."""
    target = CACHE / "src" / f"{name}-{version}"
    if target.is_dir():
        return target
    downloads = CACHE / "sdist"
    archive = _find_archive(downloads, name, version)
    if archive is None:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   f"{name}=={version}", "-d", str(downloads)]
        subprocess.run(command, check=True)
        archive = _find_archive(downloads, name, version)
    if archive is None:
        raise SystemExit(f"pip downloaded no source archive for {name}=={version} into {downloads}")
    _extract(archive, CACHE / "src")
    found = next((p for p in (CACHE / "src").iterdir() if p.name.lower() == f"{name}-{version}".lower()), None)
    if found is None:
        raise SystemExit(f"{archive.name} did not unpack to a folder named {name}-{version}")
    return found


def _find_archive(folder: Path, name: str, version: str) -> Path | None:
    if not folder.is_dir():
        return None
    prefixes = {f"{name}-{version}".lower(), f"{name.replace('-', '_')}-{version}".lower()}
    for path in folder.iterdir():
        stem = path.name.lower()
        if any(stem.startswith(p) for p in prefixes) and stem.endswith((".tar.gz", ".zip")):
            return path
    return None


def _extract(archive: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(into)
        return
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")  # refuses absolute paths and links leaving the folder


def python_files(root: Path) -> list[Path]:
    """Every .py file under `root`, sorted, as paths relative to it."""
    return sorted(p.relative_to(root) for p in root.rglob("*.py") if p.is_file())


@dataclass(frozen=True)
class Documented:
    """A function that had a docstring in the original tree, located in the stripped copy."""

    path: str
    qualname: str
    name: str
    start_line: int  # the `def` line in the stripped copy
    end_line: int
    docstring: str


def strip_docstrings(src: Path, dst: Path) -> list[Documented]:
    """Copy every .py file of `src` to `dst` without docstrings; return the functions that had one.

    A body that was only a docstring becomes `pass`. Files that do not parse are copied unchanged.
    """
    documented: list[Documented] = []
    for relative in python_files(src):
        text = (src / relative).read_text(encoding="utf-8", errors="replace")
        stripped, docs = _strip_file(text)
        out = dst / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(stripped, encoding="utf-8")
        if docs:
            documented.extend(_locate(relative.as_posix(), stripped, docs))
    return documented


_Scoped = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _strip_file(text: str) -> tuple[str, dict[tuple[str, int], str]]:
    """The text without docstrings, and {(qualname, occurrence): docstring} of its functions."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return text, {}
    lines = text.split("\n")
    replaced: dict[int, str | None] = {}  # line number → replacement (None: delete)
    docs: dict[tuple[str, int], str] = {}
    seen: dict[str, int] = {}
    for node, qualname in _walk(tree, ""):
        first = node.body[0] if node.body else None
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            continue
        if not isinstance(node, ast.Module) and first.lineno == node.lineno:
            continue  # a one-line `def f(): "doc"`: left alone
        end = first.end_lineno or first.lineno
        for number in range(first.lineno, end + 1):
            replaced[number] = None
        if len(node.body) == 1:
            replaced[first.lineno] = " " * first.col_offset + "pass"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            occurrence = seen.get(qualname, 0)
            seen[qualname] = occurrence + 1
            docs[(qualname, occurrence)] = ast.get_docstring(node) or ""
    kept = [replaced.get(n, line) for n, line in enumerate(lines, start=1)]
    stripped = "\n".join(line for line in kept if line is not None)
    try:
        ast.parse(stripped)
    except SyntaxError:
        return text, {}
    return stripped, docs


def _walk(node: ast.AST, prefix: str):
    """(node, qualname) for the module, every class and every function, depth first in source order."""
    if isinstance(node, _Scoped):
        yield node, prefix
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _walk(child, f"{prefix}.{child.name}" if prefix else child.name)
        elif not isinstance(child, _Scoped):
            yield from _walk(child, prefix)


def _locate(path: str, stripped: str, docs: dict[tuple[str, int], str]) -> list[Documented]:
    """Find the documented functions in the stripped text, matching by qualname and occurrence."""
    found: list[Documented] = []
    seen: dict[str, int] = {}
    for node, qualname in _walk(ast.parse(stripped), ""):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        occurrence = seen.get(qualname, 0)
        seen[qualname] = occurrence + 1
        doc = docs.get((qualname, occurrence))
        if doc:
            found.append(Documented(path, qualname, node.name, node.lineno, node.end_lineno or node.lineno, doc))
    return found
