"""Where AetherFlow keeps its state.

Per repository: `.aetherflow/` at the work tree root (index, ledger, runs, locks). Per user: config, cache and
data folders following XDG. `AETHER_HOME` relocates every per-user folder at once; tests set it so that they
never read or write the real home directory.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_NAME = ".aetherflow"
REPO_CONFIG_NAME = "aetherflow.toml"


def find_repo_root(start: Path | None = None) -> Path | None:
    """Return the work tree root containing `start` (default: cwd), or None outside a git work tree.

    A `.git` entry may be a folder (a normal clone) or a file (a linked worktree or a submodule).
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def state_dir(repo_root: Path) -> Path:
    """The repository's private state folder (never committed)."""
    return repo_root / STATE_DIR_NAME


def _user_base(xdg_var: str, fallback: str, leaf: str) -> Path:
    home_override = os.environ.get("AETHER_HOME")
    if home_override:
        return Path(home_override).expanduser() / leaf
    base = os.environ.get(xdg_var) or str(Path.home() / fallback)
    return Path(base).expanduser() / "aetherflow"


def user_config_dir() -> Path:
    """Folder of the user-wide `config.toml`."""
    return _user_base("XDG_CONFIG_HOME", ".config", "config")


def user_config_file() -> Path:
    """The user-wide configuration file (optional)."""
    return user_config_dir() / "config.toml"


def user_cache_dir() -> Path:
    """Folder for caches that can be deleted at any time (response cache)."""
    return _user_base("XDG_CACHE_HOME", ".cache", "cache")


def user_models_dir() -> Path:
    """Folder of downloaded model files (`gguf = "hf:..."` entries): large, but re-downloadable."""
    return user_cache_dir() / "models"


def user_data_dir() -> Path:
    """Folder for per-user data that should survive (trusted repositories)."""
    return _user_base("XDG_DATA_HOME", ".local/share", "data")


def prompts_dir() -> Path:
    """Folder of the shipped prompt files.

    In a wheel they are packaged as `aetherflow/_prompts`; in a source checkout (editable install) they are the
    top-level `prompts/` folder beside the package.
    """
    packaged = Path(__file__).parent / "_prompts"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "prompts"


def is_within(path: Path, root: Path) -> bool:
    """True when `path`, after resolving symlinks and `..`, lies inside `root` (also resolved)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def ensure_state_dir(repo_root: Path) -> Path:
    """Create `.aetherflow/` if needed, with a `.gitignore` of `*` inside so git never shows it as untracked.

    This keeps the user's own `.gitignore` untouched even when they never ran `aether init`. A `.aetherflow`
    that is a symbolic link (or a file) is refused with UnsafePathError.
    """
    folder = state_dir(repo_root)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        # A cloned repository can carry `.aetherflow` as a link: the ledger, index and runs would land elsewhere.
        from aetherflow.errors import UnsafePathError

        raise UnsafePathError(
            f"AetherFlow will not keep its state in {folder}: it is a symbolic link or not a folder "
            "(a cloned repository can carry one that points elsewhere).",
            f"Remove it (`rm {folder}`) if you did not make it, then run the command again.",
        )
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# Created by AetherFlow: its state is private to this machine.\n*\n")
    return folder
