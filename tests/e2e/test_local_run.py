"""End to end with no provider key: `aether run` on the demo application falls back to the local SmolLM2 for every
call and the pipeline completes. The 135M model's content is not judged: the run either leaves a change set
(applied with --yes) or ends with "the model produced no usable edit" and its reason; never a traceback, and the
demo's files stay intact unless a change was applied.

Bounded for 2 cores: short replies (AETHER_AGENTS__*__MAX_OUTPUT_TOKENS). Measured here: about 2-4 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aetherflow
from aetherflow.llm.local import TINY_BOUNDS, grammar_bounds

PROJECT_ROOT = Path(aetherflow.__file__).resolve().parent.parent
DEMO = PROJECT_ROOT / "examples" / "demo-app"
REQUEST = "add a logout_all function to app/auth.py"
# Short replies keep the run to minutes on 2 cores; the orchestrator still has room for a one-task plan.
BOUNDS = {
    "AETHER_AGENTS__ORCHESTRATOR__MAX_OUTPUT_TOKENS": "600",
    **{f"AETHER_AGENTS__{name.upper()}__MAX_OUTPUT_TOKENS": "400"
       for name in ("coder", "editor", "analyst", "prototyper", "verifier", "reasoner")},
}


def _demo_repo(root: Path) -> Path:
    shutil.copytree(DEMO, root, ignore=shutil.ignore_patterns("__pycache__", ".aetherflow"))
    for args in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "demo"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not {".git", ".aetherflow", "__pycache__"} & set(p.relative_to(root).parts)}


@pytest.mark.local_model
def test_a_run_with_no_key_completes_on_the_local_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    repo = _demo_repo(tmp_path / "demo")
    before = _files(repo)
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    environ.update(BOUNDS, COLUMNS="200", PYTHONPATH=str(PROJECT_ROOT))

    done = subprocess.run([sys.executable, "-m", "aetherflow", "run", REQUEST, "--yes", "--no-tui"], cwd=repo,
                          env=environ, capture_output=True, text=True, timeout=1800)

    output = done.stdout + done.stderr
    assert "Traceback" not in output and "Segmentation" not in output, output[-3000:]
    assert done.returncode == 0, output[-3000:]
    assert "local" in done.stderr  # every row of the live table ran on the local model
    after = _files(repo)
    if "Applied" in done.stdout:
        changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
        applied = done.stdout.split("Applied", 1)[1].split("\n", 1)[0]
        assert changed and all(p in applied for p in changed), (changed, applied)
    else:
        reason = done.stdout.split("The model produced no usable edit:", 1)
        assert len(reason) == 2 and reason[1].strip(), output[-3000:]
        assert after == before


# ---- the local model's grammar (no model needed) -------------------------------------------------------------


def test_the_local_grammar_keeps_required_fields_and_bounds_strings_and_arrays() -> None:
    schema = {
        "type": "object", "required": ["summary", "tasks"],
        "properties": {
            "summary": {"type": "string", "maxLength": 2000},
            "tasks": {"type": "array", "minItems": 1, "maxItems": 30, "items": {"$ref": "#/$defs/T"}},
            "notes": {"type": "array", "items": {"type": "string"}},
        },
        "$defs": {"T": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string", "minLength": 300, "maxLength": 400}, "complexity": {"type": "number"}}}},
    }

    bounded = grammar_bounds(schema)

    assert set(bounded["properties"]) == {"summary", "tasks"}
    assert bounded["properties"]["summary"]["maxLength"] == TINY_BOUNDS.max_length
    assert bounded["properties"]["tasks"]["maxItems"] == max(TINY_BOUNDS.max_items, 1)
    assert set(bounded["$defs"]["T"]["properties"]) == {"id"}
    assert bounded["$defs"]["T"]["properties"]["id"]["maxLength"] == 300  # never below the minimum
    assert schema["properties"]["summary"]["maxLength"] == 2000  # the caller's schema is left as it was
