"""The Spark scan in local mode (one SparkSession for the whole run): the same rows as the
single-process scan on logs and messages, and a reason instead of a failed job for hostile inputs."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from mailtriage.intake import IntakeRecord, SkippedInput, iter_path_records, parse_input
from mailtriage.triage import SCAN_ROW_FIELDS, scan_rows

pytest.importorskip("pyspark")
pytest.importorskip("pyarrow")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java 17+ (apt-get install openjdk-17-jre-headless)", allow_module_level=True)

from mailtriage.spark import (
    OUTPUT_COLUMNS,
    contract_row,
    diagnose_log_files,
    diagnose_log_lines,
    diagnose_messages,
    diagnose_rows,
    diagnose_trace_rows,
    local_session,
    scan,
    ship_knowledge_base,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DATA = Path(__file__).parent / "data" / "intake"


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = local_session("local[2]", "mailtriage-tests")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session
    session.stop()


def _normalised(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row with its file and source as absolute paths (line or message number kept)."""
    out = dict(row)
    for key in ("file", "source"):
        if out.get(key):
            out[key] = os.path.abspath(out[key])
    return tuple(sorted((key, json.dumps(value)) for key, value in out.items()))


def _spark_rows(frame: DataFrame) -> Counter[tuple[Any, ...]]:
    assert tuple(frame.columns) == OUTPUT_COLUMNS
    return Counter(_normalised(contract_row(row.asDict())) for row in frame.collect())


def _single_rows(paths: list[str]) -> Counter[tuple[Any, ...]]:
    return Counter(_normalised(row) for row in scan_rows(iter_path_records(paths)))


def _big_log(folder: Path) -> Path:
    """Postfix, Exim and Sendmail lines from the sample logs, recipients varied, ~1,800 lines."""
    lines = []
    for name in ("postfix.log", "exim.log", "sendmail.log"):
        lines.extend((DATA / name).read_text().splitlines())
    out = []
    for copy in range(120):
        out.extend(line.replace("@example", f"@c{copy}.example") for line in lines)
    path = folder / "mail.log"
    path.write_text("\n".join(out) + "\n")
    return path


def test_log_lines_split_between_tasks_match_single_process(spark: SparkSession, tmp_path: Path) -> None:
    log = _big_log(tmp_path)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16384")  # many splits: line numbers cross them
    try:
        frame = diagnose_log_files(spark, [str(log), str(DATA / "exim.log")], kb=ship_knowledge_base(spark))
        assert frame.rdd.getNumPartitions() > 5
        rows = _spark_rows(frame)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    expected = _single_rows([str(log), str(DATA / "exim.log")])
    assert sum(expected.values()) > 500
    assert rows == expected


def test_numbered_lines_frame(spark: SparkSession) -> None:
    lines = (DATA / "postfix.log").read_text().splitlines()
    frame = spark.createDataFrame([("mail.log", number, text) for number, text in enumerate(lines, 1)],
                                  "file string, line int, value string")
    rows = [row.asDict() for row in diagnose_log_lines(frame).collect()]
    expected = list(scan_rows(iter_path_records([str(DATA / "postfix.log")])))
    assert len(rows) == len(expected) > 0
    assert sorted(row["source"] for row in rows) == sorted(
        "mail.log:" + row["source"].rsplit(":", 1)[1] for row in expected)
    assert {row["rule"] for row in rows} == {row["rule"] for row in expected}


def _messages_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "messages"
    folder.mkdir()
    for file in DATA.iterdir():
        if file.is_file():
            shutil.copy(file, folder / file.name)
    return folder


def test_messages_match_single_process(spark: SparkSession, tmp_path: Path) -> None:
    folder = _messages_folder(tmp_path)
    files = spark.read.format("binaryFile").load(str(folder))
    rows = _spark_rows(diagnose_messages(files, kb=ship_knowledge_base(spark)))
    expected = _single_rows([str(folder)])
    assert any('"ndr"' in str(row) for row in expected)
    assert rows == expected


def _nested_message(levels: int) -> bytes:
    body = b"Content-Type: text/plain\n\n550 5.1.1 <x@example.com>: user unknown\n"
    for level in range(levels):
        body = (b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (level, level)) + body + (
            b"\n--b%d--\n" % level)
    return b"From: MAILER-DAEMON@example.com\nTo: a@example.org\nSubject: Undelivered Mail\nMIME-Version: 1.0\n" + body


