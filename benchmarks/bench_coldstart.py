"""Cold start of the command line: how long `mailtriage diagnose` takes from exec to exit.

Run by hand (not part of the test suite), from the repository root:

    PYTHONPATH=engine .venv/bin/python benchmarks/bench_coldstart.py
    PYTHONPATH=engine .venv/bin/python benchmarks/bench_coldstart.py --runs 15 --command "mailtriage"

Each run is a fresh process (`python -m mailtriage`, with PYTHONPATH=engine, or an installed
console script given with --command). Three cases, interleaved run by run so that machine noise hits
them alike:
- baseline: `python -c pass` (the interpreter alone);
- warm: the knowledge-base cache is primed once, then every run reads it;
- cold: MAILTRIAGE_CACHE_DIR is a new empty folder for every run (YAML parsed and validated).
Target: warm median <= 300 ms.

PYTHONDONTWRITEBYTECODE is removed from the children's environment and the priming run writes the
bytecode caches, as an installed package has them; otherwise every run recompiles the package's
sources (about 30 ms more).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchstats import machine, percentile, table

ROOT = Path(__file__).resolve().parent.parent
REPLY = "450 4.4.316 Connection refused"
TARGET_MS = 300.0


def run_once(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if completed.returncode not in (0, 1):
        raise SystemExit(f"{shlex.join(command)} failed ({completed.returncode}): {completed.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--command", help="installed console script to time instead of `python -m mailtriage`")
    parser.add_argument("--extra-rules", action="append", default=[], help="rule folder added through MAILTRIAGE_RULES")
    args = parser.parse_args()

    base_env = dict(os.environ)
    base_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "engine"), base_env.get("PYTHONPATH", "")]))
    base_env.pop("MAILTRIAGE_RULES", None)
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.extra_rules:
        base_env["MAILTRIAGE_RULES"] = os.pathsep.join(args.extra_rules)
    program = shlex.split(args.command) if args.command else [sys.executable, "-m", "mailtriage"]
    diagnose = [*program, "diagnose", "--smtp-reply", REPLY]
    baseline = [sys.executable, "-c", "pass"]

    results: dict[str, list[float]] = {"python -c pass": [], "diagnose, warm cache": [], "diagnose, cold cache": []}
    with tempfile.TemporaryDirectory(prefix="mt-coldstart-") as scratch:
        warm_env = dict(base_env, MAILTRIAGE_CACHE_DIR=str(Path(scratch) / "warm"))
        run_once(diagnose, warm_env)  # prime the cache and the bytecode
        for number in range(args.runs):
            results["python -c pass"].append(run_once(baseline, base_env))
            results["diagnose, warm cache"].append(run_once(diagnose, warm_env))
            cold_env = dict(base_env, MAILTRIAGE_CACHE_DIR=str(Path(scratch) / f"cold{number}"))
            results["diagnose, cold cache"].append(run_once(diagnose, cold_env))
    rows = []
    for name, values in results.items():
        ordered = sorted(values)
        rows.append(
            [
                name,
                f"{statistics.median(ordered):.0f}",
                f"{percentile(ordered, 10):.0f}-{percentile(ordered, 90):.0f}",
                f"{ordered[0]:.0f}-{ordered[-1]:.0f}",
            ]
        )
    print(f"date: {time.strftime('%Y-%m-%d')}; machine: {machine()}")
    rules = f"; MAILTRIAGE_RULES={base_env['MAILTRIAGE_RULES']}" if args.extra_rules else ""
    print(f"command: {shlex.join(diagnose)}; {args.runs} runs each, interleaved{rules}")
    print(table(["case", "median ms", "p10-p90 ms", "min-max ms"], rows))
    warm = statistics.median(results["diagnose, warm cache"])
    over = warm - statistics.median(results["python -c pass"])
    verdict = "MET" if warm <= TARGET_MS else "MISS"
    print(f"{verdict} warm median {warm:.0f} ms (target <= {TARGET_MS:.0f} ms); {over:.0f} ms above the bare interpreter")


if __name__ == "__main__":
    main()
