"""Errors the user can meet. Each names the cause and the next step, and carries the exit code."""

from __future__ import annotations


class AetherError(Exception):
    """Base of every error AetherFlow reports to the user.

    `message` says what went wrong; `hint` says what to do next. The CLI prints both and exits with
    `exit_code`, so no traceback reaches the user for a failure we anticipated.
    """

    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message


class UsageError(AetherError):
    """The command was called in a way that cannot work (wrong folder, missing argument)."""

    exit_code = 2


class ConfigError(AetherError):
    """A configuration file or variable holds something invalid."""

    exit_code = 2


class NotARepositoryError(UsageError):
    """The command needs a git work tree and the current folder is not inside one."""


class ProviderError(AetherError):
    """A model provider failed after retries and fallbacks were exhausted."""


class ModelUnavailableError(AetherError):
    """No model can serve the request: keys missing, local model not installed, or breakers open."""


class BudgetExceededError(AetherError):
    """A call was refused before sending because its worst case would pass the spending limit."""


class UnknownPriceError(AetherError):
    """A budget is set and the model has no known price, so its cost cannot be bounded."""


class StructuredOutputError(AetherError):
    """The model's reply did not match the requested schema, even after a repair round."""


class RepoIndexError(AetherError):
    """The repository index is missing, locked, corrupted or incompatible."""


class UnsafePathError(AetherError):
    """A path resolves outside the repository or into a protected location."""


class ApplyConflictError(AetherError):
    """Applying or undoing would overwrite a file the user changed in the meantime."""


class PlanError(AetherError):
    """The orchestrator could not produce a valid plan, even after a repair round."""


class RunInterrupted(AetherError):
    """A run stopped before the end (budget reached, every provider down, Ctrl-C); it can be resumed."""
