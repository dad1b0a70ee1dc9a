"""`mailtriage scan`: diagnose every bounce, DSN and log failure under some paths, in bulk."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from ..errors import INTERNAL_ERROR

if TYPE_CHECKING:
    from ..engine import Engine

MAX_LISTED_UNMATCHED = 20
MAX_SKIP_EXAMPLES = 5
# Each worker holds its own engine (tens of MB): more workers than this only thrash.
MAX_JOBS = min(32, 4 * (os.cpu_count() or 1))
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
    """Counts of one scan. Every input is accounted for once: `files` = files with records +
    files read without any + files skipped (not read)."""

    records: int = 0
    specific: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    by_domain: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    unmatched_count: int = 0
    internal_errors: int = 0
    # file -> 2 records found, 1 read without a record, 0 not read (the best state wins)
    _state: dict[str, int] = field(default_factory=dict)

    def _note_file(self, name: str, state: int) -> None:
        if self._state.get(name, -1) < state:
            self._state[name] = state

    def _count(self, state: int) -> int:
        return sum(1 for value in self._state.values() if value == state)

    @property
    def files(self) -> int:
        return len(self._state)

    @property
    def files_read(self) -> int:
        return self.files - self._count(0)

    def add(self, row: dict[str, Any]) -> None:
        if "skipped" in row:
            reason = row["skipped"]
            self.skipped[reason] += 1
            examples = self.skipped_examples.setdefault(reason, [])
            if len(examples) < MAX_SKIP_EXAMPLES:
                examples.append(row["source"])
            if reason.startswith(INTERNAL_ERROR):
                self.internal_errors += 1
            self._note_file(row["source"], 1 if row.get("read") else 0)
            return
        self._note_file(row["file"], 2)
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

    def exit_status(self) -> int:
        """3 an input hit an internal error, 2 nothing could be read, 0 every recipient found got
        a specific diagnosis, 1 otherwise (some did not, or none was found)."""
        if self.internal_errors:
            return 3
        if not self.files_read:
            return 2
        return 0 if self.records and self.unmatched_count == 0 else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "files_with_records": self._count(2),
            "files_without_records": self._count(1),
            "files_skipped": self._count(0),
            "records": self.records,
            "specific": self.specific,
            "not_specific": self.unmatched_count,
            "by_rule": dict(self.by_rule.most_common()),
            "by_code": dict(self.by_code.most_common()),
            "by_domain": dict(self.by_domain.most_common()),
            "by_action": dict(self.by_action.most_common()),
            "skipped": dict(self.skipped.most_common()),
            "skipped_examples": {reason: self.skipped_examples[reason] for reason, _ in self.skipped.most_common()},
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

    if sys.platform.startswith("linux"):
        # Load once, then fork: workers start at once with the engine (and the durable-rules
        # rulesets built so far) inherited copy-on-write. Tested: durable-rules state survives a
        # fork and forked workers give the same rows as one process. Freezing the loaded objects
        # keeps the collector from touching (and so copying) their pages in every worker.
        import gc

        _init_worker(rule_dirs)
        assert _worker_engine is not None
        _worker_engine.prepare()  # built once here rather than once in every worker
        gc.freeze()
        pool = multiprocessing.get_context("fork").Pool(jobs)
    else:  # no safe fork (macOS, Windows): each worker loads its own engine
        pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_init_worker, initargs=(rule_dirs,))
    with pool:
        for batch, rows in zip(batches, pool.imap(_scan_files, batches), strict=True):
            yield len(batch), rows


def _print_summary(summary: Summary) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..textsafe import visible

    def shown(value: object) -> str:
        # Codes, domains, file names and reasons come from the inputs: no raw control character
        # (terminal escape) and no rich markup from them.
        return escape(visible(str(value)))

    console = Console(highlight=False)
    counts = summary.to_dict()
    console.print(
        f"[bold]{summary.records}[/] failed or delayed recipient(s) in {summary.files} file(s); "
        f"[green]{summary.specific}[/] with a specific diagnosis, "
        f"[yellow]{summary.unmatched_count}[/] without."
    )
    console.print(
        f"Files: {counts['files_with_records']} with records, {counts['files_without_records']} read without any, "
        f"{counts['files_skipped']} skipped."
    )
    for title, counter in (("Diagnosis rule", summary.by_rule), ("Status code", summary.by_code),
                           ("Destination domain", summary.by_domain)):
        if not counter:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column(title)
        table.add_column("count", justify="right")
        for key, count in counter.most_common(15):
            table.add_row(shown(key), str(count))
        if len(counter) > 15:
            table.add_row(f"... {len(counter) - 15} more", str(sum(c for _, c in counter.most_common()[15:])))
        console.print(table)
    if summary.unmatched:
        console.print("[bold]Nothing specific matched:[/]")
        for item in summary.unmatched:
            console.print(f"  {shown(item['source'])}  {shown(item['recipient'] or '')}  {shown(item['status'] or '(no code)')}")
        if summary.unmatched_count > len(summary.unmatched):
            console.print(f"  ... and {summary.unmatched_count - len(summary.unmatched)} more")
    if summary.skipped:
        console.print("[bold]Inputs without records:[/]")
        for line in _skip_lines(summary):
            console.print(shown(line))


def _skip_lines(summary: Summary) -> Iterator[str]:
    """One line per reason, with the count and the first file names."""
    for reason, count in summary.skipped.most_common():
        names = summary.skipped_examples.get(reason, [])
        more = f", ... {count - len(names)} more" if count > len(names) else ""
        yield f"  {count} x {reason}: {', '.join(names)}{more}"


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True,
              help="text: summary tables; json: the summary as one object; jsonl: one object per recipient.")
@click.option("--jobs", "-j", type=click.IntRange(1, MAX_JOBS), default=1, show_default=True,
              help=f"Worker processes (on Linux they share the engine loaded once; at most {MAX_JOBS} here, 4 per CPU up to 32).")
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
    Every input that gave no record has a row too: {"source", "skipped": reason, "read":
    whether it was read}; hidden files, non-maildir hidden folders, FIFOs, devices and
    unreadable paths are listed that way, never dropped. Symbolic links to folders are followed
    once; Maildir++ folders (.Bounces) are read.

    Exit status: 0 every recipient found got a specific diagnosis, 1 some did not (or none was
    found), 2 nothing could be read (or bad usage), 3 an internal error on some input (a bug:
    the input is listed, the rest was still scanned).
    """
    from ..intake import SkippedInput
    from ..intake.paths import walk
    from ..textsafe import json_text, visible

    if output and runner != "spark":
        raise click.UsageError("--output needs --engine spark")
    files: list[str] = []
    skips: list[dict[str, Any]] = []
    # Spark walks the paths itself (local ones on the driver, URIs through Spark) and notes the skips.
    for entry in walk(paths) if runner == "local" else ():
        if isinstance(entry, SkippedInput):
            skips.append(entry.to_dict())
        else:
            files.append(str(entry))
    summary = Summary()
    for row in skips:
        summary.add(row)
        if fmt == "jsonl":
            click.echo(json_text(row, indent=None))
    progress = None
    task = None
    if sys.stderr.isatty() and runner == "local":
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=True)
        task = progress.add_task("scan", total=len(files))
        progress.start()
    try:
        steps: Iterator[tuple[int, Iterable[dict[str, Any]]]]
        if runner == "spark":
            from ..spark import scan_paths

            steps = iter([(0, scan_paths(paths, master=master, output=output, rule_dirs=rule_dirs))])
        else:
            steps = _run(files, jobs, rule_dirs)
        for done, rows in steps:
            for row in rows:
                summary.add(row)
                if fmt == "jsonl":
                    click.echo(json_text(row, indent=None))
            if progress is not None and task is not None:
                progress.advance(task, done)
    finally:
        if progress is not None:
            progress.stop()
    if fmt == "json":
        click.echo(json_text(summary.to_dict()))
    elif fmt == "text":
        _print_summary(summary)
    else:
        for line in _skip_lines(summary):
            click.echo(f"mailtriage: no records: {visible(line.strip())}", err=True)
    sys.exit(summary.exit_status())
