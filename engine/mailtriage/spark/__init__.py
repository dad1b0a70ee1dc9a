"""The same scan on Apache Spark: DataFrames of log lines, raw messages (or any file `scan` reads:
mbox, trace exports), message-trace rows or any table rows in, a DataFrame of diagnoses out (needs the `[spark]` extra: PySpark 4 and Java 17+).

The output has the columns of `scan --format jsonl` (triage.SCAN_ROW_FIELDS, its optional `error`
and `truncated`, and its skip notes' `skipped` and `read`):

| column | type | meaning |
|---|---|---|
| file, source, kind, recipient, status | string | as in `scan --format jsonl` |
| reply_code | int | the SMTP reply code |
| rule, category, action, outer_status, domain, system, time, message_id | string | as in `scan --format jsonl` |
| fallback | boolean | the top rule is a generic one |
| error | string | the engine could not diagnose this record (the record's facts are still there) |
| truncated | boolean | the message was longer than the reader's cap and only its start was read |
| skipped | string | this row is a note, not a diagnosis: the input gave none, and why (empty, binary, not a bounce, nested too deeply, hidden file, internal error: ...); every diagnosis column is null |
| read | boolean | on a note: whether the input was read (and held nothing to diagnose) or not read at all |

A bad input never fails the job: it becomes a `skipped` row. The work is one `mapInArrow` per
input, with no shuffle; each Python worker loads the knowledge base once, from the compiled cache
the driver ships with the job (`ship_knowledge_base`).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..triage import SCAN_ROW_FIELDS
from .worker import OUTPUT_COLUMNS, OUTPUT_TYPES, ShippedKnowledgeBase

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from ..intake import IntakeRecord, SkippedInput

__all__ = [
    "OUTPUT_COLUMNS",
    "WHOLE_FILE_BYTES",
    "ShippedKnowledgeBase",
    "diagnose_log_files",
    "diagnose_log_lines",
    "diagnose_messages",
    "diagnose_rows",
    "diagnose_trace_rows",
    "local_session",
    "output_schema",
    "scan",
    "scan_paths",
    "ship_knowledge_base",
]

# Files up to this size are read whole by one task (messages, mbox files, small logs); larger log
# files are read as lines, which Spark splits between tasks.
WHOLE_FILE_BYTES = 32 * 1024 * 1024
# Arrow batches of whole files are cut by size too, so a batch of large messages stays small.
ARROW_BATCH_BYTES = 64 * 1024 * 1024


def output_schema() -> str:
    """The output columns as a Spark DDL schema string."""
    return ", ".join(f"{name} {OUTPUT_TYPES.get(name, 'string')}" for name in OUTPUT_COLUMNS)


def local_session(master: str = "local[2]", app_name: str = "mailtriage-scan") -> SparkSession:
    """A SparkSession for a scan from one machine: no web UI, bound to 127.0.0.1 for local masters."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master).appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.maxBytesPerBatch", str(ARROW_BATCH_BYTES))
        .config("spark.sql.files.ignoreMissingFiles", "true")
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        # Local workers must run this interpreter (the one with mailtriage installed), not `python3`;
        # PySpark reads the variable when the context starts.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # bind and advertise loopback only
    return builder.getOrCreate()


# What this driver process has shipped, by Spark application and the rules' content key: shipping
# the same rules again reuses the file and key (Spark never re-fetches a file name it has served,
# and workers keep the engine they loaded); a new application (a session started again) gets it anew.
_shipped: dict[tuple[str, str], ShippedKnowledgeBase] = {}


def ship_knowledge_base(spark: SparkSession, rule_dirs: Sequence[str | Path] = ()) -> ShippedKnowledgeBase:
    """Compile the knowledge base on the driver (bundled rules plus `rule_dirs`) and ship it with the
    job (`SparkContext.addFile`); pass the result as `kb=` to the diagnose functions. Raises
    RuleError for broken rules.

    The file is sealed like the local cache (a keyed hash checked before anything is unpickled), under
    a random key of this driver's that travels inside the tasks, as the job's code does, never in the
    file: a worker unpickles only what this driver wrote. The user's own cache secret never leaves it.
    """
    from ..cache import content_key, load_cached_knowledge_base, seal_knowledge_base
    from ..engine import rule_dirs as all_rule_dirs
    from ..errors import RuleError

    dirs = all_rule_dirs(rule_dirs, True)
    content = content_key(dirs)
    application = str(spark.sparkContext.applicationId)
    shipped = _shipped.get((application, content))
    if shipped is not None:
        return shipped
    kb = load_cached_knowledge_base(dirs)
    if kb.errors:
        raise RuleError(kb.errors)
    import atexit
    import secrets
    import shutil
    import tempfile

    key = secrets.token_bytes(32)
    folder = Path(tempfile.mkdtemp(prefix="mailtriage-kb-"))  # 0700, removed when the driver exits
    atexit.register(shutil.rmtree, folder, True)
    # A name of this driver's own: a worker reused from another application never mistakes its file.
    path = folder / f"kb-{content}-{secrets.token_hex(8)}.pickle"
    path.write_bytes(seal_knowledge_base(kb, key))
    spark.sparkContext.addFile(str(path))
    shipped = _shipped[(application, content)] = ShippedKnowledgeBase(path.name, key)
    return shipped


