"""End-to-end latency of `Engine.diagnose(facts).to_dict()`: queries never seen before by a warm
engine, and the same query repeated; with the durable-rules share of the time.

Run by hand (not part of the test suite), from the repository root:

    PYTHONPATH=engine .venv/bin/python benchmarks/bench_diagnose.py
    PYTHONPATH=engine .venv/bin/python benchmarks/bench_diagnose.py --corpus ../shared/corpus/bounces \
        --compare-engine /tmp/old/engine --rounds 3

Queries: the bundled rules' examples and the realistic replies of `workloads.py`, plus (with
--corpus) the records read from a folder of real bounces. Real replies carry per-message details
(queue ids, addresses, hosts); each query gets such a detail of its own (a random queue id and
recipient in the text), so no raw query is ever repeated: the engine is warmed on one set of
variants, then timed on another it has never seen. "repeated" times one query asked again.

Each round runs one child process per engine (this one, and --compare-engine if given),
interleaved, so the baseline is measured in the same run under the same machine load. A child
reports wall-clock latencies and its CPU time per query (CPU time is far less sensitive to the
other processes on a shared machine), the time spent inside the matcher (durable-rules plus the
Python around each assert), how many queries found their explanation already cached, and the
uncached path (caches emptied before each of 300 queries: match and explain from scratch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchstats import machine, percentile, table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_CHILD = r"""
import gc, json, random, sys, time
from pathlib import Path
from workloads import bundled_queries
from mailtriage.engine import Engine
from mailtriage.model import Status

corpus = sys.argv[1]
count = int(sys.argv[2])
engine = Engine()
rules = sorted((r for r in engine.kb.rules.values() if r.status is not Status.DEPRECATED), key=lambda r: r.id)
base = bundled_queries(rules, 5000)
base = list({json.dumps(q, sort_keys=True): q for q in base}.values())
if corpus:
    from mailtriage.intake import IntakeRecord
    from mailtriage.intake.paths import iter_path_records
    base += [dict(r.facts) for r in iter_path_records([corpus]) if isinstance(r, IntakeRecord)]
rng = random.Random(int(sys.argv[3]))

def variant(query):
    query = dict(query)
    detail = f" [{rng.randrange(16**10):010X}] <user{rng.randrange(10**6)}@example.net>"
    if "smtp.text" in query:
        query["smtp.text"] = query["smtp.text"] + detail
    return query

matcher = engine.matcher
if hasattr(matcher, "build_all"):
    matcher.build_all()
warm = [variant(q) for q in base for _ in range(3)]
for q in warm:
    engine.diagnose(q).to_dict()
tests = [variant(q) for q in base]
rng.shuffle(tests)
tests = (tests * (count // len(tests) + 1))[:count] if count > len(tests) else tests[:count]
# Count matcher time (durable-rules calls plus the Python around them) by wrapping it.
inner = matcher.match
spent = [0]
def timed_match(*args, **kwargs):
    t0 = time.perf_counter_ns()
    try:
        return inner(*args, **kwargs)
    finally:
        spent[0] += time.perf_counter_ns() - t0
matcher.match = timed_match
cache = getattr(engine, "_explanations", None)
before = len(cache) if cache is not None else 0
gc.collect()
wall, cpu = [], []
clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
calls_before = 0
for q in tests:
    c0 = cpu_clock(); t0 = clock()
    engine.diagnose(q).to_dict()
    wall.append(clock() - t0); cpu.append(cpu_clock() - c0)
novel_total = sum(wall)
matched_ns = spent[0]
new_signatures = (len(cache) - before) if cache is not None else None
# The miss path: every query explained from scratch (caches emptied before each one).
miss = []
recent = getattr(engine, "_recent", None)
for q in tests[:300]:
    if cache is not None:
        cache.clear(); recent.clear()
    t0 = clock()
    engine.diagnose(q).to_dict()
    miss.append(clock() - t0)
one = tests[0]
engine.diagnose(one).to_dict()
repeat = []
for _ in range(2000):
    t0 = clock()
    engine.diagnose(one).to_dict()
    repeat.append(clock() - t0)
print(json.dumps({"wall": wall, "cpu": cpu, "matcher_share": matched_ns / novel_total, "queries": len(tests),
                  "distinct_base": len(base), "new_signatures": new_signatures, "repeat": repeat, "miss": miss}))
"""


def run_child(engine_dir: Path, cache: Path, corpus: str, count: int, seed: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(engine_dir), str(HERE)]), MAILTRIAGE_CACHE_DIR=str(cache))
    done = subprocess.run([sys.executable, "-c", _CHILD, corpus, str(count), str(seed)], env=env, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"child for {engine_dir} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summary(values_ns: list[int]) -> tuple[float, float, float]:
    ordered = sorted(v / 1000 for v in values_ns)
    return statistics.median(ordered), percentile(ordered, 99), percentile(ordered, 90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="child processes per engine, interleaved")
    parser.add_argument("--queries", type=int, default=1000, help="never-seen queries timed per child")
    parser.add_argument("--corpus", default="", help="folder of real bounces whose records join the queries")
    parser.add_argument("--compare-engine", metavar="DIR", help="another engine/ folder (e.g. an older commit) timed alike")
    args = parser.parse_args()
    engines = {"this engine": ROOT / "engine"}
    if args.compare_engine:
        engines[f"baseline {args.compare_engine}"] = Path(args.compare_engine)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in engines}
    with tempfile.TemporaryDirectory(prefix="mt-bench-diagnose-") as scratch:
        for round_number in range(args.rounds):
            for index, (name, folder) in enumerate(engines.items()):
                cache = Path(scratch) / f"cache{index}"
                results[name].append(run_child(folder, cache, args.corpus, args.queries, seed=round_number))
    rows = []
    for name, runs in results.items():
        for number, run in enumerate(runs, start=1):
            wall_median, wall_p99, wall_p90 = summary(run["wall"])
            cpu_median, cpu_p99, _ = summary(run["cpu"])
            repeat_median, repeat_p99, _ = summary(run["repeat"])
            miss_median, miss_p99, _ = summary(run["miss"])
            hits = "-" if run["new_signatures"] is None else f"{1 - run['new_signatures'] / run['queries']:.0%}"
            rows.append([name, str(number), f"{wall_median:.0f}", f"{wall_p90:.0f}", f"{wall_p99:.0f}", f"{cpu_median:.0f}",
                         f"{cpu_p99:.0f}", f"{run['matcher_share']:.0%}", hits, f"{repeat_median:.1f}", f"{repeat_p99:.0f}",
                         f"{miss_median:.0f}", f"{miss_p99:.0f}"])
    print(f"machine: {machine()}")
    print(f"queries: {results['this engine'][0]['queries']} never seen per run, from {results['this engine'][0]['distinct_base']} "
          f"distinct templates{' incl. corpus ' + args.corpus if args.corpus else ''}; repeated: one query x 2000")
    print(table(["engine", "run", "median us", "p90 us", "p99 us", "CPU median us", "CPU p99 us", "matcher share",
                 "cache hits", "repeated median us", "repeated p99 us", "uncached median us", "uncached p99 us"], rows))
    for name, runs in results.items():
        medians = [summary(run["wall"])[0] for run in runs]
        p99s = [summary(run["wall"])[1] for run in runs]
        repeats = [summary(run["repeat"])[0] for run in runs]
        verdict = "MET" if max(medians) <= 150 and max(p99s) <= 1000 and max(repeats) <= 30 else "MISS"
        print(f"{name}: {verdict} (targets: median <= 150 us, p99 <= 1000 us, repeated <= 30 us, every run)")


if __name__ == "__main__":
    main()
