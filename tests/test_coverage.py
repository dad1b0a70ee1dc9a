"""`rules coverage`: what the rules do not explain yet, grouped by normalised text."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mailtriage.cli import cli
from mailtriage.coverage import Outcome, coverage, normalise_text
from mailtriage.engine import Engine


def _bounce(recipient: str, diagnostic: str) -> str:
    return (
        "From: MAILER-DAEMON@mx.example.net\nTo: sender@example.org\nSubject: Undelivered Mail Returned to Sender\n"
        'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nThe mail system could not deliver your message.\n\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: 5.0.0\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n\n--b--\n"
    )


def test_normalise_keeps_codes_and_hides_variable_parts() -> None:
    text = normalise_text("550 5.1.1 <kim@example.com>: Recipient unknown on mx7.example.com [192.0.2.7] id 4Fz81kQ9")
    assert text == "550 5.1.1 <<address>>: recipient unknown on <host> [<ip>] id <id>"
    assert normalise_text("452 4.2.2 Over quota (10 MB)") == "452 4.2.2 over quota (<n> mb)"


def test_groups_generic_and_unread_inputs(tmp_path: Path, engine: Engine) -> None:
    # Two bounces with the same odd reply to different people form one group; a letter is no bounce.
    (tmp_path / "a.eml").write_text(_bounce("ana@example.com", "550 5.0.0 Frobnication refused for ana@example.com"))
    (tmp_path / "b.eml").write_text(_bounce("bo@example.net", "550 5.0.0 Frobnication refused for bo@example.net"))
    (tmp_path / "c.eml").write_text("From: a@example.com\nTo: b@example.com\nSubject: lunch\n\nSee you at noon.\n")
    report = coverage([str(tmp_path)], engine)
    assert (report.records, report.specific, report.no_record) == (2, 0, 1)
    assert not report.complete
    top = report.groups[0]
    assert (top.outcome, top.count, top.text) == (Outcome.GENERIC, 2, "550 5.0.0 frobnication refused for <address>")
    assert top.rules == {"iana-x-0-0": 2}
    assert any(g.outcome is Outcome.NO_RECORD and g.examples == [str(tmp_path / "c.eml")] for g in report.groups)


def test_a_covered_input_leaves_nothing_to_do(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "a.eml").write_text(_bounce("ana@example.com", "552 5.2.2 Mailbox full: quota exceeded"))
    report = coverage([str(tmp_path)], engine)
    assert (report.records, report.specific, report.groups) == (1, 1, [])
    assert report.complete


def test_cli_json_and_exit_status(tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_text(_bounce("ana@example.com", "550 5.0.0 Frobnication refused"))
    result = CliRunner().invoke(cli, ["rules", "coverage", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["generic"] == 1 and data["groups"][0]["text"] == "550 5.0.0 frobnication refused"
    result = CliRunner().invoke(cli, ["rules", "coverage", str(tmp_path)])
    assert "1 generic only" in result.output and "frobnication refused" in result.output