def diagnose_messages(
    frame: DataFrame, *, kb: ShippedKnowledgeBase | None = None, path: str = "path", content: str = "content"
) -> DataFrame:
    """Diagnose a DataFrame of whole files (`spark.read.format("binaryFile")`: a path and the bytes):
    each file is read as `scan` reads it (a message, an mbox, log lines or a pasted reply)."""
    from .worker import diagnose_message_batches

    work = functools.partial(diagnose_message_batches, kb=kb, path_column=path, content_column=content)
    return frame.select(path, content).mapInArrow(work, output_schema())


def diagnose_log_lines(
    frame: DataFrame, *, kb: ShippedKnowledgeBase | None = None, file: str = "file", line: str = "line", text: str = "value"
) -> DataFrame:
    """Diagnose a DataFrame of log lines that carries each line's file and line number."""
    from .worker import diagnose_line_batches

    work = functools.partial(diagnose_line_batches, kb=kb, starts=None, file_column=file,
                             position_column=line, text_column=text)
    return frame.select(file, line, text).mapInArrow(work, output_schema())


def diagnose_log_files(spark: SparkSession, paths: Sequence[str], *, kb: ShippedKnowledgeBase | None = None) -> DataFrame:
    """Diagnose log files read as lines (`spark.read.text`, split between tasks), numbering lines as
    the single-process scan does.

    Line numbers cost a first pass that counts the lines of every input split (no shuffle: the
    counts come back to the driver, a few numbers per split). A file without a failure gives no row
    (`scan` adds the single-process scan's note for it).
    """
    return _log_files_frame(spark, paths, kb)[0]


def _log_files_frame(
    spark: SparkSession, paths: Sequence[str], kb: ShippedKnowledgeBase | None
) -> tuple[DataFrame, dict[str, int]]:
    """`diagnose_log_files` and the number of lines of each file, by the name its rows carry."""
    from pyspark.sql import functions as F

    from .worker import count_split_lines, diagnose_line_batches, display_path

    lines = spark.read.text(list(paths)).select(
        F.col("_metadata.file_path").alias("file"), F.col("_metadata.file_block_start").alias("split"), "value"
    )
    counting = functools.partial(count_split_lines, file_column="file", split_column="split")
    counts = lines.select("file", "split").mapInArrow(counting, "file string, split long, lines long").collect()
    starts: dict[tuple[str, int], int] = {}
    next_line: dict[str, int] = {}
    for row in sorted(counts, key=lambda r: (r["file"], r["split"])):
        first = next_line.get(row["file"], 1)
        starts[(row["file"], row["split"])] = first
        next_line[row["file"]] = first + row["lines"]
    work = functools.partial(diagnose_line_batches, kb=kb, starts=starts, file_column="file",
                             position_column="split", text_column="value")
    totals = {display_path(uri): following - 1 for uri, following in next_line.items()}
    return lines.mapInArrow(work, output_schema()), totals


def diagnose_rows(
    frame: DataFrame,
    reader: Callable[[dict[str, Any]], Iterable[IntakeRecord | SkippedInput]],
    *,
    kb: ShippedKnowledgeBase | None = None,
    file: str = "file",
) -> DataFrame:
    """Diagnose any table through `reader`, a picklable function from one row (a dict) to intake
    records or skip notes: the extension point for message-trace rows, whose format is not fixed yet."""
    from .worker import diagnose_row_batches

    work = functools.partial(diagnose_row_batches, kb=kb, reader=reader, file_column=file)
    return frame.mapInArrow(work, output_schema())


def diagnose_trace_rows(frame: DataFrame, *, kb: ShippedKnowledgeBase | None = None, source: str | None = None) -> DataFrame:
    """Diagnose a table of Exchange Online message-trace rows (the columns of the exports read by
    `intake.trace`: Get-MessageTraceDetailV2, the admin centre's reports, Graph), one row at a time;
    `source` names a column that says where each row came from. Give detail rows, or summary rows
    alone: one row cannot tell whether its message has detail rows elsewhere."""
    return diagnose_rows(frame, functools.partial(_trace_row_items, source_column=source), kb=kb,
                         file=source or "file")


