"""Path normalisation and refusal (issue 7 items 1-3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aetherflow.errors import UnsafePathError
from aetherflow.workspace.safety import is_protected, safe_relpath


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("src/app.py", "src/app.py"),
        ("./src//app.py", "src/app.py"),
        ("src/../README.md", "README.md"),
        ("src\\app.py", "src/app.py"),
        ("  src/app.py ", "src/app.py"),
        (".", "."),
    ],
)
def test_normalises_paths_inside_the_root(tmp_path: Path, given: str, expected: str) -> None:
    assert safe_relpath(tmp_path, given) == expected


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("../../etc/passwd", "resolves outside the repository"),
        ("/etc/passwd", "is absolute"),
        ("~/.bashrc", "home folder"),
        ("~root/.ssh/id_rsa", "home folder"),
        ("a/../../x", "resolves outside the repository"),
        ("..\\..\\windows\\system32", "resolves outside the repository"),
        ("src\\..\\..\\x", "resolves outside the repository"),
        ("C:\\Windows\\win.ini", "is absolute"),
        ("c:/x", "is absolute"),
        ("\\\\server\\share", "is absolute"),
        ("src/app.py\0.txt", "NUL byte"),
        ("", "is empty"),
    ],
)
def test_refuses_each_escaping_form(tmp_path: Path, given: str, reason: str) -> None:
    with pytest.raises(UnsafePathError) as info:
        safe_relpath(tmp_path, given)
    assert reason in info.value.message
    assert "relative to the repository root" in (info.value.hint or "")


def test_message_names_the_path_for_the_model(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError) as info:
        safe_relpath(tmp_path, "../../etc/passwd")
    assert info.value.message == "path '../../etc/passwd' resolves outside the repository"


def test_symlinked_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "repo", tmp_path / "user-home"
    root.mkdir()
    outside.mkdir()
    (outside / ".bashrc").write_text("secret")
    os.symlink(outside, root / "linked")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_relpath(root, "linked/.bashrc")
    with pytest.raises(UnsafePathError):
        safe_relpath(root, "linked/new-file.txt")  # writing a new file through the link
    with pytest.raises(UnsafePathError):
        safe_relpath(root, "linked")


def test_symlinked_file_pointing_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "target.txt").write_text("x")
    os.symlink(tmp_path / "target.txt", root / "link.txt")
    with pytest.raises(UnsafePathError):
        safe_relpath(root, "link.txt")


def test_symlink_inside_the_root_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "alias")
    assert safe_relpath(tmp_path, "alias/x.py") == "alias/x.py"


@pytest.mark.parametrize(
    "rel",
    [
        ".git/config",
        ".git/hooks/pre-commit",
        ".git",
        "vendor/lib/.git/config",
        ".GIT/config",
        ".aetherflow/ledger.sqlite",
        ".github/workflows/ci.yml",
        ".gitlab-ci.yml",
        ".gitignore",
        ".gitattributes",
        "sub/.gitmodules",
        "aetherflow.toml",
        ".pre-commit-config.yaml",
        ".husky/pre-commit",
        ".envrc",
    ],
)
def test_protected_paths(rel: str) -> None:
    assert is_protected(rel)


@pytest.mark.parametrize(
    "rel", ["src/app.py", "docs/aetherflow.toml", ".github/CODEOWNERS", "github/workflows.py", "README.md"]
)
def test_ordinary_paths_are_not_protected(rel: str) -> None:
    assert not is_protected(rel)
