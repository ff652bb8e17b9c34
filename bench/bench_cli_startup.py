"""Wall time of `aether --help` (median of 10 runs) and the heavy modules it imports (target: <= 0.3 s, none).

Run: python bench/bench_cli_startup.py [--runs N]
Uses the installed `aether` script when it is on PATH, else `python -m aetherflow` with this checkout importable.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("litellm", "fastembed", "qdrant_client", "textual", "llama_cpp", "tiktoken", "onnxruntime")
TARGET_S = 0.3

_PROBE = f"""
import json, sys
sys.argv = ["aether", "--help"]
from aetherflow.cli import main
try:
    main()
except SystemExit:
    pass
print("PROBE " + json.dumps(sorted(n for n in {HEAVY!r} if n in sys.modules)))
"""


def _environ() -> dict[str, str]:
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    return environ


def command() -> list[str]:
    """The command a user types, or its module equivalent when the script is not installed."""
    script = shutil.which("aether")
    return [script, "--help"] if script else [sys.executable, "-m", "aetherflow", "--help"]


def time_runs(runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run, after one warm-up run that fills the file cache.

    CPU time is printed too because wall time on a shared machine includes waiting for a core.
    """
    environ = _environ()
    subprocess.run(command(), env=environ, capture_output=True, check=True)
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command(), env=environ, capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def heavy_modules() -> list[str]:
    """Heavy modules present in sys.modules after `aether --help` ran in-process."""
    done = subprocess.run([sys.executable, "-c", _PROBE], env=_environ(), capture_output=True, text=True, check=True)
    return json.loads(done.stdout.rsplit("PROBE ", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    times, cpus = time_runs(args.runs)
    median = statistics.median(times)
    heavy = heavy_modules()
    print(f"command: {' '.join(command())}")
    print(f"runs: {len(times)}  wall median: {median:.3f} s  min: {min(times):.3f} s  max: {max(times):.3f} s")
    print(f"cpu (user+sys) median: {statistics.median(cpus):.3f} s  load average: {os.getloadavg()[0]:.1f}")
    print(f"heavy modules imported: {', '.join(heavy) if heavy else 'none'}")
    ok = median <= TARGET_S and not heavy
    print(f"target: median <= {TARGET_S} s and no heavy module -> {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
