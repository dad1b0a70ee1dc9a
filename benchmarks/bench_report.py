"""Time `mailtriage report` over a large Get-MessageTraceDetailV2 export (target: 1,000,000 detail
rows in under a minute on one core), with peak memory.

    python benchmarks/bench_report.py --rows 1000000 --runs 3

The trace is generated: a realistic mix of Receive/Deliver events and, for a tenth of the
messages, deferrals and failures spread over 12 destinations and 6 errors, over 3 days.
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ERRORS = [
    "450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedServerName={host}] [LastAttemptedIP=203.0.113.{n}:25]",
    "450 4.4.315 Connection timed out [Message=Socket error code 10060] [LastAttemptedServerName={host}] [LastAttemptedIP=203.0.113.{n}:25]",
    "450 4.7.320 Certificate validation failed [Message=CertificateExpired] [LastAttemptedServerName={host}] [LastAttemptedIP=203.0.113.{n}:25]",
    "450 4.4.312 DNS query failed. The error was: DNS query failed with error: ServerFailure [Message=ServerFailure] [LastAttemptedServerName={host}]",
    "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    "550 5.7.1 Service unavailable, Client host [203.0.113.{n}] blocked using Spamhaus",
]
COLUMNS = ["Organization", "MessageId", "MessageTraceId", "Date", "Event", "Action", "Detail", "Data",
           "SenderAddress", "RecipientAddress"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    written = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        message = 0
        while written < rows:
            message += 1
            when = start + timedelta(seconds=rng.randrange(3 * 86400))
            domain = f"partner{rng.randrange(12)}.example"
            base = ["contoso.onmicrosoft.com", f"<{message}@contoso.example>", f"trace-{message}"]
            recipient = f"user{rng.randrange(5000)}@{domain}"
            writer.writerow([*base, when.strftime("%m/%d/%Y %I:%M:%S %p"), "Receive", "", "Message received by: X", "",
                             "ann@contoso.example", recipient])
            written += 1
            if rng.random() < 0.1:
                error = ERRORS[rng.randrange(len(ERRORS))]
                host = f"mail.{domain}"
                n = rng.randrange(1, 250)
                led = error.format(host=host, n=n)
                for attempt in range(rng.randrange(1, 6) if error.startswith("450") else 1):
                    at = when + timedelta(minutes=15 * (attempt + 1))
                    event = "Defer" if error.startswith("450") else "Fail"
                    writer.writerow([*base, at.strftime("%m/%d/%Y %I:%M:%S %p"), event, "",
                                     f"Reason: [{{LED={led}}};{{MSG=}};{{FQDN={host}}};{{IP=203.0.113.{n}}};{{LRT=}}]", "",
                                     "ann@contoso.example", recipient])
                    written += 1
            else:
                writer.writerow([*base, (when + timedelta(seconds=5)).strftime("%m/%d/%Y %I:%M:%S %p"), "Deliver", "",
                                 "The message was successfully delivered.", "", "ann@contoso.example", recipient])
                written += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "MessageTraceDetail.csv"
        generate(path, args.rows)
        print(f"trace: {args.rows} rows, {path.stat().st_size / 1e6:.0f} MB", flush=True)
        walls, cpus, peaks = [], [], []
        for _ in range(args.runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "mailtriage", "report", str(path), "--format", "json"],
                                    capture_output=True, text=True)
            walls.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            peaks.append(after.ru_maxrss / 1024)
            if result.returncode not in (0, 1):
                sys.exit(f"report failed: {result.stderr[-2000:]}")
        print(f"report wall: median {statistics.median(walls):.1f} s (min {min(walls):.1f}, max {max(walls):.1f}); "
              f"CPU median {statistics.median(cpus):.1f} s; peak RSS {max(peaks):.0f} MiB; "
              f"{args.rows / statistics.median(cpus):,.0f} rows per CPU second")


if __name__ == "__main__":
    main()
