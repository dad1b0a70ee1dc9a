"""Message traces as input and incidents over time (`mailtriage report`).

Trace files are written by the tests from the columns Microsoft documents for each export
(Get-MessageTraceV2 / Get-MessageTraceDetailV2 with Export-Csv and ConvertTo-Json, the admin
centre's UTF-16 downloads, Microsoft Graph JSON); none is committed.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA
from mailtriage import Engine
from mailtriage.incidents import DistinctCounter, IncidentGrouper, build_report
from mailtriage.incidents.render import to_html, to_markdown
from mailtriage.intake import IntakeRecord, SkippedInput, iter_path_records
from mailtriage.intake.trace import parse_time, parse_trace

REFUSED = (
    "Reason: [{LED=450 4.4.316 Connection refused [Message=Socket error code 10061] "
    "[LastAttemptedServerName=mail.fabrikam.example] [LastAttemptedIP=203.0.113.5:25] "
    "[BN8NAM12FT054.eop-nam12.prod.protection.outlook.com 2024-05-01T10:05:00.000Z 08DC6A]};{MSG=};"
    "{FQDN=mail.fabrikam.example};{IP=203.0.113.5};{LRT=5/1/2024 10:04:00 AM}]. "
    "OutboundProxyTargetIP: 203.0.113.5. OutboundProxyTargetHostName: mail.fabrikam.example"
)
UNKNOWN_USER = "Reason: [{LED=550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup};{MSG=};{FQDN=};{IP=};{LRT=}]"
DETAIL_COLUMNS = ["Organization", "MessageId", "MessageTraceId", "Date", "Event", "Action", "Detail", "Data",
                  "SenderAddress", "RecipientAddress"]
START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def detail_rows(hours: int = 3, recipients: int = 2) -> list[dict[str, str]]:
    """Each message: received, then a deferral per hour (connection refused)."""
    rows = []
    for n in range(recipients):
        message, trace = f"<m{n}@contoso.example>", f"0bd4a8c2-1c3e-4f6a-9a3d-{n:012d}"
        base = {"Organization": "contoso.onmicrosoft.com", "MessageId": message, "MessageTraceId": trace,
                "SenderAddress": "ann@contoso.example", "RecipientAddress": f"user{n}@fabrikam.example", "Action": "", "Data": ""}
        rows.append({**base, "Date": START, "Event": "Receive", "Detail": "Message received by: BN8PR12MB1234.namprd12.prod.outlook.com"})
        for hour in range(hours):
            rows.append({**base, "Date": START + timedelta(hours=hour, minutes=5), "Event": "Defer", "Detail": REFUSED})
    rows.append({"Organization": "contoso.onmicrosoft.com", "MessageId": "<x@contoso.example>", "MessageTraceId": "9f0e",
                 "SenderAddress": "ann@contoso.example", "RecipientAddress": "nobody@contoso.example", "Action": "",
                 "Data": "", "Date": START + timedelta(minutes=1), "Event": "Fail", "Detail": UNKNOWN_USER})
    return rows


def us_date(when: Any) -> str:
    return when.strftime("%-m/%-d/%Y %-I:%M:%S %p")


def export_csv(rows: list[dict[str, Any]], columns: list[str], type_line: bool = True) -> bytes:
    out = io.StringIO()
    if type_line:
        out.write("#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTraceDetail\n")
    writer = csv.DictWriter(out, fieldnames=columns, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: us_date(v) if isinstance(v, datetime) else v for k, v in row.items() if k in columns})
    return out.getvalue().encode("utf-8")


def convert_to_json(rows: list[dict[str, Any]]) -> bytes:
    return json.dumps([{k: v.strftime("%Y-%m-%dT%H:%M:%S") if isinstance(v, datetime) else v for k, v in row.items()}
                       for row in rows], indent=2).encode("utf-8")


def graph_detail(rows: list[dict[str, Any]]) -> bytes:
    value = [{"@odata.type": "#microsoft.graph.exchangeMessageTraceDetail", "id": row["MessageTraceId"],
              "messageId": row["MessageId"], "dateTime": row["Date"].strftime("%Y-%m-%dT%H:%M:%SZ"),
              "event": row["Event"], "action": row["Action"], "description": row["Detail"], "data": ""}
             for row in rows]
    return json.dumps({"@odata.context": "https://graph.microsoft.com/beta/$metadata#exchangeMessageTraceDetails",
                       "value": value}).encode("utf-8")


def extended_report_utf16(rows: list[dict[str, Any]]) -> bytes:
    """The admin centre's extended report: snake_case columns, UTF-16 with a BOM."""
    columns = ["date_time_utc", "client_ip", "server_hostname", "server_ip", "connector_id", "event_id", "message_id",
               "network_message_id", "recipient_address", "recipient_status", "sender_address", "directionality"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({
            "date_time_utc": row["Date"].strftime("%Y-%m-%dT%H:%M:%S.000Z"), "client_ip": "", "server_hostname": "",
            "server_ip": "", "connector_id": "To Fabrikam" if "fabrikam" in row["RecipientAddress"] else "",
            "event_id": row["Event"].upper(), "message_id": row["MessageId"], "network_message_id": row["MessageTraceId"],
            "recipient_address": row["RecipientAddress"],
            "recipient_status": row["RecipientAddress"] + "##" + (row["Detail"].split("LED=", 1)[1].split("};", 1)[0]
                                                                   if "LED=" in row["Detail"] else ""),
            "sender_address": row["SenderAddress"], "directionality": "Originating",
        })
    return out.getvalue().encode("utf-16")


FORMATS: dict[str, Callable[[list[dict[str, Any]]], bytes]] = {
    "Export-Csv.csv": lambda rows: export_csv(rows, DETAIL_COLUMNS),
    "Export-Csv-NoTypeInformation.csv": lambda rows: export_csv(rows, DETAIL_COLUMNS, type_line=False),
    "ConvertTo-Json.json": convert_to_json,
    "graph-detail.json": graph_detail,
    "admin-centre-extended.csv": extended_report_utf16,
}


def records_of(path: Path) -> list[IntakeRecord]:
    items = list(iter_path_records([str(path)]))
    assert not [i for i in items if isinstance(i, SkippedInput)], items
    return [i for i in items if isinstance(i, IntakeRecord)]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_trace_format_gives_a_record_per_deferral_and_failure(name: str, tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / name
    path.write_bytes(FORMATS[name](detail_rows()))
    records = records_of(path)
    assert len(records) == 2 * 3 + 1
    deferrals = [r for r in records if r.facts.get("report.action") == "delayed"]
    assert len(deferrals) == 6
    first = deferrals[0]
    assert first.kind == "trace"
    assert first.facts["smtp.enhanced"] == "4.4.316" and first.facts["context.system"] == "exchange-online"
    assert first.facts["smtp.remote_host"] == "mail.fabrikam.example"
    assert first.extra["time"] == "2024-05-01T10:05:00Z"
    assert first.extra["message_id"] == "<m0@contoso.example>"
    assert engine.diagnose(first.facts).top.rule.id == "exo-connector-connection-refused"  # type: ignore[union-attr]
    failure = next(r for r in records if r.facts.get("report.action") == "failed")
    assert failure.facts["smtp.enhanced"] == "5.1.10"


def test_summary_rows_alone_become_records_that_say_they_have_no_reply(tmp_path: Path) -> None:
    columns = ["Received", "SenderAddress", "RecipientAddress", "Subject", "Status", "ToIP", "FromIP", "Size",
               "MessageId", "MessageTraceId"]
    rows = [
        {"Received": START, "SenderAddress": "a@contoso.example", "RecipientAddress": "b@fabrikam.example",
         "Subject": "Hi", "Status": "Failed", "ToIP": "203.0.113.5", "FromIP": "", "Size": "1234",
         "MessageId": "<s1@contoso.example>", "MessageTraceId": "1"},
        {"Received": START, "SenderAddress": "a@contoso.example", "RecipientAddress": "c@fabrikam.example",
         "Subject": "Hi", "Status": "Delivered", "ToIP": "", "FromIP": "", "Size": "1", "MessageId": "<s2@c>",
         "MessageTraceId": "2"},
    ]
    path = tmp_path / "summary.csv"
    path.write_bytes(export_csv(rows, columns))
    [record] = records_of(path)
    assert record.recipient == "b@fabrikam.example" and record.facts["report.action"] == "failed"
    assert "no reply text" in record.extra["note"]


def test_a_trace_with_no_failures_is_accounted_for_as_skipped(tmp_path: Path) -> None:
    rows = [r for r in detail_rows() if r["Event"] == "Receive"]
    path = tmp_path / "clean.csv"
    path.write_bytes(export_csv(rows, DETAIL_COLUMNS))
    [item] = list(iter_path_records([str(path)]))
    assert isinstance(item, SkippedInput) and "no failed or deferred" in item.reason


def test_expiry_ndr_and_the_trace_of_the_same_message_agree(tmp_path: Path, engine: Engine) -> None:
    [ndr] = records_of(DATA / "intake" / "exo-expired-refused.eml")
    attempt = ("450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedServerName=mail.contoso.com] "
               "[LastAttemptedIP=192.0.2.10:25]")
    row = {"Organization": "contoso.onmicrosoft.com", "MessageId": "<w@contoso.com>", "MessageTraceId": "7",
           "Date": START, "Event": "Fail", "Action": "", "Data": "", "SenderAddress": "sender@contoso.com",
           "RecipientAddress": "jane@contoso.com",
           "Detail": f"Reason: [{{LED=550 5.4.316 Message expired, connection refused(Socket error code 10061). Last attempt: {attempt}}};{{MSG=}};{{FQDN=mail.contoso.com}};{{IP=192.0.2.10}};{{LRT=}}]"}
    path = tmp_path / "trace.csv"
    path.write_bytes(export_csv([row], DETAIL_COLUMNS))
    [trace] = records_of(path)
    ndr_top = engine.diagnose(ndr.facts).top
    trace_top = engine.diagnose(trace.facts).top
    assert ndr_top is not None and trace_top is not None
    assert trace_top.rule.id == ndr_top.rule.id == "exo-connector-connection-refused"
    assert trace.facts["outer.enhanced"] == ndr.facts["outer.enhanced"] == "5.4.316"


def test_report_groups_by_destination_and_diagnosis(tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "trace.json"
    path.write_bytes(convert_to_json(detail_rows(hours=3, recipients=4)))
    report = build_report([str(path)], engine)
    data = report.to_dict()
    assert data["records"] == 13
    first = data["incidents"][0]
    assert first["destination"] == "mail.fabrikam.example" and first["rule"] == "exo-connector-connection-refused"
    assert (first["messages"], first["recipients"], first["records"]) == (4, 4, 12)
    assert first["first_seen"] == "2024-05-01T10:05:00Z" and first["last_seen"] == "2024-05-01T12:05:00Z"
    assert first["state"] == "retrying"
    assert first["first_fix"] and first["first_fix_steps"]
    assert sum(first["per_hour"].values()) == 12
    second = data["incidents"][1]
    assert second["state"] == "failed" and second["destination"] == "contoso.example"


def test_deferrals_older_than_the_retry_window_are_expired(tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "trace.json"
    path.write_bytes(convert_to_json(detail_rows(hours=2, recipients=1)))
    later = START + timedelta(hours=30)
    report = build_report([str(path)], engine, now=later)
    assert report.to_dict()["incidents"][0]["state"] == "expired"


def test_distinct_counter_is_exact_then_bounded_and_close() -> None:
    counter = DistinctCounter()
    for n in range(1000):
        counter.add(f"m{n % 500}")
    assert counter.count() == 500 and not counter.approximate
    for n in range(100_000):
        counter.add(f"x{n}")
    assert counter.approximate
    assert abs(counter.count() - 100_500) / 100_500 < 0.2
    assert len(counter._heap) == DistinctCounter.K  # memory fixed, whatever the rows


def test_grouper_memory_is_bounded_by_incidents_not_rows(engine: Engine) -> None:
    grouper = IncidentGrouper(engine)
    facts = {"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "context.system": "exchange-online",
             "smtp.remote_host": "mail.fabrikam.example", "report.action": "delayed", "input.kind": "trace"}
    for n in range(20_000):
        grouper.add(IntakeRecord(facts=dict(facts), kind="trace", source=f"t:{n}", recipient=f"u{n}@fabrikam.example",
                                 extra={"time": "2024-05-01T10:00:00Z", "message_id": f"<{n}@x>"}))
    [incident] = grouper.incidents()
    assert incident.records == 20_000 and incident.messages.approximate
    assert len(grouper._verdicts) == 1  # one diagnosis for 20,000 rows of the same error


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000) | st.text(max_size=3000).map(lambda t: ("Date,Event,RecipientAddress,Detail\n" + t).encode()))
def test_trace_parser_never_raises(data: bytes) -> None:
    for item in parse_trace(data, source="fuzz"):
        assert isinstance(item, IntakeRecord | SkippedInput)


@pytest.mark.parametrize(("text", "expected"), [
    ("5/1/2024 10:00:00 AM", "2024-05-01T10:00:00+00:00"),
    ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+00:00"),
    ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00+00:00"),
    ("/Date(1714557600000)/", "2024-05-01T10:00:00+00:00"),
    ("not a date", None),
])
def test_trace_times(text: str, expected: str | None) -> None:
    when = parse_time(text)
    assert (when.isoformat() if when else None) == expected


def test_markdown_and_html_escape_what_the_inputs_say(tmp_path: Path, engine: Engine) -> None:
    rows = detail_rows(hours=1, recipients=1)
    rows[1]["Detail"] = rows[1]["Detail"].replace("mail.fabrikam.example", "<img src=x onerror=alert(1)>|x")
    path = tmp_path / "trace.json"
    path.write_bytes(convert_to_json(rows))
    report = build_report([str(path)], engine)
    page = to_html(report)
    assert "<img" not in page and "&lt;img" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    markdown = to_markdown(report, "pt-BR")
    assert "Incidentes de fluxo de email" in markdown and "<img" not in markdown


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailtriage", *args], capture_output=True, text=True, timeout=300)


def test_report_cli_formats_and_exit_status(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(export_csv(detail_rows(), DETAIL_COLUMNS))
    result = run_cli("report", str(path), "--format", "json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["incidents"][0]["rule"] == "exo-connector-connection-refused"
    text = run_cli("report", str(path), "--lang", "pt-BR")
    assert text.returncode == 1 and "em nova tentativa" in text.stdout
    assert run_cli("report", str(tmp_path / "missing.csv")).returncode == 2
    clean = tmp_path / "clean.csv"
    clean.write_bytes(export_csv([r for r in detail_rows() if r["Event"] == "Receive"], DETAIL_COLUMNS))
    assert run_cli("report", str(clean)).returncode == 0
    assert run_cli("report", str(path), "--now", "yesterday").returncode == 2


def test_html_report_draws_its_chart_in_a_browser_without_console_errors(tmp_path: Path, engine: Engine) -> None:
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    from test_site import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (./dev check installs it)")
    path = tmp_path / "trace.json"
    path.write_bytes(convert_to_json(detail_rows(hours=5, recipients=3)))
    page_file = tmp_path / "incidents.html"
    page_file.write_text(to_html(build_report([str(path)], engine)), encoding="utf-8")
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_file.as_uri())
            bars = page.locator("figure.timeline rect.bar")
            assert bars.count() == 5 + 1  # the refused incident's 5 hours, the failure's 1
            heights = [float(bars.nth(i).get_attribute("height") or 0) for i in range(5)]
            assert all(h > 0 for h in heights)
            box = page.locator("figure.timeline svg").first.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50
        finally:
            browser.close()
    assert errors == []
    assert requests == [page_file.as_uri()]


@pytest.mark.parametrize("name", ["deep.json", "huge-field.csv", "escapes.csv", "utf16-garbage.csv"])
def test_hostile_trace_files_are_read_or_skipped_never_raised(name: str, tmp_path: Path, engine: Engine) -> None:
    """Deep JSON, a field far over the csv module's limit, terminal escapes and markup in a
    recipient, and UTF-16 noise: every file is accounted for, nothing raises, and the report's
    text never carries a raw escape."""
    header = '"Date","Event","Detail","RecipientAddress","MessageId"\n'
    data = {
        "deep.json": ("[" * 5000 + "]" * 5000).encode(),
        "huge-field.csv": (header + '"5/1/2024 10:00:00 AM","Defer","' + "x" * 5_000_000 + '","a@b.example","<1@x>"\n').encode(),
        "escapes.csv": (header + '"5/1/2024 10:00:00 AM","Fail","Reason: [{LED=550 5.1.1 \x1b]0;owned\x07 <b>x</b>};{FQDN=mx.b.example}]",'
                        '"\x1b[2J[/evil]@b.example","<2@x>"\n').encode(),
        "utf16-garbage.csv": "\ufeff".encode("utf-16") + bytes(range(256)) * 50,
    }[name]
    path = tmp_path / name
    path.write_bytes(data)
    items = list(iter_path_records([str(path)]))
    assert items, "every input is accounted for"
    assert all(isinstance(i, IntakeRecord | SkippedInput) for i in items)
    report = build_report([str(path)], engine)
    assert "\x1b" not in to_markdown(report) and "<b>" not in to_html(report)
