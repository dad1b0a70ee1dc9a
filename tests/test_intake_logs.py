"""MTA log lines -> one record per delivery-failure line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.facts import vocabulary
from mailtriage.intake import clean_facts, parse_input
from mailtriage.intake.logs import parse_log_line, parse_log_lines

DATA = Path(__file__).parent / "data" / "intake"
PF = "May 16 08:00:03 relay postfix/smtp[1002]: 4AB12C3D4E: "


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (PF + "to=<bob@example.net>, relay=mx1.example.net[192.0.2.25]:25, delay=1, dsn=5.1.1, status=bounced "
              "(host mx1.example.net[192.0.2.25] said: 550 5.1.1 <bob@example.net>: User unknown "
              "(in reply to RCPT TO command))",
         {"smtp.reply_code": 550, "smtp.enhanced": "5.1.1", "smtp.stage": "rcpt", "report.action": "failed",
          "smtp.remote_host": "mx1.example.net", "smtp.remote_ip": "192.0.2.25", "context.system": "postfix",
          "context.recipient_domain": "example.net"}),
        (PF + "to=<c@example.com>, relay=none, delay=30, dsn=4.4.1, status=deferred "
              "(connect to mx.example.com[198.51.100.7]:25: Connection refused)",
         {"tcp.state": "refused", "smtp.stage": "connect", "smtp.enhanced": "4.4.1", "report.action": "delayed"}),
        (PF + "to=<c@example.com>, relay=none, delay=30, dsn=4.4.1, status=deferred "
              "(connect to mx.example.com[198.51.100.7]:25: Connection timed out)",
         {"tcp.state": "timeout"}),
        (PF + "to=<f@nowhere.example>, relay=none, dsn=4.4.3, status=deferred (Host or domain name not found. "
              "Name service error for name=nowhere.example type=MX: Host not found, try again)",
         {"dns.result": "servfail", "dns.query_name": "nowhere.example", "smtp.enhanced": "4.4.3"}),
        (PF + "to=<k@slow.example>, relay=mx.slow.example[192.0.2.99]:25, dsn=4.4.2, status=deferred "
              "(lost connection with mx.slow.example[192.0.2.99] while sending RCPT TO)",
         {"smtp.closed_abruptly": True, "smtp.stage": "rcpt"}),
        (PF + "to=<l@tls.example>, relay=mx.tls.example[192.0.2.77]:25, dsn=4.7.4, status=deferred "
              "(TLS is required, but was not offered by host mx.tls.example[192.0.2.77])",
         {"tls.error": "required-not-offered", "smtp.enhanced": "4.7.4"}),
        (PF + "to=<x@example.org>, relay=none, dsn=4.4.1, status=expired, returned to sender",
         {"report.action": "failed", "outer.expired": True}),
        ("2024-05-16 09:00:01 1sABCD-000123-EF ** grace@example.com R=dnslookup T=remote_smtp "
         "H=mx.example.com [198.51.100.20]: SMTP error from remote mail server after RCPT TO:<grace@example.com>: "
         "550 5.7.1 Relaying denied",
         {"smtp.reply_code": 550, "smtp.enhanced": "5.7.1", "smtp.stage": "rcpt", "report.action": "failed",
          "context.system": "exim", "smtp.remote_host": "mx.example.com"}),
        ("2024-05-16 09:00:02 1sABCD-000123-EF == heidi@example.net R=dnslookup T=remote_smtp defer (111): "
         "Connection refused", {"tcp.state": "refused", "report.action": "delayed", "context.system": "exim"}),
        ("2024-05-16 09:00:02 1sABCD-000123-EF ** nobody@gone.example: Unrouteable address",
         {"report.action": "failed", "context.recipient_domain": "gone.example"}),
        ("May 16 11:00:01 smtp sendmail[12346]: 44GB0aX0012345: to=<judy@example.net>, delay=00:00:01, "
         "mailer=esmtp, relay=mx.example.net. [198.51.100.30], dsn=5.2.1, stat=User unknown",
         {"smtp.enhanced": "5.2.1", "report.action": "failed", "context.system": "sendmail",
          "smtp.remote_host": "mx.example.net", "smtp.text": "User unknown"}),
        ("May 16 11:00:03 smtp sendmail[12346]: 44GB0aX0012346: to=<m@slow.example>, mailer=esmtp, "
         "relay=mx.slow.example., dsn=4.0.0, stat=Deferred: Connection timed out with mx.slow.example.",
         {"tcp.state": "timeout", "report.action": "delayed"}),
    ],
)
def test_failure_lines(line: str, expected: dict[str, object]) -> None:
    record = parse_log_line(line)
    assert record is not None
    assert record.kind == "log"
    assert {key: record.facts.get(key) for key in expected} == expected


@pytest.mark.parametrize(
    "line",
    [
        PF + "to=<d@example.org>, relay=mx.example.org[192.0.2.60]:25, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        "May 16 08:00:01 relay postfix/smtpd[1001]: connect from client.example.org[192.0.2.50]",
        "May 16 08:00:11 relay postfix/qmgr[900]: 4AB12C3D4E: removed",
        "2024-05-16 09:00:03 1sABCD-000123-EF => ok@example.org R=dnslookup T=remote_smtp H=mx.example.org",
        "2024-05-16 09:00:04 1sABCD-000123-EF Completed",
        "May 16 11:00:02 smtp sendmail[1]: X: to=<ok@example.org>, dsn=2.0.0, stat=Sent (Ok: queued)",
        "",
        "kernel: eth0 link up",
    ],
)
def test_other_lines_skipped(line: str) -> None:
    assert parse_log_line(line) is None


@pytest.mark.parametrize(
    ("name", "lines"), [("postfix.log", [3, 4, 6, 7, 8, 9, 10]), ("exim.log", [2, 3]), ("sendmail.log", [2, 4])]
)
def test_log_files(name: str, lines: list[int]) -> None:
    text = (DATA / name).read_text()
    records = list(parse_log_lines(text.splitlines(), source=name))
    assert [r.extra["line"] for r in records] == lines
    assert [r.source for r in records] == [f"{name}:{n}" for n in lines]
    assert [r.extra["line"] for r in parse_input(text, source=name)] == lines


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["", " status=", " stat=", " ** ", " == ", " postfix/smtp[1]: "]))
def test_fuzz_lines(text: str, marker: str) -> None:
    half = len(text) // 2
    record = parse_log_line(text[:half] + marker + text[half:])
    if record is not None:
        assert set(record.facts) <= set(vocabulary())
        assert clean_facts(dict(record.facts)) == record.facts  # every value already valid


def test_exim_retry_time_not_reached_is_read_as_a_deferral() -> None:
    from mailtriage.intake.logs import parse_log_lines

    line = "2024-05-01 10:00:00 1sA1B2-000ABC-CD == kim@example.com R=dnslookup T=remote_smtp defer (-53): retry time not reached"
    (record,) = list(parse_log_lines([line], source="mainlog"))
    assert record.recipient == "kim@example.com"
    assert record.facts["report.action"] == "delayed" and record.facts["context.system"] == "exim"
    assert "retry time not reached" in str(record.facts["smtp.text"])


def test_exim_lines_pasted_without_timestamp_and_id() -> None:
    from mailtriage.intake import parse_input

    (record,) = parse_input("** kim@example.com R=dnslookup: lowest numbered MX record points to local host")
    assert record.recipient == "kim@example.com" and record.facts["context.system"] == "exim"
    assert record.facts["report.action"] == "failed"
    assert parse_input("** nothing here") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Exchange's message tracking and SMTP protocol logs: no log reader knows them, the error is read as a reply.
        ("2024-05-01T10:00:00.123Z,192.0.2.10,EXCH01,203.0.113.5,mx.fabrikam.example,;250 2.0.0 OK;ClientSubmitTime:,"
         "Outbound,FAIL,<abc@contoso.com>,bob@fabrikam.example,550 5.1.1 User unknown", (550, "5.1.1")),
        ("2024-05-01T10:00:01.789Z,EXCH01\\Default Frontend EXCH01,08DC6A1B2C3D4E60,7,10.0.0.5:25,192.0.2.77:50123,>,"
         "451 4.7.0 Temporary server error. Please try again later. PRX5,", (451, "4.7.0")),
        # Timestamped lines with no error code stay nothing: a connection, a delivery, the kernel.
        ("Jun  3 14:22:10 mx1 postfix/smtpd[1001]: connect from client.example.org[192.0.2.50]", None),
        ("Jun  3 14:31:00 mx1 postfix/smtp[28951]: 1B: to=<ok@example.org>, relay=mx.example.org[192.0.2.60]:25, "
         "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4XyzAbC)", None),
        ("Jun  3 14:22:10 mx1 kernel: eth0: link up, 1000 Mbps", None),
    ],
)
def test_timestamped_lines_no_log_reader_knows_are_read_as_a_reply_when_they_hold_an_error_code(
    text: str, expected: tuple[int, str] | None
) -> None:
    records = parse_input(text)
    if expected is None:
        assert records == []
        assert parse_input(text, kind="log") == []
        return
    (record,) = records
    assert record.kind == "reply"
    assert (record.facts["smtp.reply_code"], record.facts["smtp.enhanced"]) == expected
    assert parse_input(text, kind="log") == []  # asked for a log, it is read as one only
