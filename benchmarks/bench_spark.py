"""Spark local[2] against `mailtriage scan --jobs 2` on the same generated logs, in the same run.

Run by hand (not part of the test suite; needs the [spark] extra and Java 17), from the repository root:

    .venv/bin/python benchmarks/bench_spark.py [--lines 1000000] [--files 16] [--repeat 3] [--data DIR]

Generates the logs with gen_logs.py (or reuses --data), then, interleaved run by run so machine noise
hits them alike:
- `scan --jobs 2`: `mailtriage scan DIR --jobs 2 --format jsonl` in a fresh process (the baseline);
- `spark files`: `mailtriage.spark.scan` on a warm local[2] session, each log file read whole by a
  Python worker (the default for files up to WHOLE_FILE_BYTES), rows written as Parquet;
- `spark lines`: the same with every log read through Spark's line reader (split between tasks,
  line numbers from a counting pass), as large files on a cluster are.
Reports wall-clock lines per second (median and spread), the fixed costs (session start-up with
the first job's worker start and knowledge-base load; a one-line job on the warm session; the
single-process scan of a one-line file), and checks that every run gives the same multiset of
records as `scan --jobs 2` (sources normalised to file and line).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_logs import generate

ROOT = Path(__file__).resolve().parent.parent
MAILTRIAGE = str(Path(sys.executable).with_name("mailtriage"))


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    row = dict(row)
    for name in ("file", "source"):
        if row.get(name):
            row[name] = os.path.abspath(row[name])
    return tuple(sorted((name, json.dumps(value)) for name, value in row.items()))


def run_cli(paths: list[str]) -> tuple[float, Counter[tuple[Any, ...]]]:
    started = time.perf_counter()
    done = subprocess.run([MAILTRIAGE, "scan", *paths, "--jobs", "2", "--format", "jsonl"],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"scan failed: {done.stderr[-2000:]}")
    rows = (json.loads(line) for line in done.stdout.splitlines())
    return wall, Counter(_key(row) for row in rows if "skipped" not in row)  # records, as run_spark keeps


def run_spark(spark: Any, paths: list[str], whole_file_bytes: int, out: Path) -> tuple[float, Counter[tuple[Any, ...]]]:
    import pyarrow.parquet as pq

    from mailtriage.spark import contract_row, scan

    started = time.perf_counter()
    scan(spark, paths, whole_file_bytes=whole_file_bytes).write.mode("overwrite").parquet(str(out))
    wall = time.perf_counter() - started
    rows = pq.read_table(str(out)).to_pylist()
    size = sum(file.stat().st_size for file in out.glob("*.parquet"))
    print(f"  Parquet output: {size:,} bytes, {size / max(len(rows), 1):.0f} bytes per row", flush=True)
    return wall, Counter(_key(contract_row(row)) for row in rows if row["skipped"] is None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, help="reuse logs generated there (generated if empty)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    data = args.data or work / "logs"
    if not data.exists() or not any(data.iterdir()):
        lines, failures = generate(data, args.lines, args.files, 0.15, 7)
        print(f"generated {lines:,} lines ({failures:,} failure lines) in {args.files} files")
    lines = sum(file.read_bytes().count(b"\n") for file in data.iterdir())
    paths = [str(data)]
    tiny = work / "tiny.log"
    tiny.write_text((ROOT / "tests/data/intake/postfix.log").read_text().splitlines()[2] + "\n")

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {lines:,} lines")
    started = time.perf_counter()
    from mailtriage.spark import local_session, scan

    spark = local_session("local[2]", "mailtriage-bench")
    spark.sparkContext.setLogLevel("ERROR")
    scan(spark, [str(tiny)]).count()  # starts the Python workers and loads the knowledge base
    startup = time.perf_counter() - started
    tiny_jobs = []
    for _ in range(3):
        t0 = time.perf_counter()
        scan(spark, [str(tiny)]).count()
        tiny_jobs.append(time.perf_counter() - t0)
    cli_tiny = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([MAILTRIAGE, "scan", str(tiny), "--jobs", "2", "--format", "jsonl"], capture_output=True,
                       check=False)
        cli_tiny.append(time.perf_counter() - t0)

    walls: dict[str, list[float]] = {"scan --jobs 2": [], "spark files": [], "spark lines": []}
    baseline: Counter[tuple[Any, ...]] | None = None
    same = True
    for repeat in range(args.repeat):
        for name in walls:
            if name == "scan --jobs 2":
                wall, rows = run_cli(paths)
            else:
                wall, rows = run_spark(spark, paths, 0 if name == "spark lines" else 1 << 40, work / "out.parquet")
            walls[name].append(wall)
            if baseline is None:
                baseline = rows
            elif rows != baseline:
                same = False
                print(f"  {name} run {repeat + 1}: rows differ from scan --jobs 2 "
                      f"({sum((rows - baseline).values())} extra, {sum((baseline - rows).values())} missing)")
            print(f"  {name} run {repeat + 1}: {wall:.1f} s, {sum(rows.values()):,} records", flush=True)
    spark.stop()

    print(f"\n{lines:,} lines, {sum((baseline or Counter()).values()):,} records; same multiset of records: {same}")
    for name, times in walls.items():
        median = statistics.median(times)
        spread = (max(times) - min(times)) / 2
        print(f"{name:14s} {lines / median:>10,.0f} lines/s  (median {median:.1f} s +/- {spread:.1f} s, "
              f"{lines / median / 2:,.0f} lines/s per core)")
    print(f"fixed costs: Spark session start-up + first job {startup:.1f} s; one-line job on a warm session "
          f"{statistics.median(tiny_jobs):.2f} s; `scan --jobs 2` of a one-line file {statistics.median(cli_tiny):.2f} s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
