"""Small helpers shared by the benchmark scripts: timing passes, robust summaries, tables, machine."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not values:
        return float("nan")
    rank = max(0, min(len(values) - 1, round(q / 100 * (len(values) - 1))))
    return values[rank]


def time_pass(function: Callable[[Any], object], inputs: Iterable[Any]) -> tuple[list[int], float]:
    """Call `function` on each input; per-call nanoseconds and the pass's wall time in seconds."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    start = clock()
    for item in inputs:
        t0 = clock()
        function(item)
        append(clock() - t0)
    return samples, (clock() - start) / 1e9


@dataclass
class Series:
    """Per-call timings of one subject over several repeats (each repeat is one pass)."""

    name: str
    passes: list[list[int]] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)

    def add(self, samples: list[int], wall: float) -> None:
        self.passes.append(samples)
        self.walls.append(wall)

    @property
    def pooled_us(self) -> list[float]:
        return sorted(s / 1000 for p in self.passes for s in p)

    @property
    def median_us(self) -> float:
        return statistics.median(self.pooled_us)

    @property
    def p99_us(self) -> float:
        return percentile(self.pooled_us, 99)

    @property
    def repeat_medians_us(self) -> list[float]:
        return [statistics.median(p) / 1000 for p in self.passes]

    @property
    def rates(self) -> list[float]:
        return [len(p) / wall for p, wall in zip(self.passes, self.walls, strict=True) if wall > 0]

    def summary(self) -> dict[str, float]:
        medians = self.repeat_medians_us
        rates = self.rates
        pooled = self.pooled_us
        return {
            "median_us": self.median_us,
            "p10_us": percentile(pooled, 10),
            "p90_us": percentile(pooled, 90),
            "p99_us": self.p99_us,
            "repeat_median_min_us": min(medians),
            "repeat_median_max_us": max(medians),
            "per_second": statistics.median(rates),
            "per_second_min": min(rates),
            "per_second_max": max(rates),
        }


def fmt_us(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if value >= 10000:
        return f"{value / 1000:.1f} ms"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table (readable as plain text too)."""
    rows = [list(r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def machine() -> str:
    """CPU model, core count, Python and load average: numbers only mean something next to these."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{model}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load}"


def rss_kb() -> int:
    """Resident set size of this process, in KiB (Linux)."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found in /proc/self/status")
