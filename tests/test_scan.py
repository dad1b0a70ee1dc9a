"""`mailtriage scan` end to end, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from mailtriage.cli import cli

DATA = Path(__file__).parent / "data" / "intake"
ROW_FIELDS = {"file", "recipient", "status", "reply_code", "rule", "fallback", "category"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["scan", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout


def test_jsonl_rows() -> None:
    code, output = run(str(DATA), "--format", "jsonl")
    lines = [json.loads(line) for line in output.splitlines()]
    rows = [row for row in lines if "skipped" not in row]
    assert all(set(row) >= ROW_FIELDS for row in rows)
    # Inputs without records have a row saying why.
    assert {"source": str(DATA / "not-bounce.eml"), "skipped": "not a bounce or delay notice", "read": True} in lines
    by_recipient = {row["recipient"]: row for row in rows if row["kind"] == "ndr"}
    jane = by_recipient["jane@contoso.com"]
    assert jane["status"] == "4.4.316" and jane["reply_code"] == 450
    assert jane["rule"] == "exo-connector-connection-refused"
    assert jane["fallback"] is False and jane["category"] == "connector"
    assert jane["file"].endswith("exo-expired-refused.eml")
    mbox_rows = [row for row in rows if row["source"].endswith("bounces.mbox#3")]
    assert {row["file"] for row in mbox_rows} == {str(DATA / "bounces.mbox")}
    assert not any(row["file"].endswith("not-bounce.eml") for row in rows)
    assert code in (0, 1)


def test_json_summary() -> None:
    code, output = run(str(DATA / "postfix.log"), str(DATA / "exo-expired-refused.eml"), "--format", "json")
    summary = json.loads(output)
    assert summary["files"] == 2
    assert summary["records"] == 8
    assert summary["by_code"]["4.4.316"] == 1
    assert summary["by_domain"]["contoso.com"] == 1
    assert summary["by_rule"]["exo-connector-connection-refused"] == 1
    assert summary["specific"] + summary["not_specific"] == 8
    assert code == (0 if summary["not_specific"] == 0 else 1)


def test_text_summary_lists_skipped_inputs(tmp_path: Path) -> None:
    (tmp_path / "noise.bin").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "hello.eml").write_bytes((DATA / "not-bounce.eml").read_bytes())
    code, output = run(str(tmp_path))
    assert "binary data" in output and "not a bounce" in output  # the text summary goes to stdout
    assert code == 1  # nothing diagnosed


def test_missing_path_is_bad_input() -> None:
    code, _ = run("/nonexistent/path/to/bounces")
    assert code == 2


def test_jobs_give_the_same_rows() -> None:
    _, one = run(str(DATA), "--format", "jsonl")
    _, two = run(str(DATA), "--format", "jsonl", "--jobs", "2")
    assert sorted(one.splitlines()) == sorted(two.splitlines())


def test_random_bytes_never_traceback(tmp_path: Path) -> None:
    for index in range(20):
        (tmp_path / f"junk{index}.eml").write_bytes(os.urandom(500 + index * 97))
        (tmp_path / f"text{index}.log").write_bytes(os.urandom(300).replace(b"\x00", b"\n"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "engine")}
    done = subprocess.run([sys.executable, "-m", "mailtriage", "scan", str(tmp_path), "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in done.stderr
    assert done.returncode == 2  # random bytes are binary data: nothing readable
    assert json.loads(done.stdout)["files"] == 40


def test_jobs_give_identical_output_in_input_order(tmp_path: Path) -> None:
    # Enough files for several batches per worker, so that forked workers really share the work.
    files = [p for p in sorted(DATA.iterdir()) if p.is_file()]
    for copy in range(4):
        for source in files:
            (tmp_path / f"{copy}-{source.name}").write_bytes(source.read_bytes())
    code_one, one = run(str(tmp_path), "--format", "jsonl")
    code_three, three = run(str(tmp_path), "--format", "jsonl", "--jobs", "3")
    assert one.count("\n") >= 4 * len(files) and one == three and code_one == code_three
    _, summary_one = run(str(tmp_path), "--format", "json")
    _, summary_two = run(str(tmp_path), "--format", "json", "--jobs", "2")
    assert summary_one == summary_two