def _trace_row_items(row: dict[str, Any], source_column: str | None) -> list[IntakeRecord | SkippedInput]:
    from ..intake.trace import trace_row_record

    source = str(row.get(source_column) or "<trace>") if source_column else "<trace>"
    record = trace_row_record(row, source)
    return [record] if record is not None else []


def _is_uri(name: str) -> bool:
    return "://" in name


def _looks_like_log(head: bytes) -> bool:
    from ..intake import detect_kind
    from ..intake.paths import is_binary

    return bool(head.strip()) and not is_binary(head) and not head.startswith(b"From ") and detect_kind(head) == "log"


def _hadoop_safe(name: str) -> bool:
    # Hadoop's Path cannot hold a colon in a file name (maildir names have one) and globs the rest.
    return not any(char in name for char in ":*?[]{}%\\")


def _plan_local(files: Sequence[str], whole_file_bytes: int) -> tuple[list[str], list[str]]:
    """(files read whole by one task, large log files read as lines) among local files."""
    from ..intake.paths import SNIFF_BYTES

    whole: list[str] = []
    lines: list[str] = []
    for name in files:
        try:
            size = os.path.getsize(name)
            if size > whole_file_bytes and _hadoop_safe(os.path.abspath(name)):
                with open(name, "rb") as handle:
                    if _looks_like_log(handle.read(SNIFF_BYTES)):
                        lines.append(name)
                        continue
        except OSError:
            pass  # the worker reads it again and reports why it cannot
        whole.append(name)
    return whole, lines


def _plan_uris(spark: SparkSession, uris: Sequence[str], whole_file_bytes: int) -> tuple[DataFrame, list[str]]:
    """(binaryFile DataFrame of the files read whole, large log files read as lines) under URIs."""
    from pyspark.sql import functions as F

    from ..intake.paths import SNIFF_BYTES

    files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(list(uris))
    # binaryFile pushes the length filter down: large files' bytes are never loaded here.
    whole = files.where(F.col("length") <= whole_file_bytes)
    lines: list[str] = []
    for row in files.where(F.col("length") > whole_file_bytes).select("path").collect():
        if _looks_like_log(_hadoop_head(spark, row["path"], SNIFF_BYTES)):
            lines.append(row["path"])
    large = files.where(F.col("length") > whole_file_bytes)
    if lines:
        large = large.where(~F.col("path").isin(lines))
    return whole.unionByName(large), lines


def _hadoop_head(spark: SparkSession, uri: str, size: int) -> bytes:
    """The first bytes of a file on any Hadoop file system (read on the driver, for a few large files)."""
    jvm: Any = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(uri)
    system = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    stream = system.open(hadoop_path)
    try:
        length = min(size, int(system.getFileStatus(hadoop_path).getLen()))
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream, length))
    finally:
        stream.close()


def scan(
    spark: SparkSession,
    paths: Sequence[str],
    *,
    rule_dirs: Sequence[str | Path] = (),
    whole_file_bytes: int = WHOLE_FILE_BYTES,
) -> DataFrame:
    """What `mailtriage scan PATHS` finds, as a DataFrame of OUTPUT_COLUMNS.

    Local paths are listed on the driver and read by the workers themselves (so they must see the
    same files: a local master, or a shared mount); URIs (`hdfs://`, `s3a://`, `file://`) are read
    through Spark. Large log files are read as lines, split between tasks; every other file whole.
    A large log file without any failure gives no row here (knowing that takes a second look at
    the output; `scan_paths` adds the single-process scan's note for it).
    """
    return _scan(spark, paths, rule_dirs=rule_dirs, whole_file_bytes=whole_file_bytes)[0]


