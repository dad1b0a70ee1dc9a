"""The intake's regexes are linear on hostile inputs up to the size caps: the audit's worst inputs
(which took 24 s to 4 min) finish within a generous hang-detector bound, and fuzzed hostile
building blocks never take long. Timing targets live in benchmarks/bench_worst_inputs.py."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.intake import parse_input
from mailtriage.intake.logs import _kv_fields, parse_log_line
from mailtriage.intake.ndr import _ADDRESS_RE, _drop_elements, _strip_tags, parse_message
from mailtriage.intake.reply import _brackets, parse_reply
from mailtriage.intake.trace import _braced, _led

HANG_SECONDS = 20.0  # the old code took 24 s to 4 minutes on these; the new one well under 1 s


def message(body: str, ctype: str = "text/plain") -> bytes:
    return f"From: MAILER-DAEMON@example.org\nSubject: Undelivered Mail\nContent-Type: {ctype}\n\n{body}".encode()


AUDIT_INPUTS = {
    "200 kB From: header": ("From: " + "a" * 200_000 + "\nSubject: x\n\n550 5.1.1 user unknown\n").encode(),
    "200 kB of <script": message("<script" * 30_000, "text/html"),
    "200 kB of unclosed <": message("<" * 200_000, "text/html"),
    "0.8 MB Sendmail log": (
        "Dec  3 09:00:00 relay sendmail[1]: x: to=<bob@example.com>, " + "a=<," * 1980 + " stat=Deferred: x\n"
    ).encode() * 100,
    "60 kB line of spaces in a notice": message(" " * 60_000 + "x\n<bob@example.com>: 550 5.1.1 User unknown\n"),
    "20 kB of [key= in a reply": ("550 5.1.1 " + "[a=" * 6_700).encode(),
}


@pytest.mark.parametrize("name", list(AUDIT_INPUTS))
def test_audit_worst_inputs_finish(name: str) -> None:
    started = time.perf_counter()
    parse_input(AUDIT_INPUTS[name])
    assert time.perf_counter() - started < HANG_SECONDS


def test_the_sendmail_lines_are_still_read() -> None:
    records = parse_input(AUDIT_INPUTS["0.8 MB Sendmail log"])
    assert len(records) == 100 and records[0].recipient == "bob@example.com"


BLOCKS = ["a", " ", "\t", "<", ">", "[", "]", "@", ".", ":", "=", ",", "(", ")", "550 ", "5.1.1", "a=<", "[a=",
          "<script", "</script>", "a@b.c", "1.2.3.4", "host ", "to:", "recipient ", "-", "--", "\n"]
hostile = st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=6).flatmap(
    lambda unit: st.integers(200, 3_000).map(lambda n: ("".join(unit) * (n // len("".join(unit)) + 1))[:n])
)


@settings(max_examples=60, deadline=None)
@given(hostile)
def test_fuzzed_hostile_text_never_takes_long(text: str) -> None:
    started = time.perf_counter()
    parse_reply(text)
    parse_log_line("Dec  3 09:00:00 relay sendmail[1]: x: to=<b@c>, " + text + " stat=Deferred: " + text)
    parse_log_line("Dec  3 09:00:00 relay postfix/smtp[1]: AB: to=<b@c>, relay=x, status=deferred (" + text + ")")
    parse_message(message(text))
    parse_message(message(text, "text/html"))
    assert time.perf_counter() - started < HANG_SECONDS


# The linear rewrites read exactly what the regexes they replace read.
small_text = st.text(alphabet="ab=<>,[]_ @.x-:", max_size=24)


@given(small_text)
def test_kv_fields_read_like_the_regex(text: str) -> None:
    assert _kv_fields(text) == dict(re.findall(r"(\w+)=(<[^>]*>|[^,]*)", text))


@given(small_text)
def test_brackets_read_like_the_regex(text: str) -> None:
    expected = [(m.start(), m.end(), m.group(1), m.group(2)) for m in re.finditer(r"\[(\w+)=([^\]]*)\]", text)]
    assert _brackets(text) == expected


@given(st.lists(st.sampled_from(["<script>", "</script>", "<STYLE x>", "</style>", "<", ">", "a", "<Script"]), max_size=8).map("".join))
def test_html_stripping_reads_like_the_regexes(html: str) -> None:
    assert _drop_elements(html, ("script", "style")) == re.sub(r"(?is)<(script|style).*?</\1>", " ", html)
    assert _strip_tags(html) == re.sub(r"<[^>]*>", " ", html)


@pytest.mark.parametrize(
    ("text", "addresses"),
    [
        ("bob@example.com... User unknown", ["bob@example.com"]),
        ("to=bob@example.com, <carol@example.org>", ["to=bob@example.com", "carol@example.org"]),
        ("x" * 50_000 + " a@b.example", ["a@b.example"]),
    ],
)
def test_address_search_finds_addresses(text: str, addresses: list[str]) -> None:
    assert _ADDRESS_RE.findall(text) == addresses


@given(st.lists(st.sampled_from(["{LED=", "};", "}", ";", "a", "\n", "{FQDN=", "{IP=", "{"]), max_size=10).map("".join))
def test_trace_fields_read_like_the_regexes(text: str) -> None:
    led = re.search(r"\{LED=(.*?)\};", text, re.S)
    assert _led(text) == (led.group(1) if led else None)
    for key in ("FQDN", "IP"):
        found = re.search(r"\{" + key + r"=([^};]*)\}", text)
        assert _braced(text, key) == (found.group(1) if found else None)


def test_trace_fields_are_linear_on_unclosed_openers() -> None:
    started = time.perf_counter()
    assert _led("{LED=" * 4_000) is None and _braced("{FQDN=" * 4_000, "FQDN") is None
    assert _braced("{IP=;" * 4_000 + "{IP=192.0.2.1}", "IP") == "192.0.2.1"
    assert time.perf_counter() - started < HANG_SECONDS
