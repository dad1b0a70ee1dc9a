"""Every input a scan is given is accounted for: read (with records or a note that it had none)
or skipped with the reason, and nothing hangs, crashes or vanishes (issue 17, items 6 and 7).

The tests run as root, which reads mode-000 files; unreadable inputs are made with `setpriv`
dropping CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (root then obeys file modes), and otherwise with
FIFOs, dangling links and link loops, which no privilege makes readable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailtriage.cli import cli
from mailtriage.intake import IntakeRecord, SkippedInput, iter_path_records

DATA = Path(__file__).parent / "data" / "intake"
ENGINE = str(Path(__file__).parent.parent / "engine")


def scan(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["scan", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout


def deep_mime(levels: int) -> bytes:
    """A bounce-looking message whose multiparts nest `levels` deep (~60 bytes per level)."""
    head = "From: MAILER-DAEMON@example.com\nTo: a@example.com\nSubject: Undelivered Mail\nMIME-Version: 1.0\n"
    body = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(levels))
    body += "Content-Type: text/plain\n\n550 5.1.1 <x@example.com>: user unknown\n"
    body += "".join(f"--b{i}--\n" for i in reversed(range(levels)))
    return (head + body).encode()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder holding one of every awkward thing next to good bounces."""
    root = tmp_path / "in"
    (root / "plain").mkdir(parents=True)
    shutil.copy(DATA / "exim-plain.eml", root / "plain" / "exim.eml")
    for sub in ("cur", "new", "tmp"):
        (root / "Maildir" / sub).mkdir(parents=True)
        (root / "Maildir" / ".Bounces" / sub).mkdir(parents=True)
    shutil.copy(DATA / "postfix-plain.eml", root / "Maildir" / ".Bounces" / "new" / "1.host")
    (root / "Maildir" / "dovecot-uidlist").write_text("3 V1 N2\n")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.eml").write_bytes(b"not read")
    (root / ".hidden.eml").write_bytes((DATA / "sendmail-plain.eml").read_bytes())
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(DATA / "qmail-plain.eml", tmp_path / "elsewhere" / "q.eml")
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    (root / "plain" / "loop").symlink_to(root)
    (root / "dangling.eml").symlink_to(tmp_path / "nowhere")
    os.mkfifo(root / "pipe.eml")
    (root / "clean.log").write_text(
        "Dec  3 10:00:00 host postfix/smtp[1]: ABC: to=<a@b.example>, status=sent (250 ok)\n"
        "Dec  3 10:00:01 host postfix/qmgr[2]: ABC: removed\n"
    )
    with zipfile.ZipFile(root / "attachment.eml", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", "533 " * 3000)
    (root / "deep.eml").write_bytes(deep_mime(1000))
    return root


def test_every_input_is_accounted_for(tree: Path) -> None:
    code, output = scan(str(tree), "--format", "jsonl")
    rows = [json.loads(line) for line in output.splitlines()]
    skipped = {Path(r["source"]).name: r for r in rows if "skipped" in r}
    records = [r for r in rows if "skipped" not in r]
    files_with_records = {Path(r["file"]).name for r in records}
    # Read: plain files, the Maildir++ folder .Bounces, a symlinked folder (once).
    assert files_with_records == {"exim.eml", "1.host", "q.eml"}
    assert skipped["pipe.eml"]["skipped"].startswith("a FIFO") and not skipped["pipe.eml"]["read"]
    assert skipped["dangling.eml"]["skipped"] == "dangling symbolic link"
    assert "already scanned" in skipped["loop"]["skipped"]
    assert skipped[".hidden.eml"]["skipped"] == "hidden file"
    assert skipped[".cache"]["skipped"] == "hidden folder (not a maildir)"
    assert "control file" in skipped["dovecot-uidlist"]["skipped"]
    assert skipped["attachment.eml"]["skipped"].startswith("zip archive")
    assert "MIME structure too complex" in skipped["deep.eml"]["skipped"] and skipped["deep.eml"]["read"]
    assert "no failed or delayed delivery" in skipped["clean.log"]["skipped"] and skipped["clean.log"]["read"]
    assert not any(r.get("reply_code") == 533 for r in records)  # the zip was not read as text
    assert code in (0, 1)


def test_summary_counts_add_up(tree: Path) -> None:
    code, output = scan(str(tree), "--format", "json")
    summary = json.loads(output)
    assert summary["files"] == summary["files_with_records"] + summary["files_without_records"] + summary["files_skipped"]
    assert summary["files_with_records"] == 3
    assert summary["files_without_records"] == 2  # clean.log, deep.eml
    assert summary["files_skipped"] == 7
    assert sum(summary["skipped"].values()) == 9
    names = [Path(name).name for examples in summary["skipped_examples"].values() for name in examples]
    assert "pipe.eml" in names and "deep.eml" in names
    assert code in (0, 1)


def test_text_summary_names_skipped_files(tree: Path) -> None:
    _, output = scan(str(tree))
    assert "pipe.eml" in output and "Files: 3 with records, 2 read without any, 7 skipped." in output


def test_a_fifo_alone_is_nothing_readable(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    code, _ = scan(str(tmp_path / "pipe"))
    assert code == 2


def test_a_clean_log_is_read_and_exits_1(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text("Dec  3 10:00:00 host postfix/smtp[1]: ABC: to=<a@b.example>, status=sent (250 ok)\n" * 3)
    code, output = scan(str(log), "--format", "json")
    assert json.loads(output)["files_without_records"] == 1
    assert code == 1


def test_a_missing_path_among_good_ones_does_not_abort(tmp_path: Path) -> None:
    code, output = scan(str(tmp_path / "gone.eml"), str(DATA / "exo-expired-refused.eml"), "--format", "jsonl")
    rows = [json.loads(line) for line in output.splitlines()]
    assert {"source": str(tmp_path / "gone.eml"), "skipped": "no such file or directory", "read": False} in rows
    assert any(r.get("rule") == "exo-connector-connection-refused" for r in rows)
    assert code == 0


def test_a_file_swapped_for_a_folder_is_skipped(tmp_path: Path) -> None:
    """Between the walk and the read a file can turn into something else."""
    from mailtriage.intake.paths import read_file

    path = tmp_path / "x.eml"
    path.mkdir()
    items = list(read_file(path))
    assert len(items) == 1 and isinstance(items[0], SkippedInput) and not items[0].read


def test_markup_in_names_and_recipients_is_text(tmp_path: Path) -> None:
    folder = tmp_path / "x["
    folder.mkdir()
    raw = (DATA / "postfix-plain.eml").read_bytes().replace(b"erin@example.net", b"bob@[/evil]")
    (folder / "y[bold].eml").write_bytes(raw)
    (folder / "]y.eml").write_bytes(b"\x00\x01 binary")  # the path reads x[/]y.eml
    code, output = scan(str(folder))
    assert "x[/]y.eml" in output  # shown as text, not read as a closing tag
    assert code in (0, 1)


def _drop_dac() -> list[str] | None:
    """A command prefix under which root obeys file modes, or None if that cannot be done here."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        return None
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


def test_unreadable_file_and_folder_are_skipped_and_the_rest_read(tmp_path: Path) -> None:
    prefix = _drop_dac()
    if prefix is None:
        pytest.skip("needs root and setpriv to make a mode-000 input unreadable")
    shutil.copy(DATA / "exo-expired-refused.eml", tmp_path / "good.eml")
    (tmp_path / "locked").mkdir()
    shutil.copy(DATA / "exim-plain.eml", tmp_path / "locked" / "x.eml")
    shutil.copy(DATA / "exim-plain.eml", tmp_path / "secret.eml")
    (tmp_path / "locked").chmod(0)
    (tmp_path / "secret.eml").chmod(0)
    env = {**os.environ, "PYTHONPATH": ENGINE}
    try:
        done = subprocess.run([*prefix, sys.executable, "-m", "mailtriage", "scan", str(tmp_path), "--format", "jsonl"],
                              capture_output=True, text=True, env=env, timeout=300)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert "Traceback" not in done.stderr, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    reasons = {Path(r["source"]).name: r["skipped"] for r in rows if "skipped" in r}
    assert reasons["locked"].startswith("cannot list folder")
    assert reasons["secret.eml"].startswith("cannot read")
    assert any(r.get("rule") == "exo-connector-connection-refused" for r in rows)
    assert done.returncode == 0


def test_only_unreadable_inputs_exit_2(tmp_path: Path) -> None:
    prefix = _drop_dac()
    if prefix is None:
        pytest.skip("needs root and setpriv to make a mode-000 input unreadable")
    shutil.copy(DATA / "exim-plain.eml", tmp_path / "secret.eml")
    (tmp_path / "secret.eml").chmod(0)
    env = {**os.environ, "PYTHONPATH": ENGINE}
    done = subprocess.run([*prefix, sys.executable, "-m", "mailtriage", "scan", str(tmp_path / "secret.eml")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in done.stderr and done.returncode == 2


def test_deep_mime_is_one_skip_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a-deep.eml").write_bytes(deep_mime(1000))
    shutil.copy(DATA / "exim-plain.eml", tmp_path / "b.eml")
    items = list(iter_path_records([str(tmp_path)]))
    assert isinstance(items[0], SkippedInput) and "MIME structure too complex" in items[0].reason
    assert any(isinstance(i, IntakeRecord) for i in items[1:])


def test_internal_error_in_one_input_exits_3_and_lists_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a parser (forced here by breaking one real function) is one skip row with the
    file's name, the other files are read, and the exit status says "internal error"."""
    import mailtriage.intake.paths as paths

    real = paths.parse_message

    def broken(data: bytes, source: str = "<message>") -> list[IntakeRecord]:
        if source.endswith("bad.eml"):
            raise ZeroDivisionError("boom")
        return real(data, source=source)

    monkeypatch.setattr(paths, "parse_message", broken)
    shutil.copy(DATA / "exim-plain.eml", tmp_path / "bad.eml")
    shutil.copy(DATA / "exo-expired-refused.eml", tmp_path / "good.eml")
    code, output = scan(str(tmp_path), "--format", "jsonl")
    rows = [json.loads(line) for line in output.splitlines()]
    bad = [r for r in rows if r["source"].endswith("bad.eml")]
    assert bad and bad[0]["skipped"].startswith("internal error") and "ZeroDivisionError" in bad[0]["skipped"]
    assert any(r.get("rule") == "exo-connector-connection-refused" for r in rows)
    assert code == 3


def test_jobs_are_capped() -> None:
    code, _ = scan(str(DATA), "--jobs", "256")
    assert code == 2


def test_help_documents_the_exit_statuses() -> None:
    text = " ".join(CliRunner().invoke(cli, ["scan", "--help"]).output.split())
    assert "3 an internal error" in text and "2 nothing could be read" in text


def test_an_unexpected_crash_is_one_line_and_exit_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A bug anywhere (forced here) is not a traceback and not exit 2 ("bad input")."""
    from mailtriage import cli as cli_module

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(cli_module.cli, "main", crash)
    monkeypatch.delenv("MAILTRIAGE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli_module.main()
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "Traceback" not in err
