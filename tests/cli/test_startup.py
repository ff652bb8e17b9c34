"""`aether --help` stays cheap (no LiteLLM, fastembed, Qdrant, Textual, llama-cpp) and `--version` works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cli_support import PROJECT_ROOT, AetherRun

import aetherflow

HEAVY = ("litellm", "fastembed", "qdrant_client", "textual", "llama_cpp")

_PROBE = """
import json, sys
from aetherflow.cli import main
codes = {}
for argv in (["--help"], ["agents", "--help"], ["agents", "add", "--help"], ["models", "--help"],
             ["doctor", "--help"], ["init", "--help"]):
    sys.argv = ["aether", *argv]
    try:
        main()
    except SystemExit as exc:
        codes[" ".join(argv)] = exc.code
heavy = sorted(name for name in %r if name in sys.modules)
print("PROBE " + json.dumps({"codes": codes, "heavy": heavy}))
""" % (HEAVY,)


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    environ = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}

    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.rsplit("PROBE ", 1)[1])
    assert probe["heavy"] == []
    assert set(probe["codes"].values()) == {0}
    assert "doctor" in done.stdout and "agents" in done.stdout and "--max-output-tokens" in done.stdout


def test_version(aether: AetherRun) -> None:
    result = aether("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"aether {aetherflow.__version__}"
