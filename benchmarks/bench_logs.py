"""Log intake throughput on synthetic Postfix/Exim/Sendmail logs.

Usage: PYTHONPATH=engine python benchmarks/bench_logs.py [--lines N] [--failure-share F] [--repeat R]

Generates N lines shaped like a busy relay's log (connections, queue lines, deliveries and a share
of deferrals and bounces with varied hosts, addresses and errors), then reports lines per second
for `parse_log_lines` (median and spread of R runs) next to a baseline measured in the same run:
the cost of only testing one substring per line (the floor any parser pays).
Times are CPU time of this process (time.process_time), so other load on a shared machine
inflates them less than wall-clock time would. Target: >= 100,000 lines/s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from mailtriage.intake.logs import parse_log_lines

ERRORS = [
    "dsn=5.1.1, status=bounced (host {host}[{ip}] said: 550 5.1.1 <{rcpt}>: Recipient address rejected: "
    "User unknown (in reply to RCPT TO command))",
    "dsn=4.4.1, status=deferred (connect to {host}[{ip}]:25: Connection refused)",
    "dsn=4.4.1, status=deferred (connect to {host}[{ip}]:25: Connection timed out)",
    "dsn=4.4.3, status=deferred (Host or domain name not found. Name service error for name={domain} type=MX: "
    "Host not found, try again)",
    "dsn=4.4.2, status=deferred (lost connection with {host}[{ip}] while receiving the initial server greeting)",
    "dsn=5.7.26, status=bounced (host {host}[{ip}] said: 550-5.7.26 Unauthenticated email is not accepted "
    "550 5.7.26 https://support.google.com/mail/?p=DmarcRejection - gsmtp (in reply to end of DATA command))",
    "dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)",
    "dsn=5.2.2, status=bounced (host {host}[{ip}] said: 552 5.2.2 <{rcpt}>: Mailbox full (in reply to RCPT TO "
    "command))",
]


def synthetic_lines(count: int, failure_share: float, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for n in range(count):
        queue_id = f"{rng.getrandbits(40):010X}"
        domain = f"d{rng.randrange(5000)}.example"
        host = f"mx{rng.randrange(3)}.{domain}"
        ip = f"192.0.{rng.randrange(256)}.{rng.randrange(256)}"
        rcpt = f"user{rng.randrange(100000)}@{domain}"
        stamp = f"May {1 + n % 28:2d} {n % 24:02d}:{n % 60:02d}:{(n * 7) % 60:02d}"
        roll = rng.random()
        if roll < failure_share:
            error = rng.choice(ERRORS).format(host=host, ip=ip, rcpt=rcpt, domain=domain)
            lines.append(f"{stamp} relay postfix/smtp[{n % 30000}]: {queue_id}: to=<{rcpt}>, "
                         f"relay={host}[{ip}]:25, delay=1.2, delays=0.1/0/0.5/0.6, {error}")
        elif roll < failure_share + 0.3:
            lines.append(f"{stamp} relay postfix/smtp[{n % 30000}]: {queue_id}: to=<{rcpt}>, relay={host}[{ip}]:25, "
                         f"delay=0.4, delays=0.1/0/0.1/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X{n})")
        elif roll < failure_share + 0.55:
            lines.append(f"{stamp} relay postfix/smtpd[{n % 30000}]: connect from client{n % 900}.example[{ip}]")
        elif roll < failure_share + 0.8:
            lines.append(f"{stamp} relay postfix/qmgr[900]: {queue_id}: from=<s{n % 77}@example.org>, size={n % 90000}, "
                         "nrcpt=1 (queue active)")
        else:
            lines.append(f"{stamp} relay postfix/cleanup[{n % 30000}]: {queue_id}: message-id=<{n}@example.org>")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--failure-share", type=float, default=0.15)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    lines = synthetic_lines(args.lines, args.failure_share)

    ours, floor = [], []
    records = 0
    for _ in range(args.repeat):
        started = time.process_time()
        records = sum(1 for _ in parse_log_lines(lines))
        ours.append(time.process_time() - started)
        started = time.process_time()
        sum(1 for line in lines if " status=" in line)
        floor.append(time.process_time() - started)

    def rate(times: list[float]) -> str:
        median = statistics.median(times)
        spread = (max(times) - min(times)) / 2
        return f"{args.lines / median:,.0f} lines/s (median {median * 1000:.0f} ms +/- {spread * 1000:.0f} ms)"

    print(f"{args.lines:,} synthetic lines, {args.failure_share:.0%} failures -> {records:,} records")
    print(f"parse_log_lines: {rate(ours)}")
    print(f"baseline (substring test only): {rate(floor)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
