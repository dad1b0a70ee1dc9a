"""`diagnose` reads files and standard input the way `scan` does, in bounded memory, and says
what it cut or skipped (issue 17, items 8 and 11). Large inputs are generated, never committed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailtriage.cli import cli
from mailtriage.errors import FactError, InputError
from mailtriage.intake.ndr import MAX_MESSAGE_BYTES

DATA = Path(__file__).parent / "data" / "intake"
ENGINE = str(Path(__file__).parent.parent / "engine")
BOUNCES = ("exim-plain.eml", "postfix-plain.eml", "sendmail-plain.eml", "exo-expired-refused.eml")
FAILED_LOG_LINE = (
    "Dec  3 10:00:01 host postfix/smtp[1]: ABC: to=<a@b.example>, relay=none, delay=1, status=deferred "
    "(connect to mx.b.example[192.0.2.1]:25: Connection refused)\n"
)


def diagnose(*args: str, stdin: bytes | None = None) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(cli, ["diagnose", *args], input=stdin)
    error = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout, result.stderr, error


def test_every_message_of_an_mbox_is_diagnosed(tmp_path: Path) -> None:
    mbox = tmp_path / "box.mbox"
    with open(mbox, "wb") as handle:
        for name in BOUNCES * 6:  # 24 messages
            handle.write(b"From MAILER-DAEMON Thu Dec  3 10:00:00 2026\n" + (DATA / name).read_bytes().rstrip(b"\n") + b"\n\n")
    code, output, _, error = diagnose(str(mbox), "--format", "json")
    assert error is None
    sources = {record["source"].rsplit("#", 1)[1] for record in json.loads(output)["records"]}
    assert sources == {str(n) for n in range(1, 25)}  # every message, not the first two
    assert code in (0, 1)


def test_a_report_beyond_the_cut_says_so(tmp_path: Path) -> None:
    path = tmp_path / "late.eml"
    head = b"From: MAILER-DAEMON@example.com\nTo: a@example.com\nSubject: Undelivered Mail Returned to Sender\n\n"
    with open(path, "wb") as handle:
        handle.write(head)
        filler = b"x" * 1023 + b"\n"
        for _ in range(MAX_MESSAGE_BYTES // 1024 + 10):
            handle.write(filler)
        handle.write(b"<x@example.com>: host mx.example.com said: 550 5.1.1 User unknown\n")
    _, _, _, error = diagnose(str(path))
    assert isinstance(error, InputError) and "only the first 4 MB read" in str(error)


def test_stdin_zeros_stop_at_the_sniff() -> None:
    with open("/dev/zero", "rb") as zeros:
        done = subprocess.run([sys.executable, "-m", "mailtriage", "diagnose", "-"], stdin=zeros, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": ENGINE}, timeout=120)
    assert done.returncode == 2 and "binary data" in done.stderr and "Traceback" not in done.stderr


def test_endless_text_on_stdin_is_capped_and_said() -> None:
    """`yes` never ends: only the cap may be read."""
    yes = subprocess.Popen(["yes", "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown"],
                           stdout=subprocess.PIPE)
    try:
        done = subprocess.run([sys.executable, "-m", "mailtriage", "diagnose", "-", "--format", "json"], stdin=yes.stdout,
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ENGINE}, timeout=120)
    finally:
        yes.kill()
        yes.wait()
    assert "cut at its size cap" in done.stderr
    assert json.loads(done.stdout)["facts"]["smtp.reply_code"] == 550


def test_a_log_on_stdin_is_read_line_by_line() -> None:
    huge_line = b"y" * (3 * 1024 * 1024) + b"\n"  # one 3 MB line is cut, not held
    log = FAILED_LOG_LINE.encode() + huge_line + b"Dec  3 10:00:02 host postfix/qmgr[2]: ABC: removed\n" * 1000
    code, output, _, error = diagnose("-", "--input-kind", "log", "--format", "json", stdin=log + FAILED_LOG_LINE.encode())
    assert error is None
    assert len(json.loads(output)["records"]) == 2
    assert code in (0, 1)


def test_empty_input_is_not_the_current_folder() -> None:
    _, _, _, error = diagnose("")
    assert isinstance(error, InputError) and "empty" in str(error) and "folder" not in str(error)


def test_zip_and_binary_files_are_not_read_as_text(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.txt", "533 " * 5000)
    _, _, _, error = diagnose(str(tmp_path / "a.zip"))
    assert isinstance(error, InputError) and "zip archive" in str(error)


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_hours_queued_are_refused(value: str) -> None:
    code, output, _, error = diagnose("--smtp-reply", "450 4.4.316 Connection refused", "--hours-queued", value,
                                      "--format", "json")
    assert code == 2 or isinstance(error, FactError)
    assert "Infinity" not in output and "NaN" not in output


def test_fact_values_parse_like_the_parser() -> None:
    _, _, _, error = diagnose("--fact", "smtp.reply_code=5_5_0")
    assert isinstance(error, FactError)
    _, output, _, error = diagnose("--fact", "smtp.reply_code=550", "--format", "json")
    assert error is None and json.loads(output)["facts"]["smtp.reply_code"] == 550
