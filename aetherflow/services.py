"""The composition root: builds every service from Settings, once, for the CLI, the TUI and the tests alike.

Services are created on first use, so a command pays only for what it touches (`aether models` never imports
LiteLLM; `aether ask` never opens the index unless one exists).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetherflow import paths
from aetherflow.config import Settings, load_settings
from aetherflow.errors import NotARepositoryError
from aetherflow.events import EventBus

if TYPE_CHECKING:
    from aetherflow.index.search import Retriever
    from aetherflow.ledger.store import Ledger
    from aetherflow.llm.gateway import Gateway
    from aetherflow.llm.redact import Redactor


class Services:
    """Everything a command needs, wired from one Settings object."""

    def __init__(
        self,
        settings: Settings,
        repo_root: Path | None,
        environ: Mapping[str, str] | None = None,
        *,
        light_transport: bool = False,
    ) -> None:
        self.settings = settings
        # Short-lived callers (the pre-commit hook) reach OpenAI-compatible providers over plain httpx instead
        # of LiteLLM, whose import alone takes seconds.
        self.light_transport = light_transport
        self.repo_root = repo_root
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.bus = EventBus()

    def require_repo(self) -> Path:
        """The repository root, or a clear error when the command runs outside a git work tree."""
        if self.repo_root is None:
            raise NotARepositoryError(
                f"{Path.cwd()} is not inside a git repository.",
                "cd into your project (or run `git init` first), then run the command again.",
            )
        return self.repo_root

    @cached_property
    def ledger(self) -> Ledger | None:
        """The repository's ledger, recording every call; None outside a repository."""
        if self.repo_root is None:
            return None
        from aetherflow.ledger.store import Ledger

        ledger = Ledger(paths.state_dir(self.repo_root) / "ledger.sqlite")
        ledger.attach(self.bus)
        return ledger

    @cached_property
    def gateway(self) -> Gateway:
        """The model gateway, with a budget of the per-run limit capped by what is left of today's."""
        from aetherflow.llm.gateway import Gateway

        spent_today = self.ledger.spent_today_usd() if self.ledger is not None else 0.0
        return Gateway(
            self.settings,
            self.bus,
            environ=self.environ,
            spent_today_usd=spent_today,
            cache_dir=self._cache_dir(),
            light_transport=self.light_transport,
        )

    @cached_property
    def redactor(self) -> Redactor:
        """The secret redactor used for everything leaving towards a non-local model (tool output included)."""
        from aetherflow.llm.redact import redactor_for

        return redactor_for(self.settings, self.environ)

    @cached_property
    def retriever(self) -> Retriever | None:
        """Search over the repository index (None outside a repository). Check `exists()` before searching,
        and `close()` it when done so that a background index update can open the embedded store."""
        if self.repo_root is None:
            return None
        from aetherflow.index.search import Retriever

        return Retriever(self.repo_root, self.settings.index, environ=self.environ)

    def _cache_dir(self) -> Path:
        configured = self.settings.cache.dir
        return Path(configured).expanduser() if configured else paths.user_cache_dir() / "responses"


def build_services(
    cwd: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> Services:
    """Find the repository around `cwd`, load the layered settings, and return the wired services.

    When the repository's aetherflow.toml is not trusted and some of its keys were ignored, `on_notice` gets the
    warning (default: printed on stderr, so it never mixes with JSON on stdout).
    """
    repo_root = paths.find_repo_root(cwd)
    settings = load_settings(repo_root, flags=flags, environ=environ)
    notice = settings.repo_trust.notice() if settings.repo_trust is not None else None
    if notice:
        (on_notice or _warn)(notice)
    return Services(settings, repo_root, environ=environ)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