def test_hostile_inputs_become_rows_with_reasons(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "garbage.bin").write_bytes(bytes(range(256)) * 64)
    (folder / "nested.eml").write_bytes(_nested_message(1000))
    shutil.copy(DATA / "exo-expired-refused.eml", folder / "good.eml")
    frame = diagnose_messages(spark.read.format("binaryFile").load(str(folder)))
    rows = {Path(row["source"]).name: row.asDict() for row in frame.collect()}
    assert "binary" in rows["garbage.bin"]["skipped"]
    assert "MIME" in rows["nested.eml"]["skipped"] and rows["nested.eml"]["read"] is True  # read, refused
    assert rows["nested.eml"]["rule"] is None
    assert rows["good.eml"]["skipped"] is None and rows["good.eml"]["rule"] == "exo-connector-connection-refused"
    # Through `scan` (local files, read by the workers), with an empty file too (Spark's file
    # sources never list empty files), the reasons are the single-process scan's.
    # A hidden file is listed by the driver's walk, as the single-process scan lists it, never read.
    (folder / "empty.eml").write_bytes(b"")
    (folder / ".hidden.eml").write_bytes((DATA / "exo-expired-refused.eml").read_bytes())
    scanned = {Path(row["source"]).name: contract_row(row.asDict()) for row in scan(spark, [str(folder)]).collect()}
    single = {Path(row["source"]).name: row for row in scan_rows(iter_path_records([str(folder)]))}
    assert scanned["empty.eml"] == single["empty.eml"] and single["empty.eml"]["skipped"] == "empty file"
    assert scanned[".hidden.eml"] == single[".hidden.eml"] and single[".hidden.eml"]["skipped"] == "hidden file"
    assert scanned["nested.eml"] == single["nested.eml"]
    assert single["nested.eml"]["skipped"] == rows["nested.eml"]["skipped"] and single["nested.eml"]["read"] is True


def test_scan_local_paths_and_uris_match_single_process(spark: SparkSession, tmp_path: Path) -> None:
    log = _big_log(tmp_path)
    paths = [str(DATA), str(log), str(tmp_path / "missing")]
    # whole_file_bytes=0: every log goes through the line reader, everything else through the workers.
    rows = _spark_rows(scan(spark, paths, whole_file_bytes=0))
    assert rows == _single_rows(paths)
    folder = _messages_folder(tmp_path)
    uri_rows = _spark_rows(scan(spark, [folder.as_uri(), log.as_uri()], whole_file_bytes=4096))
    assert uri_rows == _single_rows([str(folder), str(log)])


def test_each_worker_loads_the_shipped_knowledge_base_once(spark: SparkSession) -> None:
    def state_reader(row: dict[str, Any]) -> list[IntakeRecord | SkippedInput]:
        # Defined here so that Spark pickles it by value (the workers cannot import this module).
        from mailtriage.spark.worker import engine_state

        pid, loads, origin = engine_state()
        return [SkippedInput(str(row["file"]), f"{pid} {loads} {origin}")]

    names = spark.sparkContext.parallelize([(f"row{n}",) for n in range(40)], 6)
    frame = spark.createDataFrame(names, "file string")
    kb = ship_knowledge_base(spark)

    def loads_by_worker() -> dict[str, int]:
        reasons = [row["skipped"] for row in diagnose_rows(frame, state_reader, kb=kb).collect()]
        assert len(reasons) == 40
        states = {tuple(reason.split()) for reason in reasons}
        assert {origin for _pid, _loads, origin in states} == {"shipped"}
        by_worker: dict[str, int] = {}
        for pid, loads, _origin in states:
            by_worker[pid] = max(by_worker.get(pid, 0), int(loads))
        return by_worker

    first = loads_by_worker()
    second = loads_by_worker()
    assert len(first) <= 6
    # Every task of a worker, in this job and the next one, used the engine it loaded once
    # (earlier tests' jobs without a shipped cache may have loaded another one before).
    assert all(second.get(pid, loads) == loads for pid, loads in first.items())


