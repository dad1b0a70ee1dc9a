"""Exchange Online message trace exports as input: deferral and failure events become records.

Formats read (columns learnt from Microsoft's documentation of each cmdlet, export and API; the
versions followed are listed in site/incidents.md):

- `Get-MessageTraceV2` (summary: Received, SenderAddress, RecipientAddress, Subject, Status, ToIP,
  FromIP, Size, MessageId, MessageTraceId) and `Get-MessageTraceDetailV2` (detail: Date, Event,
  Action, Detail, Data, MessageId, MessageTraceId, SenderAddress, RecipientAddress), saved with
  `Export-Csv` (with or without the `#TYPE` line) or `ConvertTo-Json`; the older `Get-MessageTrace`
  / `Get-MessageTraceDetail` have the same columns.
- The admin centre's message trace downloads (enhanced summary and extended reports, historical
  search): snake_case columns such as `origin_timestamp_utc` / `date_time_utc`, `sender_address`,
  `recipient_status` (`addr##Receive, Fail`), `message_id`, `network_message_id`, `connector_id`,
  `event_id`, `server_hostname`, `server_ip`, `directionality`; UTF-16 with a BOM, or UTF-8.
- Microsoft Graph `exchangeMessageTrace` (receivedDateTime, senderAddress, recipientAddress,
  status, fromIP, toIP, messageId, id) and `exchangeMessageTraceDetail` (dateTime, event, action,
  description, data, messageId, id), as a page (`{"value": [...]}`) or a plain array.

Summary rows carry no reply text: a failed or pending summary row becomes a record only when no
detail row of the same message and recipient is in the same file, and its record says so.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO

from . import IntakeRecord, SkippedInput, clean_facts

# Columns we know, by normalised name (lower case, no "_" or spaces) -> our field.
_COLUMNS: dict[str, str] = {
    # time
    "received": "time", "date": "time", "receiveddatetime": "time", "datetime": "time",
    "origintimestamputc": "time", "origintimestamp": "time", "datetimeutc": "time",
    # people and ids
    "recipientaddress": "recipient", "recipient": "recipient",
    "senderaddress": "sender", "sender": "sender",
    "messageid": "message_id",
    "messagetraceid": "trace_id", "networkmessageid": "trace_id", "id": "trace_id",
    # what happened
    "status": "status", "deliverystatus": "status",
    "event": "event", "eventid": "event",
    "action": "action",
    "detail": "detail", "description": "detail",
    "data": "data",
    "recipientstatus": "recipient_status",
    # where it was going
    "toip": "to_ip", "serverip": "to_ip",
    "serverhostname": "to_host",
    "connectorid": "connector", "connector": "connector",
    "directionality": "direction", "direction": "direction",
}
# A file is a trace when its header has a time and one of these.
_TRACE_MARKERS = {"status", "event", "recipient_status"}
# Detail events that are a failure or a deferral (Get-MessageTraceDetailV2 / Graph / extended report).
_FAIL_EVENTS = {"fail", "failed", "drop", "expired", "expire", "bounce", "dsn"}
_DEFER_EVENTS = {"defer", "deferred", "pending", "delay", "delayed"}
_FAIL_STATUSES = {"failed", "fail", "expired"}
_DEFER_STATUSES = {"pending", "deferred", "gettingstatus"}

_SEMICOLON_OR_BRACE = re.compile(r"[};]")
_SENT_TO = re.compile(r"(?:to|for) ([A-Za-z0-9.\-]+\.[A-Za-z]{2,}) at ([0-9a-fA-F.:]+)")
_MAX_TEXT = 20_000
MAX_TRACE_ROWS = 50_000_000


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.strip().strip('"').lower())


def _field_map(header: Iterable[str]) -> dict[str, str]:
    """Original column name -> our field, for the columns we know."""
    mapping: dict[str, str] = {}
    for column in header:
        field = _COLUMNS.get(_norm(column))
        if field is not None and field not in mapping.values():
            mapping[column] = field
    return mapping


def looks_like_trace(mapping: dict[str, str]) -> bool:
    fields = set(mapping.values())
    return "time" in fields and bool(fields & _TRACE_MARKERS) and bool(fields & {"recipient", "recipient_status", "message_id"})


def decode_text(data: bytes) -> str:
    """Exports come as UTF-8 (with or without BOM) or UTF-16 with a BOM (the admin centre's)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace")
    return data.decode("utf-8", "replace")


def parse_time(value: str) -> datetime | None:
    """ISO 8601 (Graph, ConvertTo-Json's "2024-05-01T10:00:00Z"), Export-Csv's culture format
    ("5/1/2024 10:00:00 AM", month first as in en-US), or `/Date(ms)/` from Windows PowerShell 5."""
    text = value.strip().strip('"')
    if not text:
        return None
    match = re.fullmatch(r"/Date\((-?\d{1,15})\)/", text)
    if match:
        try:
            return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    candidate = text.replace("Z", "+00:00") if text.endswith("Z") else text
    if len(candidate) > 40:
        return None
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        for fmt in ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S"):
            try:
                parsed = datetime.strptime(candidate, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # trace times are UTC
    return parsed.astimezone(UTC)


def _classify(row: dict[str, str]) -> str | None:
    """"failed", "delayed", or None for rows that are not a failure or deferral."""
    event = row.get("event", "").strip().lower().replace(" ", "")
    status = row.get("status", "").strip().lower().replace(" ", "")
    recipient_status = row.get("recipient_status", "").lower()
    if event:
        if event in _FAIL_EVENTS:
            return "failed"
        if event in _DEFER_EVENTS:
            return "delayed"
        return None
    if status in _FAIL_STATUSES:
        return "failed"
    if status in _DEFER_STATUSES:
        return "delayed"
    if "##" in recipient_status:
        tail = recipient_status.rsplit("##", 1)[1]
        if "fail" in tail:
            return "failed"
        if "defer" in tail or "pending" in tail:
            return "delayed"
    return None


def _led(text: str) -> str | None:
    """The value of the first `{LED=...};`, as `re.search(r"\\{LED=(.*?)\\};", text, re.S)` reads it,
    in linear time: no `};` after one `{LED=` means none after any later one either."""
    start = text.find("{LED=")
    if start < 0:
        return None
    end = text.find("};", start + 5)
    return None if end < 0 else text[start + 5 : end]


def _braced(text: str, key: str) -> str | None:
    """The value of the first `{KEY=value}` with no `}` or `;` inside, as
    `re.search(r"\\{KEY=([^};]*)\\}", text)` reads it, in linear time."""
    opener = "{" + key + "="
    position = 0
    while True:
        start = text.find(opener, position)
        if start < 0:
            return None
        stop = _SEMICOLON_OR_BRACE.search(text, start + len(opener))
        if stop is None:
            return None
        if stop.group() == "}":
            return text[start + len(opener) : stop.start()]
        position = stop.end()  # an opener before this `;` would stop at it too


def _reply_text(row: dict[str, str]) -> str:
    """The SMTP reply of a detail row: Exchange's `{LED=...}` when present, else the detail text."""
    detail = row.get("detail", "")[:_MAX_TEXT]
    data = row.get("data", "")[:_MAX_TEXT]
    for text in (detail, data):
        led = _led(text)
        if led and led.strip():
            return led.strip()
    if not detail and "##" in row.get("recipient_status", ""):
        return row["recipient_status"].split("##", 1)[1][:_MAX_TEXT]  # extended report: addr##reply
    return detail


def _destination(row: dict[str, str]) -> tuple[str | None, str | None]:
    text = row.get("detail", "")[:_MAX_TEXT]
    host = ip = None
    fqdn = _braced(text, "FQDN")
    if fqdn and fqdn.strip():
        host = fqdn.strip()
    found_ip = _braced(text, "IP")
    if found_ip and found_ip.strip():
        ip = found_ip.strip()
    if host is None:
        sent = _SENT_TO.search(text)
        if sent:
            host, ip = sent.group(1), ip or sent.group(2)
    host = host or row.get("to_host") or None
    ip = ip or row.get("to_ip") or None
    return host, ip


@functools.lru_cache(maxsize=8192)
def _parsed_reply(text: str) -> tuple[tuple[str, Any], ...]:
    """A trace repeats the same reply for every retry of every message: parse each text once."""
    from .reply import parse_reply

    return tuple(parse_reply(text).items())


def _record(row: dict[str, str], action: str, source: str, summary_only: bool) -> IntakeRecord:
    recipient = row.get("recipient") or None
    if recipient is None and "##" in row.get("recipient_status", ""):
        recipient = row["recipient_status"].split("##", 1)[0].strip() or None
    text = _reply_text(row) if not summary_only else ""
    facts: dict[str, Any] = dict(_parsed_reply(text)) if text else {}
    facts["context.system"] = "exchange-online"
    facts["input.kind"] = "trace"
    facts["report.action"] = action
    if recipient and "@" in recipient:
        facts["context.recipient_domain"] = recipient.rsplit("@", 1)[1].strip().lower()
    host, ip = _destination(row)
    if host and "smtp.remote_host" not in facts:
        facts["smtp.remote_host"] = host
    if ip and "smtp.remote_ip" not in facts:
        facts["smtp.remote_ip"] = ip
    direction = _norm(row.get("direction", ""))
    if direction in ("2", "outbound", "originating"):
        facts.setdefault("context.direction", "outbound-connector" if row.get("connector") else "outbound-internet")
    elif direction in ("1", "inbound", "incoming"):
        facts.setdefault("context.direction", "inbound")
    # Whose server answered, from the reply's own words and the destination's name.
    from .context import infer_context
    from .reply import reply_line

    _, inferred = infer_context(facts, {"text": reply_line(text)} if text else {})
    extra: dict[str, Any] = {}
    when = parse_time(row.get("time", ""))
    extra["time"] = when.isoformat().replace("+00:00", "Z") if when else None
    extra["message_id"] = (row.get("message_id") or "").strip() or None
    extra["trace_id"] = (row.get("trace_id") or "").strip() or None
    extra["connector"] = (row.get("connector") or "").strip() or None
    extra["sender"] = (row.get("sender") or "").strip() or None
    if summary_only:
        extra["note"] = "summary row: no reply text (export Get-MessageTraceDetailV2 rows for the reason)"
    cleaned = clean_facts(facts, extra)
    return IntakeRecord(facts=cleaned, kind="trace", source=source, recipient=recipient, extra=extra,
                        inferred=inferred)


def trace_row_record(row: Mapping[str, Any], source: str = "<trace>") -> IntakeRecord | None:
    """The record of one trace row held as a mapping (a table's row: Spark, a database), or None
    when the row is not a failure or deferral. Column names as in the exports (any case, `_` or
    spaces). One row at a time cannot tell whether a summary row has detail rows elsewhere: give
    detail rows, or summary rows alone."""
    mapping = _field_map(str(name) for name in row)
    fields = {field: "" if row[column] is None else str(row[column]) for column, field in mapping.items()}
    action = _classify(fields)
    if action is None:
        return None
    is_summary = not fields.get("event") and not fields.get("detail")
    return _record(fields, action, source, summary_only=is_summary and not fields.get("recipient_status"))


def _rows_from_csv(lines: TextIO) -> tuple[dict[str, str], Iterator[tuple[int, dict[str, str]]]] | None:
    first = lines.readline()
    offset = 1
    if first.startswith("#TYPE"):  # Windows PowerShell's Export-Csv type line
        first = lines.readline()
        offset = 2
    try:
        header = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return None
    mapping = _field_map(header)
    if not looks_like_trace(mapping):
        return None
    reader = csv.reader(lines)
    index = {col: i for i, col in enumerate(header)}
    positions = [(index[col], field) for col, field in mapping.items()]

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        consumed = 0
        for values in reader:
            start, consumed = consumed + 1, reader.line_num  # a quoted field may span lines
            yield offset + start, {field: values[i] for i, field in positions if i < len(values)}

    return mapping, rows()


def _rows_from_json(text: str) -> tuple[dict[str, str], Iterator[tuple[int, dict[str, str]]]] | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict):
        data = data.get("value", [data])
    if not isinstance(data, list) or not data or not all(isinstance(item, dict) for item in data[:100]):
        return None
    header: dict[str, None] = {}
    for item in data[:100]:
        header.update(dict.fromkeys(k for k in item if isinstance(k, str)))
    mapping = _field_map(header)
    if not looks_like_trace(mapping):
        return None

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for number, item in enumerate(data, 1):
            if not isinstance(item, dict):
                continue
            row = {}
            for col, field in mapping.items():
                value = item.get(col)
                if value is None:
                    continue
                if isinstance(value, dict):  # ConvertTo-Json of a DateTime: {"value": ..., "DateTime": ...}
                    value = value.get("value", value.get("DateTime", ""))
                row[field] = str(value)
            yield number, row

    return mapping, rows()


def sniff_trace(head: bytes) -> bool:
    """Whether the start of a file is a message trace export (CSV or JSON)."""
    text = decode_text(head)[:65_536].lstrip()
    if text.startswith(("[", "{")):
        return bool(re.search(r'"(?:Event|event|Status|status|RecipientAddress|recipientAddress)"\s*:', text)) and bool(
            re.search(r'"(?:Received|receivedDateTime|Date|dateTime)"\s*:', text))
    first = text.split("\n", 2)
    line = first[1] if first and first[0].startswith("#TYPE") and len(first) > 1 else first[0]
    try:
        header = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return False
    return looks_like_trace(_field_map(header))


def encoding_of(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8-sig"


MAX_JSON_TRACE_BYTES = 512 * 1024 * 1024


def parse_trace_file(path: str) -> Iterator[IntakeRecord | SkippedInput]:
    """Records of a trace export on disk; CSV is streamed, JSON read whole (up to a cap)."""
    import os

    def reopen() -> BinaryIO:
        return open(path, "rb")  # the caller closes it

    return parse_trace_stream(reopen, os.path.getsize(path), path)


def parse_trace_stream(
    reopen: Callable[[], BinaryIO], size: int, source: str
) -> Iterator[IntakeRecord | SkippedInput]:
    """Records of a trace export of `size` bytes that `reopen` reads from the start (a file on disk,
    or bytes in memory); CSV is streamed, JSON read whole (up to a cap)."""
    with reopen() as raw:
        head = raw.read(4096)
    encoding = encoding_of(head)
    if decode_text(head).lstrip().startswith(("[", "{")):
        if size > MAX_JSON_TRACE_BYTES:
            yield SkippedInput(source, f"JSON trace over {MAX_JSON_TRACE_BYTES // 1_048_576} MB: export it as CSV")
            return
        with reopen() as raw:
            yield from parse_trace(raw.read(), source=source)
        return
    with io.TextIOWrapper(reopen(), encoding=encoding, errors="replace", newline="") as text:
        yield from _parse_rows(_rows_from_csv(text), source)


def parse_trace(data: bytes, source: str = "<trace>") -> Iterator[IntakeRecord | SkippedInput]:
    """Records for the failure and deferral events of one trace export (CSV or JSON)."""
    text = decode_text(data)
    stripped = text.lstrip()
    parsed = _rows_from_json(stripped) if stripped.startswith(("[", "{")) else _rows_from_csv(io.StringIO(text, newline=""))
    yield from _parse_rows(parsed, source)


def _parse_rows(
    parsed: tuple[dict[str, str], Iterator[tuple[int, dict[str, str]]]] | None, source: str
) -> Iterator[IntakeRecord | SkippedInput]:
    if parsed is None:
        yield SkippedInput(source, "not a message trace export (no known time/status/recipient columns)")
        return
    mapping, rows = parsed
    has_detail = "event" in mapping.values()
    summaries: list[tuple[int, dict[str, str], str]] = []
    detailed: set[tuple[str, str]] = set()
    found = 0
    try:
        for number, row in rows:
            if number > MAX_TRACE_ROWS:
                yield SkippedInput(source, f"more than {MAX_TRACE_ROWS} rows; the rest not read")
                break
            action = _classify(row)
            if action is None:
                if has_detail:
                    detailed.add(_key(row))
                continue
            is_summary = not row.get("event") and not row.get("detail")
            if is_summary and has_detail:
                summaries.append((number, row, action))
                continue
            if has_detail:
                detailed.add(_key(row))
            found += 1
            yield _record(row, action, f"{source}:{number}", summary_only=is_summary and not row.get("recipient_status"))
    except csv.Error as exc:
        yield SkippedInput(source, f"CSV error after {found} record(s): {exc}")
    for number, row, action in summaries:
        if _key(row) not in detailed:
            found += 1
            yield _record(row, action, f"{source}:{number}", summary_only=True)
    if not found:
        yield SkippedInput(source, "message trace with no failed or deferred message")


def _key(row: dict[str, str]) -> tuple[str, str]:
    return ((row.get("trace_id") or row.get("message_id") or "").strip().lower(), (row.get("recipient") or "").strip().lower())
