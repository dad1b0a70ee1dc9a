"""Bulk scanning throughput: `mailtriage scan` against Sisimai, whole commands, wall clock.

Run by hand (not part of the test suite), from the repository root:

    PYTHONPATH=engine .venv/bin/python benchmarks/bench_scan.py ../shared/corpus/bounces
    PYTHONPATH=engine .venv/bin/python benchmarks/bench_scan.py ../shared/corpus/bounces --copies 10 \
        --runs 3 --compare-engine /tmp/old/engine

The folder is copied `--copies` times into one scratch folder (10 copies of the shared corpus:
3,360 files). Each run times, interleaved so that machine noise hits every command alike:
- `mailtriage scan DIR --format json` with --jobs 1 and --jobs 2 (and with --compare-engine, the
  same commands on another engine/ folder, e.g. an older commit);
- Sisimai (Debian's libsisimai-perl, as `eval_bounces.py` runs it): `Sisimai->make` on every
  file, in one perl process.
Reported: messages (files) per second of the whole command, wall clock, and the CPU time of the
command (user + system of the process and its workers). Sisimai missing: its commands are skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchstats import machine, table

ROOT = Path(__file__).resolve().parent.parent

SISIMAI = r"""
use strict; use Sisimai;
my $dir = shift @ARGV; my $n = 0;
opendir(my $dh, $dir) or die; my @files = sort grep { -f "$dir/$_" } readdir($dh); closedir($dh);
for my $f (@files) { my $v = Sisimai->make("$dir/$f", 'delivered' => 1); $n += scalar(@$v) if $v; }
print "$n\n";
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{command[:4]} failed with {code}: {process.stderr.read().decode()[-800:] if process.stderr else ''}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="folder of bounce messages (e.g. ../shared/corpus/bounces)")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare-engine", metavar="DIR", help="another engine/ folder timed alike")
    args = parser.parse_args()
    sources = sorted(p for p in Path(args.folder).iterdir() if p.is_file())
    sisimai = shutil.which("perl") is not None and subprocess.run(["perl", "-MSisimai", "-e1"], capture_output=True).returncode == 0
    with tempfile.TemporaryDirectory(prefix="mt-bench-scan-") as scratch:
        folder = Path(scratch) / "bounces"
        folder.mkdir()
        for copy in range(args.copies):
            for source in sources:
                shutil.copyfile(source, folder / f"{copy:02d}-{source.name}")
        files = args.copies * len(sources)
        engines = {"mailtriage": ROOT / "engine"}
        if args.compare_engine:
            engines["baseline"] = Path(args.compare_engine)
        commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        for label, engine_dir in engines.items():
            env = dict(os.environ, PYTHONPATH=str(engine_dir), MAILTRIAGE_CACHE_DIR=str(Path(scratch) / f"cache-{label}"))
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            for jobs in (1, 2):
                commands[f"{label} scan --jobs {jobs}"] = (
                    [sys.executable, "-m", "mailtriage", "scan", str(folder), "--format", "json", "--jobs", str(jobs)], env)
            subprocess.run([sys.executable, "-m", "mailtriage", "diagnose", "--smtp-reply", "550 5.1.1 x"], env=env,
                           capture_output=True)  # builds the knowledge-base cache and bytecode
        if sisimai:
            commands["Sisimai 4.25 (perl)"] = (["perl", "-e", SISIMAI, str(folder)], dict(os.environ))
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, (command, env) in commands.items():
                results[name].append(timed(command, env))
    rows = []
    for name, samples in results.items():
        walls = [wall for wall, _ in samples]
        cpus = [cpu for _, cpu in samples]
        rate = files / statistics.median(walls)
        rows.append([name, " / ".join(f"{w:.2f}" for w in walls), f"{rate:.0f}", f"{files / max(walls):.0f}-{files / min(walls):.0f}",
                     f"{statistics.median(cpus):.2f}", f"{files / statistics.median(cpus):.0f}"])
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {machine()}")
    print(f"{files} files ({args.copies} copies of {args.folder}); {args.runs} runs per command, interleaved"
          f"{'' if sisimai else '; Sisimai not installed: not measured'}")
    print(table(["command", "wall s per run", "msg/s (median)", "msg/s range", "CPU s (median)", "msg per CPU s"], rows))

    def median_rate(name: str) -> float:
        return files / statistics.median(wall for wall, _ in results[name])

    one = median_rate("mailtriage scan --jobs 1")
    two = median_rate("mailtriage scan --jobs 2")
    print(f"--jobs 2 vs --jobs 1: {two / one:.2f}x (target >= 1.7x); per run: "
          + ", ".join(f"{a / b:.2f}x" for (b, _), (a, _) in zip(results["mailtriage scan --jobs 2"], results["mailtriage scan --jobs 1"], strict=True)))
    if sisimai:
        reference = median_rate("Sisimai 4.25 (perl)")
        print(f"scan --jobs 1 vs Sisimai: {one / reference:.2f}x wall (target >= 2x); per run: "
              + ", ".join(f"{b / a:.2f}x" for (a, _), (b, _) in zip(results["mailtriage scan --jobs 1"], results["Sisimai 4.25 (perl)"], strict=True)))


if __name__ == "__main__":
    main()
