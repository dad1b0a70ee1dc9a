"""Time and peak memory of reading the worst inputs of issue 17 (items 6 and 8) at three sizes,
to show growth is linear in time and flat in memory:

- a log with one giant line (no newline for N MB) between failure lines: read line by line,
  each line cut at MAX_LOG_LINE_BYTES, so memory must not follow N;
- an mbox of N x 100 bounces: every message read, one at a time;
- a MIME message nested up to 190 levels deep: parsed (beyond 200 boundaries it is refused
  before parsing, since the standard parser is quadratic in the depth).

    python benchmarks/bench_hostile_inputs.py --runs 3

Each measurement runs in a fresh process (peak RSS is per process); sizes are interleaved per run
and the median and spread are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "intake"
FAILED = (b"Dec  3 10:00:01 host postfix/smtp[1]: ABC: to=<a@b.example>, relay=none, delay=1, status=deferred "
          b"(connect to mx.b.example[192.0.2.1]:25: Connection refused)\n")

MEASURE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from mailtriage.intake.paths import read_file
started = time.perf_counter()
items = sum(1 for _ in read_file(Path(sys.argv[2])))
print(json.dumps({"seconds": time.perf_counter() - started, "items": items,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def giant_line_log(path: Path, megabytes: int) -> None:
    with open(path, "wb") as handle:
        handle.write(FAILED)
        chunk = b"x" * 1_048_576
        for _ in range(megabytes):
            handle.write(chunk)
        handle.write(b"\n" + FAILED)


def mbox(path: Path, messages: int) -> None:
    bounce = (DATA / "postfix-plain.eml").read_bytes().rstrip(b"\n")
    with open(path, "wb") as handle:
        for _ in range(messages):
            handle.write(b"From MAILER-DAEMON Thu Dec  3 10:00:00 2026\n" + bounce + b"\n\n")


def deep_mime(path: Path, levels: int) -> None:
    head = "From: MAILER-DAEMON@example.com\nSubject: Undelivered Mail\nMIME-Version: 1.0\n"
    body = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(levels))
    path.write_text(head + body + "\n550 5.1.1 user unknown\n")


CASES = {
    "giant-line log (MB)": (giant_line_log, (50, 100, 200)),
    "mbox (messages)": (mbox, (100, 200, 400)),
    "nested MIME (levels; over 200 boundaries is refused unparsed)": (deep_mime, (50, 100, 190)),
}


def measure(path: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(ENGINE), str(path)], capture_output=True, text=True,
                          check=True, timeout=600)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files: dict[tuple[str, int], Path] = {}
        for name, (make, sizes) in CASES.items():
            for size in sizes:
                path = Path(tmp) / f"{len(files)}.in"
                make(path, size)
                files[(name, size)] = path
        results: dict[tuple[str, int], list[dict[str, float]]] = {key: [] for key in files}
        for _ in range(args.runs):
            for key, path in files.items():  # interleaved: every size once per run
                results[key].append(measure(path))
    for name, (_make, sizes) in CASES.items():
        print(name)
        for size in sizes:
            runs = results[(name, size)]
            seconds = [r["seconds"] for r in runs]
            peaks = [r["peak_mb"] for r in runs]
            print(f"  {size:>6}: {statistics.median(seconds):7.3f} s (spread {min(seconds):.3f}-{max(seconds):.3f}), "
                  f"peak {statistics.median(peaks):6.1f} MB (spread {min(peaks):.1f}-{max(peaks):.1f}), "
                  f"{int(runs[0]['items'])} item(s)")


if __name__ == "__main__":
    main()
