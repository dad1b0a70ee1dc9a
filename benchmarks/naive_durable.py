"""The naive durable-rules baseline: what using durable-rules "as documented" would look like.

One ruleset holds every rule, each compiled directly from its condition tree (conditions in the order
written, so rules' first conditions differ; regexes handed to durable's own `$imt` as `.*(PATTERN).*`),
and every query asserts the fact into a new session id and then calls `delete_state`.

It hangs or crashes on realistic sizes (see the project notes on durable-rules 2.0.28), so
`run_naive` runs it in a child process with a timeout and reports where it stopped. The child writes
its progress to a file after every step, so a hang or a segfault can be located.

    PYTHONPATH=engine python benchmarks/naive_durable.py --kb synthetic:500 --queries 500 --progress /tmp/p
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailtriage.model import All, AnyOf, Condition, Leaf, Not, Rule

_NEGATED = {"$eq": "$neq", "$neq": "$eq", "$lt": "$gte", "$lte": "$gt", "$gt": "$lte", "$gte": "$lt", "$ex": "$nex", "$nex": "$ex"}
SETUP_TIMEOUT = 120.0  # loading and generating the rules before anything is timed
_OPS = {"equals": "$eq", "less_than": "$lt", "at_most": "$lte", "greater_than": "$gt", "at_least": "$gte"}


class NotExpressible(Exception):
    pass


def naive_expression(condition: Condition, negate: bool = False) -> dict[str, Any]:
    """Straight translation of a condition tree to durable-rules JSON, as a first attempt would do."""
    if isinstance(condition, Not):
        return naive_expression(condition.child, not negate)
    if isinstance(condition, (All, AnyOf)):
        conjunction = isinstance(condition, All) != negate
        parts = [naive_expression(child, negate) for child in condition.children]
        return parts[0] if len(parts) == 1 else {"$and" if conjunction else "$or": parts}
    leaf: Leaf = condition
    if leaf.op == "matches":
        if negate:
            raise NotExpressible("durable-rules has no negated regex")
        return {"$imt": {leaf.field: f".*({leaf.value}).*"}}
    if leaf.op == "exists":
        op = "$ex" if bool(leaf.value) != negate else "$nex"
        return {op: {leaf.field: 1}}
    if leaf.op == "one_of":
        parts = [{_NEGATED["$eq"] if negate else "$eq": {leaf.field: v}} for v in leaf.value]
        return parts[0] if len(parts) == 1 else {"$and" if negate else "$or": parts}
    op = _OPS[leaf.op]
    return {_NEGATED[op] if negate else op: {leaf.field: leaf.value}}


def naive_ruleset(rules: list[Rule]) -> tuple[dict[str, Any], list[str], int]:
    """(ruleset JSON, rule id per action name index, rules left out as not expressible)."""
    definition: dict[str, Any] = {}
    ids: list[str] = []
    skipped = 0
    for rule in rules:
        try:
            expression = naive_expression(rule.match)
        except NotExpressible:
            skipped += 1
            continue
        definition[f"r{len(ids)}"] = {"all": [{"m": expression}]}
        ids.append(rule.id)
    return definition, ids, skipped


def nested_fact(facts: Mapping[str, Any], sid: str) -> dict[str, Any]:
    fact: dict[str, Any] = {"sid": sid}
    for name, value in facts.items():
        head, _, tail = name.partition(".")
        fact.setdefault(head, {})[tail] = value
    return fact


# -- child process ---------------------------------------------------------------------------


def _load(kb_spec: str, queries: int, extra: list[str]) -> tuple[list[Rule], list[dict[str, Any]]]:
    from mailtriage.facts import normalize_facts

    if kb_spec == "bundled":
        sys.path.insert(0, str(Path(__file__).parent))
        from workloads import bundled_workload

        rules, raw = bundled_workload(queries, extra)
    else:
        from synthetic import make_kb, make_queries

        size = int(kb_spec.split(":", 1)[1])
        kb = make_kb(size, 0)
        rules, raw = kb.rule_objects(), make_queries(kb, queries, 1)
    return rules, [normalize_facts(q) for q in raw]


def child(kb_spec: str, queries: int, progress_path: str, extra: list[str]) -> None:
    import durable_rules_engine as dre

    from mailtriage.matching import PythonMatcher

    progress = os.open(progress_path, os.O_WRONLY | os.O_APPEND)

    def say(line: str) -> None:
        os.write(progress, (line + "\n").encode())

    rules, facts_list = _load(kb_spec, queries, extra)
    active = [r for r in rules if r.status.value != "deprecated"]
    oracle = PythonMatcher(active)
    expected = [oracle.match(f) for f in facts_list]
    definition, ids, skipped = naive_ruleset(active)
    say(f"compiled {len(ids)} {skipped}")
    started = time.perf_counter()
    try:
        handle = dre.create_ruleset(f"naive{os.getpid()}", json.dumps(definition, ensure_ascii=False))
    except (dre.error, MemoryError) as exc:
        say(f"error create: {exc}")
        return
    say(f"created {time.perf_counter() - started:.3f}")
    timings: list[int] = []
    wrong = missed = extra_found = 0
    for number, facts in enumerate(facts_list):
        sid = f"q{number}"
        text = json.dumps(nested_fact(facts, sid), ensure_ascii=False)
        fired: set[str] = set()
        t0 = time.perf_counter_ns()
        try:
            code, offset = dre.assert_fact(handle, text)
            if code == 0:
                result = dre.start_action_for_state(handle, offset)
                while result:
                    messages = result[1] if isinstance(result, tuple) else result
                    for name in json.loads(messages):
                        fired.add(ids[int(name[1:])])
                    result = dre.complete_and_start_action(handle, offset)
            dre.delete_state(handle, sid)
        except (dre.error, MemoryError) as exc:
            say(f"error query {number}: {type(exc).__name__}: {exc}")
            return
        timings.append(time.perf_counter_ns() - t0)
        if fired != expected[number]:
            wrong += 1
            missed += len(expected[number] - fired)
            extra_found += len(fired - expected[number])
        say(f"q {number + 1}")
    say("result " + json.dumps({"timings_ns": timings, "wrong": wrong, "missed": missed, "extra": extra_found}))


def regex_child(kb_spec: str, queries: int, progress_path: str, extra: list[str]) -> None:
    """Which text matches would durable-rules' own regex matcher miss? Every distinct pattern of the
    KB becomes a `$imt` rule (chunks of 250), and every query text is asserted once per chunk."""
    import durable_rules_engine as dre

    from mailtriage.model import iter_leaves

    progress = os.open(progress_path, os.O_WRONLY | os.O_APPEND)
    rules, facts_list = _load(kb_spec, queries, extra)
    patterns = sorted({leaf.value for r in rules for leaf in iter_leaves(r.match) if leaf.op == "matches" and leaf.field == "smtp.text"})
    expressible = [p for p in patterns if "\\" not in p]  # durable has no \d, \s, \b: silently never match
    texts = sorted({str(f["smtp.text"]) for f in facts_list if "smtp.text" in f})
    found = 0
    found_by_pattern: dict[str, int] = {}
    missed: list[tuple[str, str]] = []
    for start in range(0, len(expressible), 250):
        chunk = expressible[start : start + 250]
        definition = {f"p{i}": {"all": [{"m": {"$imt": {"t": f".*({p}).*"}}}]} for i, p in enumerate(chunk)}
        handle = dre.create_ruleset(f"rx{os.getpid()}_{start}", json.dumps(definition, ensure_ascii=False))
        compiled = [re.compile(p, re.IGNORECASE) for p in chunk]
        for text in texts:
            body = json.dumps({"t": text}, ensure_ascii=False)
            fired: set[int] = set()
            code, offset = dre.assert_fact(handle, body)
            if code == 0:
                result = dre.start_action_for_state(handle, offset)
                while result:
                    messages = result[1] if isinstance(result, tuple) else result
                    fired.update(int(name[1:]) for name in json.loads(messages))
                    result = dre.complete_and_start_action(handle, offset)
            if code in (0, 2):
                dre.retract_fact(handle, body)
            for i, pattern in enumerate(compiled):
                if pattern.search(text):
                    found += 1
                    found_by_pattern[chunk[i]] = found_by_pattern.get(chunk[i], 0) + 1
                    if i not in fired:
                        missed.append((chunk[i], text))
    summary = {
        "patterns": len(patterns),
        "expressible": len(expressible),
        "texts": len(texts),
        "python_matches": found,
        "durable_missed": len(missed),
        "python_matches_no_alternation": sum(1 for p in found_by_pattern if "|" not in p for _ in range(found_by_pattern[p])),
        "durable_missed_no_alternation": sum(1 for p, _ in missed if "|" not in p),
        "examples": missed[:5],
    }
    os.write(progress, ("regex " + json.dumps(summary) + "\n").encode())


def run_regex_check(kb_spec: str, queries: int, extra: list[str] | None = None, timeout: float = 300.0) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".progress", delete=False) as handle:
        progress = Path(handle.name)
    command = [sys.executable, str(Path(__file__).resolve()), "--kb", kb_spec, "--queries", str(queries), "--progress", str(progress), "--regex-check"]
    for folder in extra or []:
        command += ["--extra-rules", folder]
    completed = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    lines = [line for line in progress.read_text().splitlines() if line.startswith("regex ")]
    progress.unlink()
    if not lines:
        tail = completed.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {completed.returncode}"]
        return {"error": tail[0]}
    result: dict[str, Any] = json.loads(lines[-1][6:])
    return result


# -- parent side -----------------------------------------------------------------------------


@dataclass
class NaiveOutcome:
    rules: int
    queries_done: int
    create_seconds: float | None
    timings_ns: list[int]
    wrong: int
    missed: int
    status: str  # "ok" or where it stopped

    @property
    def median_us(self) -> float | None:
        return statistics.median(self.timings_ns) / 1000 if self.timings_ns else None


def _wait_with_progress(process: subprocess.Popen[bytes], progress: Path, timeout: float) -> bool:
    """Wait for the child; kill it when its progress file stops growing for `timeout` seconds (the
    timeout applies to each step, create or one query, not to the set-up before it)."""
    size = 0
    deadline = time.monotonic() + max(timeout, SETUP_TIMEOUT)
    while process.poll() is None:
        time.sleep(0.05)
        grown = progress.stat().st_size
        if grown != size:
            size = grown
            deadline = time.monotonic() + timeout
        elif time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
    return False


def run_naive(kb_spec: str, queries: int, timeout: float, extra: list[str] | None = None) -> NaiveOutcome:
    """Run the naive baseline in a child process; never hangs or crashes the caller."""
    with tempfile.NamedTemporaryFile("w", suffix=".progress", delete=False) as handle:
        progress = Path(handle.name)
    command = [sys.executable, str(Path(__file__).resolve()), "--kb", kb_spec, "--queries", str(queries), "--progress", str(progress)]
    for folder in extra or []:
        command += ["--extra-rules", folder]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
        timed_out = _wait_with_progress(process, progress, timeout)
        errors.seek(0)
        stderr = errors.read()
    lines = progress.read_text().splitlines()
    progress.unlink()
    rules = 0
    created: float | None = None
    done = 0
    outcome = NaiveOutcome(0, 0, None, [], 0, 0, "")
    for line in lines:
        if line.startswith("compiled "):
            rules = int(line.split()[1])
        elif line.startswith("created "):
            created = float(line.split()[1])
        elif line.startswith("q "):
            done = int(line.split()[1])
        elif line.startswith("result "):
            data = json.loads(line[7:])
            outcome = NaiveOutcome(rules, done, created, data["timings_ns"], data["wrong"], data["missed"], "ok")
        elif line.startswith("error "):
            outcome.status = line[6:]
    outcome.rules, outcome.queries_done, outcome.create_seconds = rules, done, created
    if outcome.status == "ok":
        return outcome
    if timed_out:
        where = "create" if created is None else f"query {done + 1}"
        outcome.status = f"{where} hung (timeout {timeout:g} s)"
    elif process.returncode is not None and process.returncode < 0:
        name = signal.Signals(-process.returncode).name
        where = "during create" if created is None else f"after {done} queries"
        outcome.status = f"{name} {where}"
    elif not outcome.status:
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        outcome.status = f"exit {process.returncode}: {tail[0]}"
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", default="synthetic:500", help="bundled or synthetic:N")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--progress", help="(child mode) file to append progress lines to")
    parser.add_argument("--extra-rules", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--regex-check", action="store_true", help="compare durable's own regex matcher with Python's re")
    args = parser.parse_args()
    if args.progress and args.regex_check:
        regex_child(args.kb, args.queries, args.progress, args.extra_rules)
        return
    if args.progress:
        child(args.kb, args.queries, args.progress, args.extra_rules)
        return
    if args.regex_check:
        print(run_regex_check(args.kb, args.queries, args.extra_rules))
        return
    outcome = run_naive(args.kb, args.queries, args.timeout, args.extra_rules)
    print(outcome.status, outcome.rules, outcome.queries_done, outcome.create_seconds, outcome.median_us, outcome.wrong, outcome.missed)


if __name__ == "__main__":
    main()
