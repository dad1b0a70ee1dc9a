"""`mailtriage scan`: diagnose every bounce, DSN and log failure under some paths, in bulk."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..engine import Engine

MAX_LISTED_UNMATCHED = 20
FILES_PER_TASK = 8

_worker_engine: Engine | None = None


def _init_worker(rule_dirs: tuple[str, ...]) -> None:
    global _worker_engine
    from ..engine import Engine

    _worker_engine = Engine.load(rule_dirs or None)


def _scan_files(files: list[str]) -> list[dict[str, Any]]:
    """Rows and skip notes for a batch of files (runs in a worker process)."""
    from ..intake import iter_path_records
    from ..triage import scan_rows

    assert _worker_engine is not None
    return list(scan_rows(iter_path_records(files), _worker_engine))


@dataclass
class Summary:
    files: int = 0
    records: int = 0
    specific: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    by_domain: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    unmatched_count: int = 0

    def add(self, row: dict[str, Any]) -> None:
        if "skipped" in row:
            self.skipped[row["skipped"]] += 1
            return
        self.records += 1
        self.by_rule[row["rule"] or "(none)"] += 1
        self.by_code[row["status"] or (str(row["reply_code"]) if row["reply_code"] else "(no code)")] += 1
        self.by_domain[row["domain"] or "(unknown)"] += 1
        self.by_action[row["action"] or "failed"] += 1
        if row["rule"] and not row["fallback"]:
            self.specific += 1
        else:
            self.unmatched_count += 1
            if len(self.unmatched) < MAX_LISTED_UNMATCHED:
                self.unmatched.append({k: row[k] for k in ("source", "recipient", "status", "rule")})

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "specific": self.specific,
            "not_specific": self.unmatched_count,
            "by_rule": dict(self.by_rule.most_common()),
            "by_code": dict(self.by_code.most_common()),
            "by_domain": dict(self.by_domain.most_common()),
            "by_action": dict(self.by_action.most_common()),
            "skipped": dict(self.skipped.most_common()),
            "not_specific_examples": self.unmatched,
        }


def _batches(files: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(files), FILES_PER_TASK):
        yield files[start : start + FILES_PER_TASK]


def _run(files: list[str], jobs: int, rule_dirs: tuple[str, ...]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(files done in this step, rows) as the work completes, in input order."""
    batches = list(_batches(files))
    if jobs <= 1 or len(batches) <= 1:
        _init_worker(rule_dirs)
        for batch in batches:
            yield len(batch), _scan_files(batch)
        return
    import multiprocessing

    # Each worker loads its own Engine: the durable-rules state must not be shared across a fork.
    context = multiprocessing.get_context("spawn")
    with context.Pool(jobs, initializer=_init_worker, initargs=(rule_dirs,)) as pool:
        for batch, rows in zip(batches, pool.imap(_scan_files, batches), strict=True):
            yield len(batch), rows


def _print_summary(summary: Summary) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{summary.records}[/] failed or delayed recipient(s) in {summary.files} file(s); "
        f"[green]{summary.specific}[/] with a specific diagnosis, "
        f"[yellow]{summary.unmatched_count}[/] without."
    )
    for title, counter in (("Diagnosis rule", summary.by_rule), ("Status code", summary.by_code),
                           ("Destination domain", summary.by_domain)):
        if not counter:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column(title)
        table.add_column("count", justify="right")
        for key, count in counter.most_common(15):
            table.add_row(key, str(count))
        if len(counter) > 15:
            table.add_row(f"... {len(counter) - 15} more", str(sum(c for _, c in counter.most_common()[15:])))
        console.print(table)
    if summary.unmatched:
        console.print("[bold]Nothing specific matched:[/]")
        for item in summary.unmatched:
            console.print(f"  {item['source']}  {item['recipient'] or ''}  {item['status'] or '(no code)'}")
        if summary.unmatched_count > len(summary.unmatched):
            console.print(f"  ... and {summary.unmatched_count - len(summary.unmatched)} more")
    if summary.skipped:
        console.print("[bold]Skipped inputs:[/]")
        for reason, count in summary.skipped.most_common():
            console.print(f"  {count} x {reason}")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True,
              help="text: summary tables; json: the summary as one object; jsonl: one object per recipient.")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes (each loads its own engine).")
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Extra rules folder (repeatable).")
@click.option("--engine", "runner", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="local: this machine's processes (--jobs); spark: an Apache Spark job (needs the [spark] extra "
                   "and Java 17); PATHS may then be hdfs://, s3a:// or file:// URIs.")
@click.option("--master", default="local[2]", show_default=True,
              help="With --engine spark: the Spark master URL (local[N], spark://host:7077, yarn...).")
@click.option("--output", type=click.Path(dir_okay=True), default=None,
              help="With --engine spark: also write every row (and skipped input) as Parquet to this path.")
def scan(paths: tuple[str, ...], fmt: str, jobs: int, rule_dirs: tuple[str, ...], runner: str, master: str,
         output: str | None) -> None:
    """Diagnose every failed recipient found in bounce messages (.eml, mbox, maildir) and MTA logs
    (Postfix, Exim, Sendmail) under PATHS, and summarise.

    \b
    Examples:
      mailtriage scan bounces/
      mailtriage scan ~/Maildir/.Bounces /var/log/mail.log --jobs 4
      mailtriage scan bounces/ --format jsonl > diagnoses.jsonl
      mailtriage scan bounces/ --format json | jq .by_rule
      mailtriage scan --engine spark --output diagnoses.parquet /var/log/mail/

    jsonl fields: file, source, kind, recipient, status, reply_code, rule, fallback, category,
    action, outer_status, domain, system, time, message_id (when the input says: traces, logs, NDRs).

    Exit status: 0 every recipient got a specific diagnosis, 1 some did not (or none was found),
    2 no path could be read.
    """
    from ..intake.paths import iter_files

    if output and runner != "spark":
        raise click.UsageError("--output needs --engine spark")
    files = list(iter_files(paths))
    summary = Summary(files=len(files))
    readable = False
    progress = None
    task = None
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True)
        task = progress.add_task("scan", total=len(files))
        progress.start()
    try:
        if runner == "spark":
            from ..spark import scan_paths

            steps: Iterator[tuple[int, list[dict[str, Any]]]] = iter(
                [(len(files), list(scan_paths(paths, master=master, output=output, rule_dirs=rule_dirs)))])
        else:
            steps = _run(files, jobs, rule_dirs)
        for done, rows in steps:
            for row in rows:
                summary.add(row)
                if "skipped" not in row or row["skipped"] != "no such file or directory":
                    readable = True
                if fmt == "jsonl" and "skipped" not in row:
                    click.echo(json.dumps(row, ensure_ascii=False))
            if progress is not None and task is not None:
                progress.advance(task, done)
    finally:
        if progress is not None:
            progress.stop()
    if fmt == "json":
        click.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    elif fmt == "text":
        _print_summary(summary)
    else:
        for reason, count in summary.skipped.most_common():
            click.echo(f"mailtriage: skipped {count} input(s): {reason}", err=True)
    if not readable:
        sys.exit(2)
    sys.exit(0 if summary.records and summary.unmatched_count == 0 else 1)
