"""What runs inside Spark's Python workers: Arrow batches in, Arrow batches of diagnosis rows out.

Nothing here imports pyspark.sql; a worker needs the mailtriage package and pyarrow. The engine is a
module-level singleton: Spark reuses a Python worker for many tasks (spark.python.worker.reuse,
on by default), so each worker loads the knowledge base once, from the cache file the driver shipped
with the job when there is one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ..errors import INTERNAL_ERROR
from ..triage import SCAN_ROW_FIELDS, scan_row

if TYPE_CHECKING:
    import pyarrow as pa

    from ..engine import Engine
    from ..intake import IntakeRecord, SkippedInput

# The output columns: the `scan --format jsonl` contract, its two optional fields as columns, and
# its skip notes' two fields (why an input gave no diagnosis, whether it was read). Types in
# OUTPUT_TYPES, in the same order.
OUTPUT_COLUMNS = (*SCAN_ROW_FIELDS, "error", "truncated", "skipped", "read")
OUTPUT_TYPES = {
    "reply_code": "int",
    "fallback": "boolean",
    "truncated": "boolean",
    "read": "boolean",
}

@dataclass(frozen=True)
class ShippedKnowledgeBase:
    """The compiled knowledge base a driver shipped with a job (`ship_knowledge_base`): the file's
    name among the job's files and the key its keyed hash was made with."""

    file: str
    key: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file}


_engine: Engine | None = None
_engine_key: ShippedKnowledgeBase | None = None
_engine_origin = ""
loads = 0  # how many times this worker process loaded the knowledge base (tests read it)


def worker_engine(kb: ShippedKnowledgeBase | None) -> Engine:
    """This worker's engine: from the shipped knowledge base when its file is there and its keyed
    hash checks out, else the installed rules. A worker outlives a job; a later job that ships other
    rules (another file name) gets them."""
    global _engine, _engine_key, _engine_origin, loads
    if _engine is None or kb != _engine_key:
        from ..engine import Engine

        loaded = None
        if kb is not None:
            from ..cache import unseal_knowledge_base

            try:
                with open(_shipped_path(kb.file), "rb") as handle:
                    loaded = unseal_knowledge_base(handle.read(), kb.key)
            except OSError:
                loaded = None
        _engine = Engine(loaded) if loaded is not None else Engine.load()
        _engine_origin = "shipped" if loaded is not None else "installed"
        _engine_key = kb
        loads += 1
    return _engine


def engine_state() -> tuple[int, int, str]:
    """(process id, knowledge-base loads in this process, where it came from), for tests and checks."""
    return os.getpid(), loads, _engine_origin


def _shipped_path(name: str) -> str:
    try:
        from pyspark import SparkFiles

        return SparkFiles.get(name)
    except Exception:  # not in a Spark worker: a plain path
        return name


def display_path(uri: str) -> str:
    """A local file as a plain path (what the single-process scan prints); other URIs unchanged."""
    if uri.startswith("file:"):
        return unquote(urlsplit(uri).path) or uri
    return uri


def skip_row(source: str, reason: str, file: str | None = None, read: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(OUTPUT_COLUMNS)
    row["file"] = file if file is not None else source
    row["source"] = source
    row["skipped"] = reason
    row["read"] = read
    return row


def _failure(exc: BaseException) -> str:
    """The reason for an input that raised: as the single-process scan words it (a bug to report;
    `scan` exits 3)."""
    return f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}"[:300]


def _diagnosis_row(record: IntakeRecord, engine: Engine, file: str) -> dict[str, Any]:
    try:
        row = scan_row(record, engine)
    except Exception as exc:  # one bad record must not fail the job
        return skip_row(record.source, _failure(exc), file, read=True)
    row.setdefault("error", None)
    row["truncated"] = bool(row.get("truncated"))
    row["skipped"] = None
    row["read"] = None
    return row


def rows_for_items(items: Iterable[IntakeRecord | SkippedInput], engine: Engine, file: str) -> list[dict[str, Any]]:
    from ..intake import SkippedInput

    rows = []
    for item in items:
        if isinstance(item, SkippedInput):
            rows.append(skip_row(item.source, item.reason, file, item.read))
        else:
            rows.append(_diagnosis_row(item, engine, file))
    return rows


