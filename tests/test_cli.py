"""The command line as users and scripts see it: output contracts, exit codes, clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import DATA, ROOT
from mailtriage.cli import COMMANDS, cli


def invoke(*args: str, input_text: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input_text)
    return result.exit_code, result.output


def run_main(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a subprocess (error handling lives in main())."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "engine")}
    return subprocess.run([sys.executable, "-m", "mailtriage", *args], capture_output=True, text=True, env=env, timeout=60)


def test_diagnose_json_contract_from_a_reply() -> None:
    code, output = invoke("diagnose", "--smtp-reply", "450 4.4.316 Connection refused", "--system", "exchange-online", "--format", "json")
    assert code == 0
    data = json.loads(output)
    assert data["facts"]["smtp.enhanced"] == "4.4.316"
    assert data["matches"][0]["rule"] == "exo-connector-connection-refused"
    assert {"rule", "codes", "title", "causes", "fixes", "why"} <= set(data["matches"][0])
    assert isinstance(data["next_checks"], list)


def test_diagnose_from_flags_steers_the_causes() -> None:
    code, output = invoke("diagnose", "--tcp", "refused", "--direction", "outbound-connector", "--migrated-to-cloud", "--format", "json")
    assert code == 0
    top = json.loads(output)["matches"][0]
    assert top["causes"][0]["id"] == "on-premises-retired" and top["causes"][0]["likelihood"] == "likely"


def test_diagnose_pasted_text_as_argument_and_stdin() -> None:
    code, output = invoke("diagnose", "550 5.4.316 Message expired, connection refused", "--format", "json")
    assert code == 0 and json.loads(output)["matches"][0]["rule"] == "exo-connector-connection-refused"
    code, output = invoke("diagnose", "-", "--format", "json", input_text="550 5.4.316 Message expired, connection refused\n")
    assert code == 0 and json.loads(output)["facts"]["smtp.enhanced"] == "5.4.316"


@pytest.mark.parametrize("fmt", ["text", "markdown"])
@pytest.mark.parametrize("lang", ["en", "pt-BR"])
def test_diagnose_human_formats_render(fmt: str, lang: str) -> None:
    code, output = invoke("diagnose", "--tcp", "refused", "--direction", "outbound-connector", "--format", fmt, "--lang", lang)
    assert code == 0
    heading = {"en": "How to fix", "pt-BR": "Como corrigir"}[lang]
    assert heading in output


def test_diagnose_exit_1_when_nothing_specific_matches() -> None:
    code, output = invoke("diagnose", "--tcp", "connected", "--format", "json")
    assert code == 1
    assert json.loads(output)["specific"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["diagnose", "--fact", "smtp.reply_code=abc"], "smtp.reply_code"),
        (["diagnose", "--fact", "nonsense"], "FIELD=VALUE"),
        (["diagnose", "--smtp-reply", "hello there"], "no SMTP reply code"),
        (["diagnose"], "give INPUT"),
        (["diagnose", "--tcp", "sleepy"], "sleepy"),
        (["rules", "show", "no-such-rule"], "no rule with id"),
        (["lint", "/no/such/folder"], "does not exist"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(args: list[str], message: str) -> None:
    result = run_main(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_rules_list_json_contract() -> None:
    code, output = invoke("rules", "list", "--format", "json")
    assert code == 0
    rules = json.loads(output)
    by_id = {r["id"]: r for r in rules}
    assert "450 4.4.316" in by_id["exo-connector-connection-refused"]["codes"]
    assert all({"id", "codes", "status", "languages"} <= set(r) and "en" in r["languages"] for r in rules)


def test_rules_show_and_translate() -> None:
    code, output = invoke("rules", "show", "exo-connector-connection-refused", "--format", "json")
    assert code == 0 and json.loads(output)["id"] == "exo-connector-connection-refused"
    code, output = invoke("rules", "translate", "exo-connector-connection-refused", "--lang", "pt-BR")
    assert code == 0 and "rule: exo-connector-connection-refused" in output and "source:" in output


def test_extra_rules_folder_extends_the_bundled_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = invoke("diagnose", "--smtp-reply", "554 5.7.1 <a@example.org>: Relay access denied", "--rules", str(DATA / "lint" / "valid"), "--format", "json")
    assert code == 0 and "test-relay-denied" in [m["rule"] for m in json.loads(output)["matches"]]
    monkeypatch.setenv("MAILTRIAGE_RULES", str(DATA / "lint" / "valid"))
    code, output = invoke("rules", "list", "--format", "json")
    assert "test-relay-denied" in {r["id"] for r in json.loads(output)}


def test_invalid_extra_rules_fail_with_the_position() -> None:
    result = run_main("diagnose", "--tcp", "refused", "--rules", str(DATA / "lint" / "bad-regex"))
    assert result.returncode == 2
    assert "MT007" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_examples(command: str) -> None:
    code, output = invoke(command, "--help")
    assert code == 0
    assert "Example" in output
