"""What a review reports: findings (file, line, severity, category, message), the model's bounded reply schema,
and the whole report that `aether review --json` prints.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from aetherflow.config.models import BlockOn, ReviewSeverity

Category = Literal["bug", "debug", "syntax", "secret", "other"]
Outcome = Literal["clean", "findings", "blocked", "skipped", "unreviewed"]
SEVERITY_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3}
MAX_FINDINGS = 20
MAX_MESSAGE_CHARS = 300


class Finding(BaseModel):
    """One problem found in the diff. `line` is the line number in the new version of the file (0: the file)."""

    file: str = Field(max_length=500, description="Path of the file, as in the diff header (b/ prefix removed).")
    line: int = Field(ge=0, le=10_000_000, description="Line number in the new version of the file.")
    severity: ReviewSeverity = Field(description="high: will break or leak; medium: likely bug; low: minor.")
    category: Category = Field(description="bug, debug (leftover debug code), syntax, secret or other.")
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="One sentence.")
    source: Literal["scan", "model"] = Field(default="model", description="The local scan or the model.")

    def line_text(self) -> str:
        """`file:line severity category: message`, the hook's one-line format."""
        return f"{self.file}:{self.line} {self.severity} {self.category}: {self.message}"


class ModelFinding(BaseModel):
    """A finding as the model writes it (every string and list bounded, so even a small model cannot ramble)."""

    file: str = Field(max_length=500, description="Path of the file, as in the diff header (b/ prefix removed).")
    line: int = Field(ge=0, le=10_000_000, description="Line number in the new version of the file.")
    severity: ReviewSeverity = Field(description="high: will break or leak; medium: likely bug; low: minor.")
    category: Category = Field(description="bug, debug (leftover debug code), syntax, secret or other.")
    message: str = Field(max_length=MAX_MESSAGE_CHARS, description="One sentence.")


class ReviewReply(BaseModel):
    """The model's whole reply: its findings, none when the diff is fine."""

    findings: list[ModelFinding] = Field(default_factory=list, max_length=MAX_FINDINGS)


class ReviewReport(BaseModel):
    """The result of one review, as `aether review --json` prints it."""

    source: str
    outcome: Outcome
    exit_code: int
    findings: list[Finding] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Warnings: skipped, timed out, truncated, ...")
    model: str | None = None
    cost_usd: float = 0.0
    block_on: BlockOn = "never"
    seconds: float = 0.0


def blocking(findings: list[Finding], block_on: BlockOn) -> list[Finding]:
    """The findings that stop a commit: every secret the local scan found, and model findings at or above
    `block_on` ("never": none)."""
    threshold = SEVERITY_RANK.get(block_on)
    chosen: list[Finding] = []
    for finding in findings:
        if finding.source == "scan" and finding.category == "secret":
            chosen.append(finding)
        elif threshold is not None and SEVERITY_RANK[finding.severity] >= threshold:
            chosen.append(finding)
    return chosen


def render(report: ReviewReport) -> list[str]:
    """The report as the hook prints it: one `file:line severity category: message` line per finding, then
    `aether review:` lines for the notes and, after a model review, a summary."""
    lines = [finding.line_text() for finding in report.findings]
    lines.extend(f"aether review: {note}" for note in report.notes)
    if report.model is not None:
        count = f"{len(report.findings)} finding(s)" if report.findings else "no findings"
        lines.append(f"aether review: {count} ({report.model}, ${report.cost_usd:.4f}, {report.seconds:.1f} s)")
    return lines