def test_table_rows_through_a_reader(spark: SparkSession) -> None:
    def reply_reader(row: dict[str, Any]) -> list[IntakeRecord]:
        records = parse_input(str(row["detail"] or ""), kind="reply", source=str(row["file"]))
        for record in records:
            record.recipient = str(row["recipient"])
        return records

    frame = spark.createDataFrame(
        [("trace.csv:2", "jane@contoso.com", "450 4.4.316 Connection refused"),
         ("trace.csv:3", "bob@example.net", "no code here at all"),
         ("trace.csv:4", "x@example.org", None)],
        "file string, recipient string, detail string")
    rows = {row["source"]: row.asDict() for row in diagnose_rows(frame, reply_reader).collect()}
    assert rows["trace.csv:2"]["status"] == "4.4.316"
    assert rows["trace.csv:2"]["recipient"] == "jane@contoso.com" and rows["trace.csv:2"]["file"] == "trace.csv"
    assert set(rows) == {"trace.csv:2"}  # a row without an error gives no record
    assert [*rows["trace.csv:2"]][: len(SCAN_ROW_FIELDS)] == list(SCAN_ROW_FIELDS)


def test_cli_engine_spark_writes_parquet_and_prints_the_same_rows(spark: SparkSession, tmp_path: Path) -> None:
    from mailtriage.cli import cli

    output = tmp_path / "out.parquet"
    paths = [str(DATA / "postfix.log"), str(DATA / "exo-expired-refused.eml"), str(DATA / "bounces.mbox")]
    result = CliRunner().invoke(cli, ["scan", "--engine", "spark", "--output", str(output), "--format", "jsonl", *paths])
    assert result.exit_code in (0, 1), result.output
    printed = Counter(_normalised(json.loads(line)) for line in result.stdout.splitlines())
    # Records and skip notes alike, as `scan --format jsonl` prints them.
    expected = Counter(_normalised(row) for row in scan_rows(iter_path_records(paths)))
    assert printed == expected
    written = spark.read.parquet(str(output))
    assert tuple(written.columns) == OUTPUT_COLUMNS
    assert written.count() == sum(expected.values())
    # The aggregation of site/spark.md: failures by day, destination domain, rule and action.
    from pyspark.sql import functions as F

    report = (
        written.where("skipped IS NULL")
        .withColumn("day", F.coalesce(F.try_to_date("time"),
                                      F.try_to_date(F.regexp_extract("file", r"dt=(\d{4}-\d{2}-\d{2})", 1))))
        .groupBy("day", "domain", "rule", "action").count()
    )
    counted = {(str(row["day"]), row["domain"], row["rule"], row["action"]): row["count"] for row in report.collect()}
    single = Counter((row["time"][:10] if row["time"] else "None", row["domain"], row["rule"], row["action"])
                     for row in scan_rows(iter_path_records(paths)) if "skipped" not in row)
    assert counted == dict(single)


REFUSED = ("Reason: [{LED=450 4.4.316 Connection refused [Message=Socket error code 10061] "
           "[LastAttemptedServerName=mail.contoso.com] [LastAttemptedIP=192.0.2.7:25]};{MSG=};"
           "{FQDN=mail.contoso.com};{IP=192.0.2.7};{LRT=}]")
UNKNOWN_USER = ("Reason: [{LED=550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address "
                "lookup};{MSG=};{FQDN=};{IP=};{LRT=}]")
TRACE_COLUMNS = ["Date", "Event", "Action", "Detail", "Data", "MessageId", "MessageTraceId", "SenderAddress",
                 "RecipientAddress"]