def _to_batch(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.RecordBatch.from_pylist(rows, schema=schema)


def arrow_schema() -> pa.Schema:
    import pyarrow as pa

    kinds = {"int": pa.int32(), "boolean": pa.bool_()}
    return pa.schema([(name, kinds.get(OUTPUT_TYPES.get(name, ""), pa.string())) for name in OUTPUT_COLUMNS])


# One input of a batch: its display name and how to read it into records (None: the row had no content).
InputReader = tuple[str, "Callable[[], Iterable[IntakeRecord | SkippedInput]] | None"]


def _diagnose_inputs(
    batches: Iterable[pa.RecordBatch],
    kb: ShippedKnowledgeBase | None,
    inputs_of: Callable[[pa.RecordBatch], Iterable[InputReader]],
) -> Iterator[pa.RecordBatch]:
    """The loop every file- or row-shaped input shares: each input read whole, then diagnosed; an
    input that fails to read leaves one reason row, never a failed job or half a file."""
    schema = arrow_schema()
    engine = worker_engine(kb)
    for batch in batches:
        rows: list[dict[str, Any]] = []
        for name, read in inputs_of(batch):
            if read is None:
                rows.append(skip_row(name, "no content"))
                continue
            try:
                items = list(read())
            except Exception as exc:  # hostile input: a reason, never a failed job
                rows.append(skip_row(name, _failure(exc), read=True))
                continue
            rows.extend(rows_for_items(items, engine, name))
        if rows:
            yield _to_batch(rows, schema)


def diagnose_message_batches(
    batches: Iterable[pa.RecordBatch], kb: ShippedKnowledgeBase | None, path_column: str, content_column: str
) -> Iterator[pa.RecordBatch]:
    """binaryFile rows (a path and the file's bytes) to diagnosis rows, each file read as a scan reads it."""
    from ..intake.paths import iter_bytes_records

    def inputs_of(batch: pa.RecordBatch) -> Iterator[InputReader]:
        paths = batch.column(path_column).to_pylist()
        contents = batch.column(content_column).to_pylist()
        for uri, content in zip(paths, contents, strict=True):
            name = display_path(str(uri))
            if content is None:
                yield name, None
            else:
                yield name, partial(iter_bytes_records, bytes(content), name)

    return _diagnose_inputs(batches, kb, inputs_of)


def diagnose_line_batches(
    batches: Iterable[pa.RecordBatch],
    kb: ShippedKnowledgeBase | None,
    starts: dict[tuple[str, int], int] | None,
    file_column: str,
    position_column: str,
    text_column: str,
) -> Iterator[pa.RecordBatch]:
    """Log lines to diagnosis rows, one per delivery-failure line.

    With `starts`, the position column is the byte offset of the line's input split and line numbers
    are counted from the first line number of that split (rows of one split arrive in file order);
    without, the position column is the line number itself.
    """
    from ..intake.logs import log_time, parse_log_line

    schema = arrow_schema()
    engine = worker_engine(kb)
    seen: dict[tuple[str, int], int] = {}
    names: dict[str, str] = {}
    for batch in batches:
        rows: list[dict[str, Any]] = []
        files = batch.column(file_column).to_pylist()
        positions = batch.column(position_column).to_pylist()
        texts = batch.column(text_column).to_pylist()
        for uri, position, text in zip(files, positions, texts, strict=True):
            name = names.get(uri)
            if name is None:
                name = names[uri] = display_path(str(uri))
            if starts is not None:
                key = (uri, position)
                count = seen.get(key, 0)
                seen[key] = count + 1
                number = starts.get(key, 1) + count
            else:
                number = int(position) if position is not None else 0
            if not text:
                continue
            try:
                record = parse_log_line(str(text), name, number)
                if record is not None:
                    when = log_time(str(text))  # as parse_log_lines stamps its records
                    if when is not None:
                        record.extra["time"] = when
            except Exception as exc:  # hostile input: a reason, never a failed job
                rows.append(skip_row(f"{name}:{number}", _failure(exc), name, read=True))
                continue
            if record is not None:
                rows.append(_diagnosis_row(record, engine, name))
        if rows:
            yield _to_batch(rows, schema)


def count_split_lines(batches: Iterable[pa.RecordBatch], file_column: str, split_column: str) -> Iterator[pa.RecordBatch]:
    """(file, split offset, lines) for every input split in a partition; the driver turns the counts
    into each split's first line number."""
    import pyarrow as pa

    counts: dict[tuple[str, int], int] = {}
    for batch in batches:
        for key in zip(batch.column(file_column).to_pylist(), batch.column(split_column).to_pylist(), strict=True):
            counts[key] = counts.get(key, 0) + 1
    if counts:
        yield pa.RecordBatch.from_pylist(
            [{"file": file, "split": split, "lines": lines} for (file, split), lines in counts.items()],
            schema=pa.schema([("file", pa.string()), ("split", pa.int64()), ("lines", pa.int64())]),
        )


def diagnose_local_file_batches(batches: Iterable[pa.RecordBatch], kb: ShippedKnowledgeBase | None) -> Iterator[pa.RecordBatch]:
    """Local file paths to diagnosis rows: each worker reads the files itself, exactly as the
    single-process scan does (the paths must be visible to the workers: local mode or a shared mount)."""
    from ..intake import iter_path_records

    def inputs_of(batch: pa.RecordBatch) -> Iterator[InputReader]:
        for name in batch.column("path").to_pylist():
            yield str(name), partial(iter_path_records, [str(name)])

    return _diagnose_inputs(batches, kb, inputs_of)


def diagnose_row_batches(
    batches: Iterable[pa.RecordBatch],
    kb: ShippedKnowledgeBase | None,
    reader: Callable[[dict[str, Any]], Iterable[IntakeRecord | SkippedInput]],
    file_column: str,
) -> Iterator[pa.RecordBatch]:
    """Any table rows to diagnosis rows through `reader`, which turns one row into records (the
    extension point for message-trace rows)."""

    def inputs_of(batch: pa.RecordBatch) -> Iterator[InputReader]:
        for item in batch.to_pylist():
            yield str(item.get(file_column) or "<row>"), partial(reader, item)

    return _diagnose_inputs(batches, kb, inputs_of)
