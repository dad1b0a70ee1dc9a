"""No control character from an input (pasted reply, message, log line, file name, a probed
server's banner) reaches the terminal raw: ESC sequences (window title, clear screen, OSC-8
links), C1 controls and bidi overrides are shown escaped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT
from mailtriage.cli import cli
from mailtriage.textsafe import json_text, visible
from probe_servers import Behaviour, ScriptedSmtpServer, dns_server

TITLE = "\x1b]0;pwned-title\x07"
CLEAR = "\x1b[2J\x1b[H"
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"
C1_CSI = "\x9b31m"
BIDI = "\u202eevil"
HOSTILE = TITLE + CLEAR + OSC8 + C1_CSI + BIDI + "\r"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\r")


def assert_no_raw_controls(output: str) -> None:
    for char in RAW:
        assert char not in output, (char, output[:2000])
    # Only layout characters remain.
    assert all(ch in "\n\t" or ord(ch) >= 0x20 for ch in output if ord(ch) < 0xA0 and not 0x20 <= ord(ch) < 0x7F)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@given(st.text(min_size=1, max_size=40))
def test_visible_leaves_no_control_character(text: str) -> None:
    shown = visible(text)
    assert not [ch for ch in shown if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F]
    assert json.loads(json_text({"v": text}))["v"] == text  # JSON escaping keeps the value


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_pasted_reply_with_escape_sequences(fmt: str) -> None:
    reply = f"550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown {HOSTILE}"
    code, output = invoke("diagnose", "--smtp-reply", reply, "--format", fmt)
    assert code in (0, 1), output
    assert_no_raw_controls(output)
    if fmt == "json":
        assert HOSTILE.rstrip("\r") in json.loads(output)["facts"]["smtp.text"]  # the value itself is intact
    elif fmt == "text":
        assert "\\x1b]0;pwned-title\\x07" in output  # the facts line shows it, escaped


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_quoted_words_of_a_why_line_with_escape_sequences(fmt: str) -> None:
    """The why line quotes the words a rule's pattern matched; `\\S+` in a pattern matches an escape
    sequence too, so the quote must be shown escaped like any other text from the input."""
    reply = "550 5.1.1 The user does not have a \x1b]0;pwned\x07\x1b[31m account here"
    code, output = invoke("diagnose", reply, "--format", fmt)
    assert code in (0, 1), output
    assert_no_raw_controls(output)
    assert "does not have a \\x1b]0;pwned\\x07\\x1b[31m account" in " ".join(output.split())


def test_bounce_message_with_escape_sequences(tmp_path: Path) -> None:
    message = (
        "From: MAILER-DAEMON@example.org\r\n"
        f"Subject: Undelivered Mail {TITLE}\r\n"
        "Content-Type: text/plain\r\n\r\n"
        f"<{CLEAR}bob@example.com>: host mx.example.com[192.0.2.7] said: 550 5.1.1 "
        f"User unknown {OSC8} (in reply to RCPT TO command)\r\n"
    )
    path = tmp_path / f"bounce{TITLE}.eml"
    path.write_text(message, encoding="utf-8")
    for fmt in ("text", "markdown"):
        _, output = invoke("diagnose", str(path), "--format", fmt)
        assert_no_raw_controls(output)
    result = CliRunner().invoke(cli, ["scan", str(tmp_path)])
    assert_no_raw_controls(result.output)


def test_error_messages_show_hostile_arguments_escaped() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "engine")}
    for args in (["diagnose", "--smtp-reply", f"hello {TITLE}"], ["diagnose", "--lang", TITLE, "x"], ["rules", "show", TITLE]):
        done = subprocess.run([sys.executable, "-m", "mailtriage", *args], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 2, done
        assert_no_raw_controls(done.stdout + done.stderr)


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    with dns_server() as (zone, port):
        zone.add("mx.evil.test. 60 IN A 127.0.0.1")
        yield port


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_probed_banner_with_escape_sequences(dns_port: int, fmt: str) -> None:
    server = ScriptedSmtpServer(Behaviour(banner=f"554 5.7.1 go away {TITLE}{OSC8}{C1_CSI}", close_after_banner=True))
    try:
        code, output = invoke("probe", "--host", "mx.evil.test", "--port", str(server.port), "--nameserver", f"127.0.0.1:{dns_port}",
                              "--timeout", "3", "--deadline", "10", "--ehlo", "probe.test", "-v", "--format", fmt)
    finally:
        server.stop()
    assert code == 1, output
    assert_no_raw_controls(output)
    if fmt == "text":
        assert "\\x1b]0;pwned-title\\x07" in output  # in the transcript and the facts, escaped


def test_report_of_a_log_with_escape_sequences(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text(
        "Dec  3 09:00:00 relay postfix/smtp[1]: 2B3C4D: to=<bob@evil.example>, relay=mx.evil.example[192.0.2.7]:25, "
        f"delay=1, dsn=4.4.1, status=deferred (connect to mx.evil.example[192.0.2.7]:25: Connection refused {HOSTILE})\n",
        encoding="utf-8",
    )
    for fmt in ("text", "markdown", "json"):
        result = CliRunner().invoke(cli, ["report", str(log), "--format", fmt])
        assert result.exit_code in (0, 1), result.output
        assert_no_raw_controls(result.output)
