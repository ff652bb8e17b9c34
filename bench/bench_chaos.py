"""The chaos model of issue 7 outside pytest: N seeded runs of the whole product against a chaos-scripted server.

Each run is tests/adversarial/chaos_support.ChaosRunner: a fresh copy of examples/demo-app with the user's own
changes, the real Pipeline (LiteLLM gateway, router, scheduler, agents, workspace) against random but plausible
replies, then accept-all, reject, or accept and undo, and the invariants of tests/adversarial/chaos_checks.py.

It prints: runs, crashes, violations by kind, outcomes, replies by kind, wall time and runs/s, peak memory, then
every failing run with its seed (re-run one with `--seed-start SEED --runs 1 --keep`). Exits 1 on any crash or violation.

    python bench/bench_chaos.py                      # 500 runs from seed 0 (several minutes on 2 busy cores)
    python bench/bench_chaos.py --seed-start 500 --runs 100
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "adversarial"))

from chaos_support import ChaosRunner, RunReport, isolate_environment, summarize  # noqa: E402

from aetherflow.testing.server import ScriptedServer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500, help="how many seeds to run (default 500)")
    parser.add_argument("--seed-start", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--keep", action="store_true", help="keep every run's folder, not only the failing ones")
    parser.add_argument("--quiet", action="store_true", help="no line per run, only the figures")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="aether-bench-chaos-"))
    isolate_environment(folder / "env")
    reports: list[RunReport] = []
    started = time.monotonic()
    with ScriptedServer() as server, ChaosRunner(folder / "runs", server, keep=args.keep) as runner:
        for seed in range(args.seed_start, args.seed_start + args.runs):
            report = runner.run(seed)
            reports.append(report)
            if not args.quiet:
                mark = "ok" if report.ok else "FAIL"
                print(f"seed {seed:5d} {mark:4s} {report.seconds:6.2f} s  {report.outcome}", flush=True)
    wall_s = time.monotonic() - started
    print()
    print(summarize(reports, wall_s))
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    failed = [r for r in reports if not r.ok]
    if failed or args.keep:
        print(f"run folders kept under {folder / 'runs'}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
