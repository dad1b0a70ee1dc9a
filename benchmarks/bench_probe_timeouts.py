"""Probing a domain whose MX hosts all time out must take about one timeout, not one per host.

Measured on loopback: a dnslib DNS server serves `one.test` (1 MX host) and `five.test` (5 MX
hosts), all pointing at 127.0.0.1. Two ways of timing out:
- connect: a listener with a full accept queue, so SYNs are dropped (tcp.state=timeout; Linux);
- banner: a server that accepts and never greets (smtp.timed_out at the banner).
The 1-host probe is the baseline, measured in the same run, alternating with the 5-host probe.

Run: PYTHONPATH=engine python benchmarks/bench_probe_timeouts.py [--runs 7] [--timeout 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mailtriage.probe import ProbeOptions, run_probe
from probe_servers import Behaviour, blackhole_port, dns_server, scripted_smtp


@contextmanager
def silent_server_port() -> Iterator[int]:
    with scripted_smtp(Behaviour(banner=None)) as server:
        yield server.port


def measure(domain: str, nameserver: str, port: int, timeout: float) -> tuple[float, int]:
    options = ProbeOptions(target=domain, nameserver=nameserver, port=port, timeout=timeout, deadline=30.0)
    started = time.perf_counter()
    result = run_probe(options)
    elapsed = time.perf_counter() - started
    timed_out = sum(
        1 for host in result.hosts if host.facts.get("tcp.state") == "timeout" or host.facts.get("smtp.timed_out")
    )
    return elapsed, timed_out


def summary(samples: list[float]) -> str:
    median = statistics.median(samples)
    spread = max(samples) - min(samples)
    return f"median {median:.3f} s  min {min(samples):.3f}  max {max(samples):.3f}  spread {spread:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()

    ways: list[tuple[str, Callable[[], AbstractContextManager[int]]]] = [("banner", silent_server_port)]
    if sys.platform == "linux":
        ways.insert(0, ("connect", blackhole_port))
    with dns_server() as (zone, dns_port):
        zone.add("one.test. 60 IN MX 10 mx1.one.test.", "mx1.one.test. 60 IN A 127.0.0.1")
        for n in range(1, 6):
            zone.add(f"five.test. 60 IN MX {n * 10} mx{n}.five.test.", f"mx{n}.five.test. 60 IN A 127.0.0.1")
        nameserver = f"127.0.0.1:{dns_port}"
        print(f"timeout {args.timeout:g} s per step, {args.runs} runs each, 1 host = baseline (same run)")
        for way, port_factory in ways:
            one: list[float] = []
            five: list[float] = []
            with port_factory() as port:
                measure("one.test", nameserver, port, args.timeout)  # warm-up (imports, first DNS query)
                for _ in range(args.runs):
                    elapsed, count = measure("one.test", nameserver, port, args.timeout)
                    assert count == 1, f"{way}: the 1-host probe did not time out"
                    one.append(elapsed)
                    elapsed, count = measure("five.test", nameserver, port, args.timeout)
                    assert count == 5, f"{way}: only {count} of 5 hosts timed out"
                    five.append(elapsed)
            ratio = statistics.median(five) / statistics.median(one)
            print(f"[{way}] 1 host : {summary(one)}")
            print(f"[{way}] 5 hosts: {summary(five)}")
            print(f"[{way}] 5 hosts / 1 host (medians): {ratio:.2f}x  (sequential would be ~5x)")


if __name__ == "__main__":
    main()
