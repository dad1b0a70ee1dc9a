"""Site build time: the full strict build (both languages, every rule) against a baseline.

Usage: PYTHONPATH=engine python benchmarks/bench_site.py [--repeat R]

Runs `mkdocs build --strict` R times for the real site and R times for a baseline measured in the
same run: the same config with a one-rule knowledge base (the fixed cost of MkDocs, Material,
mkdocs-static-i18n and the hand-written pages). Reports wall-clock median and spread of each, and
the marginal cost per rule page (both languages). Wall clock, because the build runs in a child
process; on a shared machine compare the two numbers of one run, not runs with each other.
Target: full build <= 60 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ONE_RULE = REPO / "tests" / "data" / "site" / "lifecycle" / "new-rule.yaml"  # no references to other rules


def build_once(config: Path, site_dir: Path) -> float:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", OFFLINE="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "engine"), env.get("PYTHONPATH", "")) if p)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "--config-file", str(config), "--site-dir", str(site_dir)],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"build failed:\n{result.stderr}")
    return elapsed


def baseline_config(tmp: Path) -> Path:
    rules = tmp / "rules"
    rules.mkdir()
    (rules / ONE_RULE.name).write_text(ONE_RULE.read_text(encoding="utf-8"), encoding="utf-8")
    config = tmp / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {REPO / 'mkdocs.yml'}\ndocs_dir: {REPO / 'site'}\n"
        f"plugins:\n  mailtriage:\n    rules_dir: {rules}\n    repo_root: {REPO}\n",
        encoding="utf-8",
    )
    return config


def summary(times: list[float]) -> str:
    spread = f"{min(times):.1f}-{max(times):.1f}" if len(times) > 1 else "n/a"
    return f"median {statistics.median(times):.1f} s (range {spread}, n={len(times)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from mailtriage.loader import load_knowledge_base

    rule_count = len(load_knowledge_base([REPO / "rules"]).rules)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = baseline_config(tmp)
        full: list[float] = []
        base: list[float] = []
        for index in range(args.repeat):  # interleaved, so load changes hit both alike
            base.append(build_once(config, tmp / f"base-{index}"))
            full.append(build_once(REPO / "mkdocs.yml", tmp / f"full-{index}"))
    marginal = (statistics.median(full) - statistics.median(base)) / max(1, rule_count - 1)
    print(f"baseline (1 rule):         {summary(base)}")
    print(f"full site ({rule_count} rules, 2 langs): {summary(full)}")
    print(f"marginal cost per rule: {marginal * 1000:.0f} ms (two pages)")
    print(f"target <= 60 s: {'met' if statistics.median(full) <= 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
