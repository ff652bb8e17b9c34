"""The local secret scan: the redactor's detectors (same rules as what is redacted before any model call, one
place) run over the lines a diff ADDS, with no network and no model. Removed and context lines are not scanned:
a secret already in history is not this commit's doing, and removing one must never be blocked.

Base64 key lines found without their BEGIN line (`key-material`) are redacted on the way to a model but do not
block here: an added private key brings its BEGIN line (found as `private-key`), while a public certificate's body
looks just the same and must stay committable.
"""

from __future__ import annotations

from bisect import bisect_right

from aetherflow.llm.redact import Redactor
from aetherflow.llm.redact_patterns import KEY_MATERIAL
from aetherflow.review.diff import AddedLine, Diff, DiffFile
from aetherflow.review.findings import Finding


def scan_diff(diff: Diff, redactor: Redactor) -> list[Finding]:
    """One finding per secret in the added lines of `diff` (never quoting the secret itself)."""
    findings: list[Finding] = []
    for file in diff.files:
        if file.binary or not file.added:
            continue
        findings.extend(_scan_file(file, redactor))
    return findings


def _scan_file(file: DiffFile, redactor: Redactor) -> list[Finding]:
    # Consecutive added lines are scanned as one text so multi-line secrets (a PEM private key) are found whole.
    findings: list[Finding] = []
    for block in _blocks(file.added):
        text = "\n".join(line.text for line in block)
        starts = _line_starts(text)
        for secret in redactor.scan(text):
            if secret.kind == KEY_MATERIAL:
                continue
            line = block[bisect_right(starts, secret.start) - 1].line
            findings.append(Finding(
                file=file.path, line=line, severity="high", category="secret", source="scan",
                message=f"looks like a secret ({secret.kind}) added in this commit",
            ))
    return findings


def _blocks(lines: list[AddedLine]) -> list[list[AddedLine]]:
    """`lines` split into runs of consecutive line numbers."""
    blocks: list[list[AddedLine]] = []
    for line in lines:
        if blocks and blocks[-1][-1].line + 1 == line.line:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return blocks


def _line_starts(text: str) -> list[int]:
    starts = [0]
    position = text.find("\n")
    while position != -1:
        starts.append(position + 1)
        position = text.find("\n", position + 1)
    return starts
