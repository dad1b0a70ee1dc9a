"""The worst inputs of the hostile-input audit, timed at three sizes: time must grow linearly.

Run by hand (not part of the test suite), from the repository root:

    PYTHONPATH=engine .venv/bin/python benchmarks/bench_worst_inputs.py
    PYTHONPATH=engine .venv/bin/python benchmarks/bench_worst_inputs.py --repeats 5 --scale 0.5

Each case builds its input at sizes S, 2S and 4S and times the intake (`parse_input`, what
`diagnose` and `scan` read inputs with) or, for rule patterns, the engine's text test. Before the
fix these took minutes (200 kB From: header: 4 min; 200 kB of `<script`: 52 s; unclosed `<`:
24 s; a 0.8 MB Sendmail log: 60 s; `(a|a)*b` on 30 characters: minutes). A benign input of the
same size (an ordinary bounce padded with ordinary text) is timed in the same run, interleaved,
as the baseline. Reported: median and spread (min-max) per size, and the growth from 2S to 4S of
the fastest run (2.0 is linear, 4.0 quadratic; the fastest run is the least noisy estimate). Target: growth <= 2.6 for every case, and the 4S worst input
within 20x of the benign one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))

from benchstats import machine, table

from mailtriage.intake import parse_input
from mailtriage.textmatch import text_search

TARGET_GROWTH = 2.6


def message(body: str, ctype: str = "text/plain", headers: str = "") -> bytes:
    return (
        "From: MAILER-DAEMON@example.org\nTo: alice@example.org\nSubject: Undelivered Mail Returned to Sender\n"
        f"{headers}MIME-Version: 1.0\nContent-Type: {ctype}\n\n{body}"
    ).encode()


BOUNCE = "<bob@example.com>: host mx.example.com[192.0.2.7] said: 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown (in reply to RCPT TO command)\n"
SENDMAIL_LINE = "Dec  3 09:00:00 relay sendmail[4242]: 2B3C4D5E: to=<bob@example.com>, delay=00:00:01, mailer=esmtp, relay=mx.example.com. [192.0.2.7], dsn=4.0.0, stat=Deferred: Connection refused by mx.example.com.\n"


def sendmail_log(size: int, hostile: bool) -> bytes:
    """Lines at the 8,000-character line cap; the hostile ones are full of `key=<,` (an unclosed
    `<` before each comma), which the old key=value regex rescanned to the end of line from."""
    if not hostile:
        return (SENDMAIL_LINE * (size // len(SENDMAIL_LINE) + 1))[:size].encode()
    line = "Dec  3 09:00:00 relay sendmail[4242]: 2B3C4D5E: to=<bob@example.com>, " + "a=<," * 1980 + " stat=Deferred: x\n"
    return (line * (size // len(line) + 1)).encode()[:size]


def benign_message(size: int) -> bytes:
    filler = "The message could not be delivered to one or more recipients; the server said so.\n"
    return message(BOUNCE + filler * (size // len(filler)))


# name -> (build(size) -> input, run(input), base size)
Case = tuple[Callable[[int], object], Callable[[object], object], int]


def _parse(data: object) -> object:
    assert isinstance(data, bytes)
    return parse_input(data)


def _rule_pattern(pattern: str) -> Callable[[object], object]:
    test = text_search(pattern)

    def run(text: object) -> object:
        assert isinstance(text, str)
        return test(text)

    return run


CASES: dict[str, Case] = {
    "From: header of one word": (lambda n: ("From: " + "a" * n + "\nSubject: x\n\n" + BOUNCE).encode(), _parse, 50_000),
    "HTML: <script repeated": (lambda n: message("<script" * (n // 7), "text/html"), _parse, 50_000),
    "HTML: unclosed <": (lambda n: message("<" * n, "text/html"), _parse, 50_000),
    "notice: line of spaces": (lambda n: message(" " * n + "x\n" + BOUNCE), _parse, 15_000),
    "notice: a@a. repeated": (lambda n: message("a@a." * (n // 4)), _parse, 50_000),
    "reply: [key= repeated": (lambda n: ("550 5.1.1 " + "[a=" * (n // 3)).encode(), _parse, 5_000),
    "Sendmail log, key=<, lines": (lambda n: sendmail_log(n, True), _parse, 200_000),
    "rule pattern (a|a)*b": (lambda n: "a" * n, _rule_pattern("(a|a)*b"), 100_000),
    "rule pattern ((\\w+\\s?))*$": (lambda n: "word " * (n // 5) + "!", _rule_pattern(r"((\w+\s?))*$"), 100_000),
    "rule pattern .*.*.*.*.*.*=$": (lambda n: "x" * n, _rule_pattern(".*.*.*.*.*.*=$"), 100_000),
}
BASELINES: dict[str, Case] = {
    "benign bounce (baseline)": (benign_message, _parse, 50_000),
    "benign Sendmail log (baseline)": (lambda n: sendmail_log(n, False), _parse, 200_000),
}


def time_once(run: Callable[[object], object], data: object) -> float:
    started = time.perf_counter()
    run(data)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every base size")
    args = parser.parse_args()
    subjects = {**BASELINES, **CASES}
    inputs = {
        (name, factor): build(max(1, int(base * args.scale * factor)))
        for name, (build, _, base) in subjects.items()
        for factor in (1, 2, 4)
    }
    times: dict[tuple[str, int], list[float]] = {key: [] for key in inputs}
    for name, (_, run, _) in subjects.items():
        time_once(run, inputs[(name, 1)])  # warm-up: imports, compiled patterns
    for _ in range(args.repeats):
        # Interleaved: each repeat times every subject at every size, so noise hits them alike.
        for key, data in inputs.items():
            times[key].append(time_once(subjects[key[0]][1], data))
    rows = []
    failed = []
    for name, (_, _, base) in subjects.items():
        medians = [statistics.median(times[(name, f)]) for f in (1, 2, 4)]
        spreads = [f"{min(times[(name, f)]):.1f}-{max(times[(name, f)]):.1f}" for f in (1, 2, 4)]
        # Growth from the fastest run at each size: the least noisy estimate on a shared machine.
        growth = min(times[(name, 4)]) / max(min(times[(name, 2)]), 1e-3)
        if name in CASES and growth > TARGET_GROWTH and medians[2] > 5:
            failed.append(name)
        sizes = "/".join(f"{int(base * args.scale * f) // 1000}k" for f in (1, 2, 4))
        rows.append([name, sizes, *(f"{m:.1f} ({s})" for m, s in zip(medians, spreads, strict=True)), f"{growth:.2f}"])
    print(machine())
    print(f"repeats: {args.repeats}; ms, median (min-max); growth = fastest time(4S) / fastest time(2S), 2.0 is linear\n")
    print(table(["input", "sizes S/2S/4S", "S", "2S", "4S", "growth"], rows))
    print(f"\ntarget: growth <= {TARGET_GROWTH} for every hostile case: " + ("met" if not failed else "MISSED by " + ", ".join(failed)))


if __name__ == "__main__":
    main()
