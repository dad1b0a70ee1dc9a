"""Resident memory over a million diagnoses: does the engine leak?

Run by hand (not part of the test suite), from the repository root:

    PYTHONPATH=engine .venv/bin/python benchmarks/bench_memory.py
    PYTHONPATH=engine .venv/bin/python benchmarks/bench_memory.py --count 200000 --every 20000 --kb synthetic:500

Cycles a fixed set of queries through the durable-rules matcher, then through `Engine.diagnose`
(durable backend), printing the process's RSS at every checkpoint. The reference is the RSS after a
warm-up pass over every query (rulesets created, caches filled to their bounds); the target is that
RSS grows less than 5% (flat). "engine-vary" gives every call a query never seen before, so the
bounded explanation caches keep evicting.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchstats import machine, rss_kb, table
from synthetic import make_kb, make_queries
from workloads import bundled_kb, bundled_queries

from mailtriage.durable import DurableMatcher
from mailtriage.engine import Engine
from mailtriage.facts import normalize_facts
from mailtriage.loader import KnowledgeBase
from mailtriage.model import Status

LIMIT = 0.05  # issue 12: RSS grows less than 5% after warm-up, caches on (bounded)


def soak(
    name: str, function: Callable[[Any], object], inputs: list[Any], count: int, every: int, warm_up: int = 0
) -> tuple[list[list[str]], bool]:
    for i in range(max(warm_up, len(inputs))):  # warm-up: create rulesets, fill caches to their bounds
        function(inputs[i % len(inputs)])
    gc.collect()
    reference = rss_kb()
    rows = [[name, "0 (after warm-up)", f"{reference / 1024:.1f}", "+0.0%", "-"]]
    done = 0
    size = len(inputs)
    start = time.perf_counter()
    highest = reference
    while done < count:
        step = min(every, count - done)
        for i in range(done, done + step):
            function(inputs[i % size])
        done += step
        current = rss_kb()
        highest = max(highest, current)
        elapsed = time.perf_counter() - start
        rows.append([name, f"{done:,}", f"{current / 1024:.1f}", f"{(current - reference) / reference:+.1%}", f"{elapsed / done * 1e6:.1f}"])
        print(f"  {name}: {done:,} RSS {current / 1024:.1f} MiB", file=sys.stderr)
    flat = (highest - reference) / reference <= LIMIT
    return rows, flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000, help="diagnoses per subject")
    parser.add_argument("--every", type=int, default=100_000, help="checkpoint interval")
    parser.add_argument("--kb", default="bundled", help="bundled or synthetic:N")
    parser.add_argument("--distinct", type=int, default=500, help="distinct queries cycled through")
    parser.add_argument("--subjects", default="matcher,engine,engine-vary",
                        help="matcher, engine, engine-vary (every query new, caches churning); comma-separated")
    parser.add_argument("--extra-rules", action="append", default=[], help="rule folder added to the bundled rules")
    args = parser.parse_args()

    if args.kb == "bundled":
        kb = bundled_kb(args.extra_rules)
        raw = bundled_queries(sorted(kb.rules.values(), key=lambda r: r.id), args.distinct)
    else:
        synthetic = make_kb(int(args.kb.split(":", 1)[1]))
        rules = synthetic.rule_objects()
        kb = KnowledgeBase(rules={r.id: r for r in rules})
        raw = make_queries(synthetic, args.distinct, 1)
    facts = [normalize_facts(q) for q in raw]
    active = [r for r in kb.rules.values() if r.status is not Status.DEPRECATED]
    print(f"date: {time.strftime('%Y-%m-%d')}; machine: {machine()}")
    print(f"KB: {args.kb} ({len(active)} rules); {args.count:,} diagnoses per subject over {len(raw)} distinct queries")
    all_rows: list[list[str]] = []
    verdicts: list[str] = []
    subjects = [s.strip() for s in args.subjects.split(",")]
    if "matcher" in subjects:
        matcher = DurableMatcher(active)
        rows, flat = soak("DurableMatcher.match", matcher.match, facts, args.count, args.every)
        all_rows += rows
        verdicts.append(f"DurableMatcher.match: {'flat' if flat else 'GROWS'} (limit {LIMIT:.0%})")
    if "engine" in subjects:
        engine = Engine(kb, backend="durable")
        rows, flat = soak("Engine.diagnose (durable)", engine.diagnose, raw, args.count, args.every)
        all_rows += rows
        verdicts.append(f"Engine.diagnose (durable): {'flat' if flat else 'GROWS'} (limit {LIMIT:.0%})")
    if "engine-vary" in subjects:
        # Every call a query never seen before (a unique id in the text, as real bounces carry),
        # read whole (to_dict): the explanation and fact-set caches churn at their bounds.
        from mailtriage.engine import EXPLANATION_CACHE_SIZE

        varying = Engine(kb, backend="durable")
        counter = [0]

        def diagnose_new(query: dict[str, Any]) -> object:
            counter[0] += 1
            if "smtp.text" in query:
                query = {**query, "smtp.text": f"{query['smtp.text']} id={counter[0]}"}
            return varying.diagnose(query).to_dict()

        rows, flat = soak("diagnose+to_dict, every query new", diagnose_new, raw, args.count, args.every,
                          warm_up=3 * EXPLANATION_CACHE_SIZE)
        all_rows += rows
        verdicts.append(f"diagnose+to_dict, every query new: {'flat' if flat else 'GROWS'} (limit {LIMIT:.0%})")
    print(table(["subject", "diagnoses", "RSS MiB", "vs warm-up", "µs per diagnosis (cumulative)"], all_rows))
    for verdict in verdicts:
        print(verdict)


if __name__ == "__main__":
    main()