def _scan(
    spark: SparkSession, paths: Sequence[str], *, rule_dirs: Sequence[str | Path], whole_file_bytes: int
) -> tuple[DataFrame, dict[str, int]]:
    """`scan`, and the lines of each log file it reads as lines (by file name)."""
    from pyspark.sql.types import StringType, StructField, StructType

    from ..intake import SkippedInput
    from ..intake.paths import walk
    from .worker import diagnose_local_file_batches, skip_row

    kb = ship_knowledge_base(spark, rule_dirs)
    local = [name for name in paths if not _is_uri(name)]
    uris = [name for name in paths if _is_uri(name)]
    parts: list[DataFrame] = []
    files: list[str] = []
    notes: list[dict[str, Any]] = []
    # The driver walks local paths as `scan` does: what it does not read (missing, hidden, FIFOs,
    # devices...) is a note here; the workers read the rest.
    for entry in walk(local):
        if isinstance(entry, SkippedInput):
            notes.append(skip_row(entry.source, entry.reason, read=entry.read))
        else:
            files.append(str(entry))
    if notes:
        parts.append(spark.createDataFrame(notes, output_schema()))
    log_files: list[str] = []
    if files:
        whole, log_lines = _plan_local(files, whole_file_bytes)
        log_files.extend(f"file://{os.path.abspath(name)}" for name in log_lines)
        if whole:
            slices = max(1, min(len(whole), spark.sparkContext.defaultParallelism * 4))
            names = spark.sparkContext.parallelize([(name,) for name in whole], slices)
            frame = spark.createDataFrame(names, StructType([StructField("path", StringType())]))
            work = functools.partial(diagnose_local_file_batches, kb=kb)
            parts.append(frame.mapInArrow(work, output_schema()))
    if uris:
        whole_frame, log_lines = _plan_uris(spark, uris, whole_file_bytes)
        log_files.extend(log_lines)
        parts.append(diagnose_messages(whole_frame, kb=kb))
    line_logs: dict[str, int] = {}
    if log_files:
        frame, line_logs = _log_files_frame(spark, log_files, kb)
        parts.append(frame)
    if not parts:
        return spark.createDataFrame([], output_schema()), {}
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result, line_logs


def _quiet_log_note(name: str, lines: int) -> dict[str, Any]:
    """The single-process scan's note for a log without any failure (`paths.iter_log_stream`)."""
    from .worker import skip_row

    return skip_row(name, f"log read ({lines} line(s)): no failed or delayed delivery", read=True)


def contract_row(row: dict[str, Any]) -> dict[str, Any]:
    """An output row as `scan --format jsonl` prints it (a skip note as `{"source", "skipped", "read"}`)."""
    if row.get("skipped") is not None:
        return {"source": row["source"], "skipped": row["skipped"], "read": bool(row.get("read"))}
    out = {name: row.get(name) for name in SCAN_ROW_FIELDS}
    if row.get("error"):
        out["error"] = row["error"]
    if row.get("truncated"):
        out["truncated"] = True
    return out


def require_spark() -> None:
    """Raise InputError, saying what to install, when PySpark or Java is missing."""
    import importlib.util
    import shutil

    from ..errors import InputError

    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("pyarrow") is None:
        raise InputError("--engine spark needs PySpark: pip install 'mailtriage[spark]'")
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise InputError("--engine spark needs Java 17 or later: apt-get install openjdk-17-jre-headless")


def scan_paths(
    paths: Sequence[str],
    *,
    master: str = "local[2]",
    output: str | None = None,
    rule_dirs: Sequence[str | Path] = (),
) -> Iterator[dict[str, Any]]:
    """`scan --engine spark`: the rows of `scan` on a session for `master`, as jsonl contract dicts;
    with `output`, the full DataFrame is first written there as Parquet and the rows read back."""
    require_spark()
    from pyspark.sql import SparkSession

    running = SparkSession.getActiveSession()  # a caller's session (a notebook, the tests) stays up
    spark = local_session(master)
    if running is None:
        spark.sparkContext.setLogLevel("ERROR")  # Spark's warnings are not the scan's findings
    try:
        frame, line_logs = _scan(spark, paths, rule_dirs=rule_dirs, whole_file_bytes=WHOLE_FILE_BYTES)
        if output:
            frame.write.mode("overwrite").parquet(output)
            frame = spark.read.parquet(output)
            if line_logs:
                from pyspark.sql import functions as F

                found = frame.where(F.col("skipped").isNull() & F.col("file").isin(list(line_logs)))
                seen = {row["file"] for row in found.select("file").distinct().collect()}
                notes = [_quiet_log_note(name, lines) for name, lines in line_logs.items() if name not in seen]
                if notes:
                    spark.createDataFrame(notes, output_schema()).write.mode("append").parquet(output)
                    frame = spark.read.parquet(output)
                line_logs = {}
        with_records: set[str] = set()
        for row in frame.toLocalIterator():
            values = row.asDict()
            if line_logs and values["skipped"] is None:
                with_records.add(values["file"])
            yield contract_row(values)
        for name, lines in line_logs.items():
            if name not in with_records:
                yield contract_row(_quiet_log_note(name, lines))
    finally:
        if running is None:
            spark.stop()
