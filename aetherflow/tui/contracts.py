"""What the TUI needs from the core, as small protocols, and the values its screens hand back.

The TUI drives a run only through these methods (the orchestrator's Pipeline provides them) and searches only
through `SearchBackend` (the index's Retriever provides it). Tests pass fakes with the same shape; nothing here
imports the orchestrator, LiteLLM or the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from aetherflow.index.search import SearchHit
    from aetherflow.workspace.apply import AppliedRecord, Selection
    from aetherflow.workspace.changeset import ChangeSet


class RunResultLike(Protocol):
    """The parts of the pipeline's RunResult the TUI reads."""

    @property
    def run_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def changeset(self) -> ChangeSet | None: ...

    @property
    def summary(self) -> str | None: ...

    @property
    def cost_usd(self) -> float: ...

    @property
    def message(self) -> str: ...


class PipelineLike(Protocol):
    """The orchestrator's Pipeline as the TUI uses it: run, then apply or discard; re-open a past run."""

    async def run(
        self, request: str, *, images: list[Path] | None = None, resume_id: str | None = None
    ) -> RunResultLike: ...

    def apply(self, result: RunResultLike, selection: Selection, *, commit: bool = False) -> AppliedRecord: ...

    def discard(self, result: RunResultLike) -> None: ...

    def load_result(self, run_id: str) -> RunResultLike: ...


class SearchBackend(Protocol):
    """The index search the session's search panel uses (aetherflow.index.search.Retriever)."""

    def exists(self) -> bool: ...

    def search(self, query: str, k: int = 10) -> list[SearchHit]: ...

    def close(self) -> None: ...


class RunJob(BaseModel):
    """One run to start: the request and its options, as `aether run` received them.

    The spending limit is not here: the gateway enforces the one in the services' settings (`--budget` sets it),
    and the run reports it in its RunStarted event, which the cost meter shows.
    """

    request: str
    images: list[Path] = Field(default_factory=list)
    resume_id: str | None = None
    commit: bool = Field(default=False, description="Commit the applied files (`aether run --commit`).")


Outcome = Literal["applied", "discarded", "kept", "no_changes", "failed", "interrupted", "cancelled"]


class ScreenExit(BaseModel):
    """How a run or review screen ended: the outcome, the exit code `aether run` returns, and what to tell the user."""

    outcome: Outcome
    exit_code: int = 0
    run_id: str | None = None
    message: str = ""
    hint: str | None = None

    def text(self) -> str:
        """The message and, when there is one, the next step."""
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message
