"""Hypothesis fuzzing of every intake parser and of the stream reader (issue 17): any input gives
records or notes, never an exception, and never takes long. The per-example deadline is a
generous hang detector (this machine is shared), not a performance target; `benchmarks/` times."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailtriage.errors import InputError
from mailtriage.facts import normalize_facts
from mailtriage.intake import INPUT_KINDS, IntakeRecord, SkippedInput, detect_kind, parse_input
from mailtriage.intake.logs import parse_log_line
from mailtriage.intake.ndr import parse_message
from mailtriage.intake.paths import iter_stream_records
from mailtriage.intake.reply import parse_reply

DATA = Path(__file__).parent / "data" / "intake"
HANG = 10_000  # ms per example

SMTP_WORDS = st.sampled_from([
    "550", "5.1.1", "450 ", "4.4.316", "421-", "999", "000", "5_5_0", "<", ">", "@", "[", "]", "(", ")", ":", "=",
    "status=", "stat=", " ** ", " == ", "postfix/smtp[1]: ", "host mx.example.com said: ", "Connection refused",
    "\r\n", "\n", "\t", " ", "\x1b[2J", "\x00", "é", "Content-Type: multipart/report; boundary=b\n", "--b\n",
    "Action: failed\n", "Status: 5.1.1\n", "Final-Recipient: rfc822; a@b\n", "From: MAILER-DAEMON\n", "<script",
])
SMTPISH = st.lists(SMTP_WORDS | st.text(max_size=8), max_size=60).map("".join)
LOG_PREFIX = st.sampled_from(["Dec  3 10:00:00 host ", "2026-12-03T10:00:00 host ", ""])
FIXTURES = sorted(p.name for p in DATA.iterdir() if p.is_file())


def _valid(records: list[IntakeRecord]) -> None:
    for record in records:
        assert normalize_facts(record.facts) is not None  # only vocabulary fields, right types


@settings(max_examples=300, deadline=HANG)
@given(SMTPISH)
def test_fuzz_reply(text: str) -> None:
    facts = parse_reply(text)
    if facts:
        normalize_facts({k: v for k, v in facts.items() if k != "input.kind"} | {"input.kind": "reply"})


@settings(max_examples=300, deadline=HANG)
@given(LOG_PREFIX, SMTPISH)
def test_fuzz_log_line(prefix: str, text: str) -> None:
    record = parse_log_line(prefix + text)
    if record is not None:
        _valid([record])


@settings(max_examples=200, deadline=HANG)
@given(st.binary(max_size=3000) | SMTPISH.map(str.encode))
def test_fuzz_detect_kind(data: bytes) -> None:
    assert detect_kind(data) in INPUT_KINDS


@settings(max_examples=150, deadline=HANG)
@given(st.sampled_from([n for n in FIXTURES if n.endswith(".eml")]), st.integers(0, 3000), SMTPISH)
def test_fuzz_ndr_spliced(name: str, at: int, junk: str) -> None:
    """Real bounces with hostile text spliced in anywhere."""
    raw = (DATA / name).read_bytes()
    # A refusal with a reason (e.g. MIME nested too deep) is an answer too.
    with contextlib.suppress(InputError):
        _valid(parse_message(raw[:at] + junk.encode("utf-8", "surrogateescape") + raw[at:]))


@settings(max_examples=100, deadline=HANG)
@given(st.integers(1, 400), st.sampled_from(["multipart/mixed", "multipart/report", "message/rfc822"]))
def test_fuzz_ndr_nesting(depth: int, kind: str) -> None:
    head = "From: MAILER-DAEMON@example.com\nSubject: Undelivered Mail\nMIME-Version: 1.0\n"
    body = "".join(f"Content-Type: {kind}; boundary=b{i}\n\n--b{i}\n" for i in range(depth))
    with contextlib.suppress(InputError):
        _valid(parse_message((head + body + "\n550 5.1.1 user unknown\n").encode()))


@settings(max_examples=200, deadline=HANG, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000) | SMTPISH.map(str.encode), st.sampled_from(INPUT_KINDS))
def test_fuzz_stream_reader(data: bytes, kind: str) -> None:
    """What `diagnose -` and `scan` do with an input: records or notes, nothing else."""
    items = list(iter_stream_records(io.BytesIO(data), "<fuzz>", kind))
    assert items
    assert all(isinstance(item, IntakeRecord | SkippedInput) for item in items)
    _valid([item for item in items if isinstance(item, IntakeRecord)])


@settings(max_examples=100, deadline=HANG)
@given(st.binary(max_size=3000), st.sampled_from(INPUT_KINDS))
def test_fuzz_parse_input(data: bytes, kind: str) -> None:
    with contextlib.suppress(InputError):
        _valid(parse_input(data, kind=kind))
