"""The linter on broken-rule fixtures: each problem with file:line:col, a code, and exit 1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import DATA
from mailtriage.cli import cli
from mailtriage.yamlsource import read_yaml

LINT = DATA / "lint"


def run_lint(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["lint", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("fixture", "code", "file", "line", "column"),
    [
        ("bad-yaml", "MT001", "rule.yaml", 9, 8),
        ("schema-violation", "MT003", "rule.yaml", 3, 9),
        ("duplicate-id", "MT004", "b.yaml", 2, 5),
        ("bad-regex", "MT007", "rule.yaml", 13, 35),
        ("failing-example", "MT009", "rule.yaml", 29, 7),
        ("unknown-field", "MT006", "rule.yaml", 17, 26),
        ("bad-code", "MT005", "rule.yaml", 12, 38),
        ("unknown-reference", "MT010", "rule.yaml", 23, 12),
    ],
)
def test_each_broken_rule_is_reported_with_its_position(fixture: str, code: str, file: str, line: int, column: int) -> None:
    exit_code, output = run_lint(str(LINT / fixture))
    assert exit_code == 1, output
    expected = f"{fixture}/{file}:{line}:{column}: {code} error:"
    assert any(expected in row for row in output.splitlines()), output


def test_stale_translation_is_a_warning_that_fails_strict() -> None:
    exit_code, output = run_lint(str(LINT / "stale-translation"))
    assert exit_code == 0, output
    assert re.search(r"relay-denied\.pt-BR\.yaml:4:\d+: MT102 warning", output), output
    exit_code, output = run_lint(str(LINT / "stale-translation"), "--strict")
    assert exit_code == 1


def test_valid_fixture_is_clean_even_in_strict_mode() -> None:
    exit_code, output = run_lint(str(LINT / "valid"), "--strict")
    assert exit_code == 0, output


def test_bundled_rules_lint_clean() -> None:
    exit_code, output = run_lint()
    assert exit_code == 0, output


def test_one_broken_rule_does_not_hide_the_others(tmp_path: Path) -> None:
    for name in ("bad-regex", "unknown-field", "schema-violation"):
        (tmp_path / f"{name}.yaml").write_text((LINT / name / "rule.yaml").read_text().replace("test-relay-denied", f"t-{name}"))
    exit_code, output = run_lint(str(tmp_path), "--format", "json")
    assert exit_code == 1
    report = json.loads(output)
    assert sorted(p["code"] for p in report["problems"] if p["severity"] == "error") == ["MT003", "MT006", "MT007"]
    assert all(p["line"] and p["column"] for p in report["problems"])


@pytest.mark.parametrize(
    ("text", "code", "where"),
    [
        ("a: 1\na: 2\n", "MT002", (2, 1)),
        ("a: &x [1]\nb: *x\n", "MT002", (1, 4)),
        ("a: 2020-01-01\n", "MT003", (1, 4)),
        ("a: [1\n", "MT001", (2, 1)),
        ("", "MT003", (1, 1)),
        ("!!python/object:os.system {}\n", "MT001", (1, 1)),
    ],
)
def test_yaml_is_read_safely(text: str, code: str, where: tuple[int, int]) -> None:
    document, problems = read_yaml("x.yaml", text)
    assert document is None
    assert [(p.code, p.location.line, p.location.column) for p in problems] == [(code, *where)]


def test_billion_laughs_is_refused_without_expanding(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        prev = chr(ord("a") + level - 1)
        this = chr(ord("a") + level)
        lines.append(f"{this}: &{this} [" + ",".join([f"*{prev}"] * 9) + "]")
    document, problems = read_yaml("bomb.yaml", "\n".join(lines) + "\n")
    assert document is None and problems[0].code == "MT002"


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 600_000 + "\n")
    document, problems = read_yaml(str(big))
    assert document is None and problems[0].code == "MT012"


def test_glossary_term_in_a_translation_is_a_warning(tmp_path: Path) -> None:
    # The valid fixture, with a term the pt-BR glossary rejects ("e-mail") in one string;
    # the same term inside a code span is left alone.
    import shutil

    folder = tmp_path / "rules"
    shutil.copytree(LINT / "stale-translation", folder)
    translation = folder / "relay-denied.pt-BR.yaml"
    text = translation.read_text(encoding="utf-8")
    text = text.replace("Configure o SMTP AUTH no cliente.", "Configure o SMTP AUTH no cliente de e-mail (`e-mail`).")
    translation.write_text(text, encoding="utf-8")
    exit_code, output = run_lint(str(folder))
    assert exit_code == 0, output  # a warning: only --strict fails on it
    rows = [row for row in output.splitlines() if "MT106" in row]
    assert len(rows) == 1 and "relay-denied.pt-BR.yaml:" in rows[0] and "'email'" in rows[0], output


def test_the_glossary_is_not_read_as_a_rule() -> None:
    from mailtriage.loader import glossary_violations
    from mailtriage.resources import bundled_rules_dir

    assert (bundled_rules_dir() / "schema" / "glossary.yaml").is_file()
    assert glossary_violations("pt-BR", "Abra o Relay Interno") == [("Relay Interno", "Retransmissão Interna")]
    assert glossary_violations("pt-BR", "Envie um email") == []
    assert glossary_violations("en", "Send an e-mail") == []


def test_exchange_online_rule_without_a_powershell_command_is_flagged(tmp_path: Path) -> None:
    source = (LINT / "valid" / "relay-denied.yaml").read_text(encoding="utf-8")
    exo = source.replace("systems: [postfix]", "systems: [exchange-online]")
    assert exo != source
    (tmp_path / "rule.yaml").write_text(exo, encoding="utf-8")
    exit_code, output = run_lint(str(tmp_path))
    assert exit_code == 0, output
    assert re.search(r"rule\.yaml:\d+:\d+: MT107 warning: exchange-online rule without a PowerShell command", output), output
    # A command in the admin's shell answers it; a Unix one does not.
    steps = "    steps: [Configure SMTP AUTH on the client.]\n"
    assert steps in exo
    for shell, flagged in (("sh", True), ("powershell", False)):
        fixed = exo.replace(steps, steps + f'    commands: [{{shell: {shell}, run: "Get-TransportConfig | Format-List SmtpClientAuthenticationDisabled"}}]\n')
        (tmp_path / "rule.yaml").write_text(fixed, encoding="utf-8")
        exit_code, output = run_lint(str(tmp_path))
        assert ("MT107" in output) is flagged, output