def test_message_trace_rows_match_the_same_export_scanned(spark: SparkSession, tmp_path: Path) -> None:
    import csv

    trace = [
        ["2024-05-01T10:00:00Z", "Receive", "", "Message received by: BN8PR12MB1234", "", "<m1@contoso.com>",
         "t1", "a@contoso.com", "jane@contoso.com"],
        ["2024-05-01T10:05:00Z", "Defer", "", REFUSED, "", "<m1@contoso.com>", "t1", "a@contoso.com",
         "jane@contoso.com"],
        ["2024-05-01T10:06:00Z", "Fail", "", UNKNOWN_USER, "", "<m2@contoso.com>", "t2", "a@contoso.com",
         "nobody@fabrikam.com"],
    ]
    export = tmp_path / "trace.csv"
    with open(export, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(TRACE_COLUMNS)
        writer.writerows(trace)
    frame = spark.createDataFrame([[str(export), *row] for row in trace],
                                  ", ".join(["origin string", *(f"{name} string" for name in TRACE_COLUMNS)]))
    rows = [contract_row(row.asDict()) for row in diagnose_trace_rows(frame, source="origin").collect()]
    single = [row for row in scan_rows(iter_path_records([str(export)])) if "skipped" not in row]
    assert len(rows) == len(single) == 2

    def essence(row: dict[str, Any]) -> tuple[Any, ...]:
        return (row["recipient"], row["status"], row["rule"], row["action"], row["kind"], row["file"])

    assert sorted(map(essence, rows)) == sorted(map(essence, single))
    # The whole export as a file, through Spark's binaryFile reader, gives the scan's rows exactly.
    whole = _spark_rows(diagnose_messages(spark.read.format("binaryFile").load(str(export))))
    assert whole == _single_rows([str(export)])


def test_cli_says_what_is_missing_instead_of_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailtriage.cli import cli
    from mailtriage.errors import InputError

    log = str(DATA / "postfix.log")
    result = CliRunner().invoke(cli, ["scan", "--output", "out.parquet", log])
    assert result.exit_code == 2 and "--output needs --engine spark" in result.output
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    result = CliRunner().invoke(cli, ["scan", "--engine", "spark", log])
    assert isinstance(result.exception, InputError) and "openjdk-17-jre-headless" in str(result.exception)


def test_a_shipped_knowledge_base_is_unpickled_only_under_the_drivers_key(tmp_path: Path) -> None:
    # Runs the worker's loader in this process: a file whose keyed hash does not check out is never
    # unpickled (the planted pickle would create a file), and the worker falls back to the installed rules.
    import pickle

    from mailtriage.cache import seal_knowledge_base
    from mailtriage.engine import Engine
    from mailtriage.spark import ShippedKnowledgeBase
    from mailtriage.spark.worker import engine_state, worker_engine

    planted = tmp_path / "pwned"

    class Planted:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(planted), "w"))

    kb = Engine.load().kb
    sealed = tmp_path / "kb-sealed.pickle"
    sealed.write_bytes(seal_knowledge_base(kb, b"k" * 32))
    forged = tmp_path / "kb-forged.pickle"
    forged.write_bytes(sealed.read_bytes()[:48] + pickle.dumps(Planted()))

    worker_engine(ShippedKnowledgeBase(str(forged), b"k" * 32))
    assert engine_state()[2] == "installed" and not planted.exists()
    worker_engine(ShippedKnowledgeBase(str(sealed), b"x" * 32))  # the right file, another key
    assert engine_state()[2] == "installed"
    engine = worker_engine(ShippedKnowledgeBase(str(sealed), b"k" * 32))
    assert engine_state()[2] == "shipped" and set(engine.kb.rules) == set(kb.rules)
    assert "k" * 8 not in repr(ShippedKnowledgeBase(str(sealed), b"k" * 32))


def test_a_log_read_as_lines_without_failures_gets_the_single_process_note(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailtriage.spark as spark_scan

    quiet = tmp_path / "quiet.log"
    quiet.write_text("".join(
        f"May  1 10:00:{n % 60:02d} mx postfix/smtp[1]: A{n}: to=<u{n}@example.com>, relay=mx.example.com[192.0.2.1]:25, "
        f"delay=1, dsn=2.0.0, status=sent (250 ok)\n" for n in range(50)))
    busy = DATA / "postfix.log"
    monkeypatch.setattr(spark_scan, "WHOLE_FILE_BYTES", 0)  # every log through the line reader
    paths = [str(quiet), str(busy)]
    expected = _single_rows(paths)
    assert any("no failed or delayed delivery" in str(row) for row in expected)
    printed = Counter(_normalised(row) for row in spark_scan.scan_paths(paths))
    assert printed == expected
    output = tmp_path / "out.parquet"
    written = Counter(_normalised(row) for row in spark_scan.scan_paths(paths, output=str(output)))
    assert written == expected
    notes = spark.read.parquet(str(output)).where("skipped IS NOT NULL").collect()
    assert [(Path(row["source"]).name, row["read"]) for row in notes] == [("quiet.log", True)]
