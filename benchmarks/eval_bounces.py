"""Evaluate NDR intake on a folder of real bounces against a peer tool's answers.

Usage: PYTHONPATH=engine python benchmarks/eval_bounces.py DIR [REFERENCE.json] [--repeat N] [--no-sisimai]
       [--show-mismatches] [--write-reference OUT.json]

REFERENCE.json maps file name -> list of records with `recipient` and `deliverystatus` (Sisimai's
output format). Without it, the reference is made on the spot by the installed Sisimai
(`apt-get install libsisimai-perl`), so any folder of bounces can be evaluated, not only the
shared corpus; `--write-reference` keeps that answer. Prints: files that yielded records, status agreement where the reference has a
real code (its invented X.0.9NN codes are skipped), records with a specific rule, records from
`not-bounce-*` files (must be 0) and messages per second, next to Sisimai's when it is installed.
This is an evaluation script, not a test: the project's tests never depend on the corpus.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mailtriage.intake import IntakeRecord
from mailtriage.intake.ndr import parse_message

INVENTED = re.compile(r"^[45]\.0\.9\d\d$")
# Reports that are not delivery failures: no failed-recipient records are expected from them.
NOT_FAILURE_REASONS = {"feedback", "vacation", "delivered"}

SISIMAI_SCRIPT = r"""
use strict; use Sisimai;
my $dir = shift @ARGV; my $n = 0;
opendir(my $dh, $dir) or die; my @files = sort grep { -f "$dir/$_" } readdir($dh); closedir($dh);
my ($u0, $s0) = times;
for my $f (@files) { my $v = Sisimai->make("$dir/$f", 'delivered' => 1); $n += scalar(@$v) if $v; }
my ($u1, $s1) = times;
printf("%d %.6f\n", scalar(@files), ($u1 - $u0) + ($s1 - $s0));
"""

# The same fields as ../shared/corpus/sisimai-reference.json, for a folder that has no reference yet.
SISIMAI_REFERENCE_SCRIPT = r"""
use strict; use Sisimai; use JSON::PP;
my $dir = shift @ARGV; my %out;
opendir(my $dh, $dir) or die; my @files = sort grep { -f "$dir/$_" } readdir($dh); closedir($dh);
my @keys = qw(recipient deliverystatus replycode reason smtpcommand diagnosticcode softbounce rhost smtpagent);
for my $f (@files) {
  my $v = Sisimai->make("$dir/$f", 'delivered' => 1) || [];
  $out{$f} = [ map { my $d = $_->damn; +{ map { $_ => $d->{$_} } @keys } } @$v ];
}
print JSON::PP->new->canonical->encode(\%out);
"""


def parse_folder(folder: Path) -> tuple[dict[str, list[IntakeRecord]], float]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    data = [(p.name, p.read_bytes()) for p in files]
    started = time.process_time()  # CPU time: fairer than wall-clock on a shared machine
    results = {name: parse_message(raw, source=name) for name, raw in data}
    return results, time.process_time() - started


def sisimai_seconds(folder: Path) -> tuple[int, float] | None:
    """Files parsed and CPU seconds Sisimai spent parsing them (read from Perl's own `times`)."""
    if shutil.which("perl") is None:
        return None
    if subprocess.run(["perl", "-MSisimai", "-e1"], capture_output=True).returncode != 0:
        return None
    done = subprocess.run(["perl", "-e", SISIMAI_SCRIPT, str(folder)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return None
    count, seconds = done.stdout.split()
    return int(count), float(seconds)


def sisimai_reference(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Sisimai's records for every file of `folder` (raises SystemExit when Sisimai is missing)."""
    if shutil.which("perl") is None or subprocess.run(["perl", "-MSisimai", "-e1"], capture_output=True).returncode:
        raise SystemExit("no REFERENCE.json given and Sisimai is not installed (apt-get install libsisimai-perl)")
    done = subprocess.run(["perl", "-e", SISIMAI_REFERENCE_SCRIPT, str(folder)], capture_output=True, text=True,
                          timeout=1200, check=True)
    reference: dict[str, list[dict[str, Any]]] = json.loads(done.stdout)
    return reference


def specific_rate(results: dict[str, list[IntakeRecord]]) -> tuple[int, int, dict[str, int]] | None:
    try:
        from mailtriage.engine import Engine
    except ImportError:
        return None
    engine = Engine.load()
    total = specific = 0
    rules: dict[str, int] = {}
    for records in results.values():
        for record in records:
            total += 1
            diagnosis = engine.diagnose(record.facts)
            if diagnosis.specific:
                specific += 1
            if diagnosis.matches:
                rule_id = diagnosis.matches[0].rule.id
                rules[rule_id] = rules.get(rule_id, 0) + 1
    return total, specific, rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("folder", type=Path)
    parser.add_argument("reference", type=Path, nargs="?", help="peer answers; default: run Sisimai now")
    parser.add_argument("--write-reference", type=Path, metavar="OUT", help="save the reference Sisimai made")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (median and spread reported)")
    parser.add_argument("--no-sisimai", action="store_true")
    parser.add_argument("--show-mismatches", action="store_true")
    args = parser.parse_args(argv)
    if args.reference is None:
        reference = sisimai_reference(args.folder)
        if args.write_reference:
            args.write_reference.write_text(json.dumps(reference, indent=1, sort_keys=True, ensure_ascii=False))
    else:
        reference = json.loads(args.reference.read_text())

    results, _ = parse_folder(args.folder)
    timings = [parse_folder(args.folder)[1] for _ in range(args.repeat)]
    n_files = len(results)

    failure_files = [
        name for name in results
        if not name.startswith("not-bounce") and not (
            reference.get(name) and all(r.get("reason") in NOT_FAILURE_REASONS for r in reference[name])
        )
    ]
    with_records = [name for name in failure_files if results[name]]
    not_bounce_records = sum(len(results[n]) for n in results if n.startswith("not-bounce"))
    other_reports = [n for n in results if n not in failure_files and not n.startswith("not-bounce")]
    other_with_records = sum(1 for n in other_reports if results[n])

    compared = agree = agree_attempt = missing = 0
    mismatches: list[str] = []
    for name, ref_records in sorted(reference.items()):
        ours = results.get(name, [])
        by_recipient = {(r.recipient or "").lower(): r for r in ours}
        for ref in ref_records:
            status = ref.get("deliverystatus") or ""
            if not status or INVENTED.match(status) or ref.get("reason") in NOT_FAILURE_REASONS:
                continue
            compared += 1
            record = by_recipient.get(ref["recipient"].lower())
            if record is None and len(ours) == 1 and len(ref_records) == 1:
                record = ours[0]
            if record is None:
                missing += 1
                mismatches.append(f"{name}: {ref['recipient']} expected {status}, no record")
                continue
            reported = record.extra.get("report_status") or record.facts.get("smtp.enhanced")
            if reported == status:
                agree += 1
            else:
                mismatches.append(f"{name}: {ref['recipient']} expected {status}, got {reported} "
                                  f"(attempt {record.facts.get('smtp.enhanced')})")
            if record.facts.get("smtp.enhanced") == status:
                agree_attempt += 1

    median = statistics.median(timings)
    spread = (max(timings) - min(timings)) / 2
    rate = n_files / median
    print(f"files: {n_files} ({len(failure_files)} delivery failures, {len(other_reports)} other reports, "
          f"{n_files - len(failure_files) - len(other_reports)} not-bounce)")
    print(f"failure files with records: {len(with_records)}/{len(failure_files)} "
          f"({100 * len(with_records) / max(1, len(failure_files)):.1f}%)")
    print(f"other reports (feedback/auto-reply) with records: {other_with_records}/{len(other_reports)}")
    print(f"records: {sum(len(v) for v in results.values())}; from not-bounce files: {not_bounce_records}")
    print(f"status agreement (code the report states): {agree}/{compared} ({100 * agree / max(1, compared):.1f}%), "
          f"missing records: {missing}")
    print(f"status agreement (diagnosed attempt's code): {agree_attempt}/{compared} "
          f"({100 * agree_attempt / max(1, compared):.1f}%)")
    specific = specific_rate(results)
    if specific is None:
        print("specific rule: engine not available")
    else:
        total, hits, rules = specific
        print(f"records with a specific rule: {hits}/{total} ({100 * hits / max(1, total):.1f}%)")
        top = sorted(rules.items(), key=lambda item: -item[1])[:10]
        print("top rules: " + ", ".join(f"{rule} {count}" for rule, count in top))
    print(f"mailtriage: {rate:.0f} messages/s (median of {len(timings)} runs {median * 1000:.1f} ms CPU, "
          f"spread +/- {spread * 1000:.1f} ms)")
    if not args.no_sisimai:
        measured = sisimai_seconds(args.folder)
        if measured is None:
            print("sisimai: not installed (perl -MSisimai fails); no baseline")
        else:
            count, seconds = measured
            print(f"sisimai: {count / seconds:.0f} messages/s ({seconds * 1000:.1f} ms CPU for {count} files, "
                  "one run; same files, same machine, one core)")
            print(f"speed-up: {rate / (count / seconds):.1f}x")
    if args.show_mismatches:
        print("\n".join(mismatches))
    return 0


if __name__ == "__main__":
    sys.exit(main())
