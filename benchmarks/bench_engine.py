"""Latency and throughput of the inference engine, against the naive durable-rules baseline.

Run by hand (not part of the test suite), from the repository root:

    PYTHONPATH=engine .venv/bin/python benchmarks/bench_engine.py
    PYTHONPATH=engine .venv/bin/python benchmarks/bench_engine.py --repeats 3 --queries 1000 --sizes 500

For each knowledge base (the bundled rules, synthetic 500 and 5,000 rules) it times, per query:
the durable-rules matcher and the Python matcher (`.match`), the full `Engine.diagnose` with each
backend, a plain Python loop over every rule without the dispatch index, and the naive durable-rules
baseline (one ruleset with every rule, a new session id plus `delete_state` per query), which runs in
a child process with a timeout because it hangs or crashes. It checks that both backends return
identical match sets on every query and prints median, p99, spread and throughput.

Repeats are interleaved (every subject once, then again) so that noise from other processes on the
shared machine spreads over all subjects instead of hitting one.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchstats import Series, fmt_rate, fmt_us, machine, percentile, table, time_pass
from naive_durable import NaiveOutcome, run_naive, run_regex_check
from synthetic import make_kb, make_queries
from workloads import bundled_kb, bundled_queries

from mailtriage.durable import DurableMatcher
from mailtriage.engine import Engine
from mailtriage.facts import normalize_facts
from mailtriage.loader import KnowledgeBase
from mailtriage.matching import PythonMatcher, naive_match
from mailtriage.model import Rule, Status


@dataclass
class Subject:
    name: str
    function: Callable[[Any], object]
    inputs: list[Any]
    series: Series = field(init=False)

    def __post_init__(self) -> None:
        self.series = Series(self.name)


@dataclass
class Workload:
    label: str
    spec: str  # for the naive child: "bundled" or "synthetic:N"
    kb: KnowledgeBase
    raw: list[dict[str, Any]]
    facts: list[dict[str, Any]] = field(default_factory=list)
    subjects: list[Subject] = field(default_factory=list)
    builds: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    naive: NaiveOutcome | None = None

    @property
    def active(self) -> list[Rule]:
        return [r for r in self.kb.rules.values() if r.status is not Status.DEPRECATED]


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def prepare(workload: Workload, repeats: int, loop_queries: int) -> None:
    """Build the matchers (timed), check the backends agree, and register the timed subjects."""
    workload.facts = [normalize_facts(q) for q in workload.raw]
    active = workload.active

    def build_durable() -> DurableMatcher:
        matcher = DurableMatcher(active)
        matcher.build_all()
        return matcher

    durable: DurableMatcher | None = None
    python: PythonMatcher | None = None
    for _ in range(min(repeats, 3)):
        seconds, durable = timed(build_durable)
        workload.builds.setdefault("DurableMatcher (all rulesets created)", []).append(seconds)
        seconds, python = timed(lambda: PythonMatcher(active))
        workload.builds.setdefault("PythonMatcher", []).append(seconds)
    assert durable is not None and python is not None
    rulesets = sum(len(chunks) for chunks in durable.rulesets.values())
    seconds, engine_durable = timed(lambda: Engine(workload.kb, backend="durable"))
    workload.builds.setdefault("Engine(kb, 'durable') (rulesets lazy)", []).append(seconds)
    engine_python = Engine(workload.kb, backend="python")
    first, _ = timed(lambda: [engine_durable.diagnose(q) for q in workload.raw])
    workload.notes.append(
        f"{len(active)} rules, {rulesets} durable rulesets, {len(durable.python_only)} branches evaluated in Python; "
        f"first Engine.diagnose pass over {len(workload.raw)} queries, creating rulesets lazily: {first:.2f} s"
    )

    asserts_before, gated_before = durable.asserts, durable.gated
    mismatches = sum(1 for f in workload.facts if durable.match(f) != python.match(f))
    asserted = (durable.asserts - asserts_before) / len(workload.facts)
    gated = (durable.gated - gated_before) / len(workload.facts)
    subset = workload.facts[:loop_queries]
    against_loop = sum(1 for f in subset if python.match(f) != naive_match(active, f))
    diagnosis_mismatches = sum(
        1
        for q in workload.raw
        if [m.rule.id for m in engine_durable.diagnose(q).matches] != [m.rule.id for m in engine_python.diagnose(q).matches]
    )
    matches = [len(python.match(f)) for f in workload.facts]
    workload.notes.append(
        f"match sets durable vs python: {mismatches} mismatches of {len(workload.facts)} queries; "
        f"python index vs plain loop over every rule: {against_loop} of {len(subset)}; "
        f"Engine.diagnose durable vs python (ranked rule ids): {diagnosis_mismatches} of {len(workload.raw)}; "
        f"matches per query: mean {sum(matches) / len(matches):.1f}, max {max(matches)}, none {matches.count(0)}; "
        f"durable fallbacks to Python: {durable.fallbacks}; "
        f"rulesets per query: {asserted:.1f} asserted, {gated:.1f} skipped (a text test ruled them out)"
    )
    workload.subjects = [
        Subject("durable matcher .match", durable.match, workload.facts),
        Subject("python matcher .match", python.match, workload.facts),
        Subject("Engine.diagnose, durable", engine_durable.diagnose, workload.raw),
        Subject("Engine.diagnose, python", engine_python.diagnose, workload.raw),
        Subject("python loop over every rule (no index)", lambda f: naive_match(active, f), subset),
    ]


def run(workloads: list[Workload], repeats: int) -> None:
    for repeat in range(repeats):
        for workload in workloads:
            for subject in workload.subjects:
                gc.collect()
                samples, wall = time_pass(subject.function, subject.inputs)
                subject.series.add(samples, wall)
        print(f"  repeat {repeat + 1}/{repeats} done", file=sys.stderr)


def spread(values: list[float], unit: str = "s") -> str:
    if len(values) == 1:
        return f"{values[0]:.3f} {unit}"
    return f"{sorted(values)[len(values) // 2]:.3f} {unit} ({min(values):.3f}-{max(values):.3f})"


def report(workloads: list[Workload], repeats: int, args: argparse.Namespace) -> str:
    out: list[str] = []
    out.append(f"date: {datetime.date.today().isoformat()}; machine: {machine()}")
    out.append(f"repeats: {repeats} (interleaved); queries per pass: {args.queries} (plain loop: {args.loop_queries})")
    out.append("")
    out.append("Per diagnosis, microseconds. median and p99 over all calls of all repeats; spread = lowest-highest")
    out.append("median of a single repeat; p10-p90 over all calls; rate = diagnoses per second (median repeat, range).")
    out.append("")
    rows = []
    for workload in workloads:
        for subject in workload.subjects:
            s = subject.series.summary()
            rows.append(
                [
                    workload.label,
                    subject.name,
                    fmt_us(s["median_us"]),
                    f"{fmt_us(s['repeat_median_min_us'])}-{fmt_us(s['repeat_median_max_us'])}",
                    f"{fmt_us(s['p10_us'])}-{fmt_us(s['p90_us'])}",
                    fmt_us(s["p99_us"]),
                    f"{fmt_rate(s['per_second'])} ({fmt_rate(s['per_second_min'])}-{fmt_rate(s['per_second_max'])})",
                ]
            )
        naive = workload.naive
        if naive is not None:
            if naive.status == "ok" and naive.timings_ns:
                ordered = sorted(t / 1000 for t in naive.timings_ns)

                rows.append(
                    [
                        workload.label,
                        "naive durable (1 ruleset, new sid + delete_state)",
                        fmt_us(ordered[len(ordered) // 2]),
                        "1 run",
                        f"{fmt_us(percentile(ordered, 10))}-{fmt_us(percentile(ordered, 90))}",
                        fmt_us(percentile(ordered, 99)),
                        f"{fmt_rate(len(ordered) / (sum(ordered) / 1e6))}; wrong on {naive.wrong} of {len(ordered)} queries",
                    ]
                )
            else:
                rows.append(
                    [workload.label, "naive durable (1 ruleset, new sid + delete_state)", "-", "-", "-", "-", f"{naive.rules} rules: {naive.status}"]
                )
    out.append(table(["KB", "subject", "median µs", "spread of medians", "p10-p90", "p99", "per second"], rows))
    out.append("")
    out.append("Build time (seconds; median and range over repeats):")
    build_rows = []
    for workload in workloads:
        for name, values in workload.builds.items():
            build_rows.append([workload.label, name, spread(values)])
        if workload.naive is not None and workload.naive.create_seconds is not None:
            build_rows.append([workload.label, "naive durable create_ruleset (1 run)", f"{workload.naive.create_seconds:.3f} s"])
        elif workload.naive is not None:
            build_rows.append([workload.label, "naive durable create_ruleset", workload.naive.status])
    out.append(table(["KB", "what", "seconds"], build_rows))
    out.append("")
    for workload in workloads:
        for note in workload.notes:
            out.append(f"- {workload.label}: {note}")
    return "\n".join(out)


def targets(workloads: list[Workload]) -> str:
    """The issue's targets, read off this run."""

    def median(label: str, subject: str) -> float | None:
        for workload in workloads:
            if workload.label == label:
                for s in workload.subjects:
                    if s.name == subject:
                        return s.series.median_us
        return None

    checks = [
        ("durable, bundled rules, median <= 100 µs", median("bundled", "durable matcher .match"), 100.0),
        ("Engine.diagnose durable, bundled, median <= 100 µs", median("bundled", "Engine.diagnose, durable"), 100.0),
        ("durable, 5,000 synthetic rules, median <= 200 µs", median("synthetic 5000", "durable matcher .match"), 200.0),
        ("python evaluator, 5,000 synthetic rules, median <= 30 µs", median("synthetic 5000", "python matcher .match"), 30.0),
    ]
    lines = ["Targets:"]
    for text, value, limit in checks:
        if value is None:
            continue
        lines.append(f"  {'MET ' if value <= limit else 'MISS'} {text}: {value:.1f} µs")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--queries", type=int, default=2000, help="queries per pass and knowledge base")
    parser.add_argument("--loop-queries", type=int, default=200, help="queries for the slow plain-loop baseline")
    parser.add_argument("--sizes", default="500,5000", help="synthetic knowledge base sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--naive-timeout", type=float, default=20.0, help="seconds per step of the naive baseline")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive durable-rules baseline")
    parser.add_argument("--extra-rules", action="append", default=[], help="rule folder added to the bundled rules")
    args = parser.parse_args()

    kb = bundled_kb(args.extra_rules)
    bundled_rules = sorted(kb.rules.values(), key=lambda r: r.id)
    workloads = [Workload("bundled", "bundled", kb, bundled_queries(bundled_rules, args.queries))]
    for size in (int(s) for s in args.sizes.split(",") if s):
        synthetic = make_kb(size, args.seed)
        rules = synthetic.rule_objects()
        workloads.append(
            Workload(f"synthetic {size}", f"synthetic:{size}", KnowledgeBase(rules={r.id: r for r in rules}), make_queries(synthetic, args.queries, args.seed + 1))
        )
    for workload in workloads:
        print(f"preparing {workload.label} ...", file=sys.stderr)
        prepare(workload, args.repeats, args.loop_queries)
    if not args.no_naive:
        for workload in workloads:
            print(f"naive baseline {workload.label} ...", file=sys.stderr)
            workload.naive = run_naive(workload.spec, args.queries, args.naive_timeout, args.extra_rules)
    print("timing ...", file=sys.stderr)
    run(workloads, args.repeats)
    print(report(workloads, args.repeats, args))
    print()
    print(targets(workloads))
    if not args.no_naive and len(workloads) > 1:
        check = run_regex_check(workloads[1].spec, args.queries, args.extra_rules)
        if "error" in check:
            print(f"\nregex check failed: {check['error']}")
        else:
            print(
                f"\nRegex check ({workloads[1].label}, {check['texts']} distinct reply texts, {check['expressible']} of "
                f"{check['patterns']} patterns expressible in durable's dialect): Python's re finds {check['python_matches']} "
                f"(pattern, text) matches; durable's own $imt '.*(P).*' misses {check['durable_missed']} of them "
                f"({check['durable_missed_no_alternation']} of {check['python_matches_no_alternation']} for patterns without "
                f"alternation, e.g. 'test' in 'tested'). The engine evaluates every regex with Python's re, so it misses none."
            )


if __name__ == "__main__":
    main()
