"""Matching latency of two versions of the engine on the bundled rules, measured in the same run.

Run by hand (not part of the test suite), from the repository root, after exporting the older
version's `engine/` folder somewhere:

    git worktree add /tmp/mailtriage-before <commit>
    PYTHONPATH=engine .venv/bin/python benchmarks/compare_engines.py --baseline /tmp/mailtriage-before/engine

The machine is shared and its speed drifts by tens of percent within minutes, so numbers taken in
different runs cannot be compared. This script alternates short child processes (baseline, current,
baseline, current...), each loading the bundled rules from this checkout's `rules/` with its own
engine and timing `DurableMatcher.match` and `PythonMatcher.match` over the same queries; it reports
the median of the children's medians and their range for each version.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchstats import machine, table

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent

# Runs in the child, with PYTHONPATH set to the engine under test and to benchmarks/.
_CHILD = r"""
import gc, json, statistics, sys, time
from pathlib import Path
from workloads import bundled_queries
from mailtriage.durable import DurableMatcher
from mailtriage.facts import normalize_facts
from mailtriage.loader import load_knowledge_base
from mailtriage.matching import PythonMatcher
from mailtriage.model import Status

kb = load_knowledge_base([Path(sys.argv[1])])
rules = sorted((r for r in kb.rules.values() if r.status is not Status.DEPRECATED), key=lambda r: r.id)
facts = [normalize_facts(q) for q in bundled_queries(rules, int(sys.argv[2]))]
durable = DurableMatcher(rules)
durable.build_all()
python = PythonMatcher(rules)
assert all(durable.match(f) == python.match(f) for f in facts)
result = {}
for name, matcher in (("durable", durable), ("python", python)):
    for f in facts:  # warm-up: lazily built tests and caches
        matcher.match(f)
    gc.collect()
    samples = []
    for f in facts:
        start = time.perf_counter()
        matcher.match(f)
        samples.append(time.perf_counter() - start)
    result[name] = statistics.median(samples) * 1e6
print(json.dumps(result))
"""


def run_child(engine: Path, queries: int) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(engine), str(HERE)])
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT / "rules"), str(queries)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, type=Path, help="the older version's engine/ folder")
    parser.add_argument("--rounds", type=int, default=7, help="child processes per version, alternated")
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    versions = {"baseline": args.baseline.resolve(), "current": ROOT / "engine"}
    medians: dict[str, dict[str, list[float]]] = {v: {"durable": [], "python": []} for v in versions}
    for round_number in range(args.rounds):
        for version, engine in versions.items():
            for name, value in run_child(engine, args.queries).items():
                medians[version][name].append(value)
        print(f"  round {round_number + 1}/{args.rounds} done", file=sys.stderr)
    print(machine())
    print(f"bundled rules from {ROOT / 'rules'}; {args.queries} queries; {args.rounds} child processes per version, alternated")
    print(f"baseline: {versions['baseline']}\n")
    rows = [
        [version, name, f"{statistics.median(values):.1f}", f"{min(values):.1f}-{max(values):.1f}"]
        for version, by_name in medians.items()
        for name, values in by_name.items()
    ]
    print(table(["version", "matcher", "median µs (median of children)", "range of children"], rows))


if __name__ == "__main__":
    main()
