"""Hostile rule files give `file:line:col: CODE message` problems, never a traceback (issue 17,
items 6 and 11). Each file is generated here; none is committed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailtriage.cli import cli
from mailtriage.errors import Problem
from mailtriage.loader import load_knowledge_base
from mailtriage.yamlsource import MAX_DEPTH, read_yaml

BUNDLED_RULE = Path(__file__).parent.parent / "rules" / "common" / "content-policy-rejected.yaml"

HOSTILE = {
    "bad-timestamp": ("id: x\ncreated: 2024-13-45\n", "MT003", 2),
    "explicit-timestamp": ("id: !!timestamp 2024-99-99\n", "MT003", 1),
    "bool-tag": ("id: !!bool maybe\n", "MT003", 1),
    "int-tag": ("id: !!int abc\n", "MT003", 1),
    "float-tag": ("id: !!float xyz\n", "MT003", 1),
    "huge-int": ("id: x\nstatus: " + "9" * 5000 + "\n", "MT003", 2),
    "infinite": ("id: x\nstatus: .inf\n", "MT003", 2),
    "deep-flow": ("id: x\nm: " + "[" * 600 + "]" * 600 + "\n", "MT012", 2),
    "deep-block": ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 600)), "MT012", MAX_DEPTH + 1),
    "merge-key": ("a: {<<: 1}\n", "MT003", 1),
    "python-tag": ("id: !!python/object:os.system x\n", "MT001", 1),
    "anchor": ("a: &x 1\nb: *x\n", "MT002", 1),
    "two-documents": ("id: a\n---\nid: b\n", "MT001", 2),
    "binary": ("id: !!binary '!!!'\n", "MT003", 1),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_yaml_is_a_located_problem(tmp_path: Path, name: str) -> None:
    text, code, line = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    document, problems = read_yaml(str(path))
    assert document is None
    assert [(p.code, p.location.line) for p in problems] == [(code, line)]
    assert str(problems[0]).startswith(f"{path}:{line}:")


def test_regex_with_1200_nested_groups_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    hostile = "(" * 1200 + "a" + ")" * 1200
    text = BUNDLED_RULE.read_text().replace('"content|policy|restrict|prohibited|forbidden"', json.dumps(hostile))
    (tmp_path / "r.yaml").write_text(text)
    kb = load_knowledge_base([tmp_path])
    # RE2 runs even this in linear time, so it may compile; either way loading reports problems
    # (the rule's examples no longer match: MT010) with their place, and never raises.
    assert kb.errors and {p.code for p in kb.errors} <= {"MT007", "MT010"}
    assert all(p.location.line is not None for p in kb.errors)


def test_a_fifo_named_like_a_rule_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    document, problems = read_yaml(str(tmp_path / "pipe.yaml"))
    assert document is None and "not a regular file" in problems[0].message


def test_id_ending_in_a_newline_fails_the_schema(tmp_path: Path) -> None:
    text = BUNDLED_RULE.read_text().replace("id: common-content-policy-rejected", 'id: "common-content-policy-rejected\\n"')
    (tmp_path / "r.yaml").write_text(text)
    kb = load_knowledge_base([tmp_path])
    assert any(p.code == "MT003" and "does not match" in p.message for p in kb.errors)
    assert not kb.rules


def test_a_rule_linked_to_a_system_file_is_not_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").symlink_to(secret)
    kb = load_knowledge_base([tmp_path / "rules"])
    assert kb.errors and not any("root" in p.message or "daemon" in p.message for p in kb.errors)


def test_oversized_rule_file_is_refused_without_reading(tmp_path: Path) -> None:
    """A sparse 3 GB file: refusing it must not read (or hash) it."""
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(3 * 1024**3)
    document, problems = read_yaml(str(big))
    assert document is None and problems[0].code == "MT012"
    from mailtriage.cache import content_key

    assert len(content_key([tmp_path])) == 32  # hashed without reading 3 GB


def test_diagnose_with_hostile_rules_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(HOSTILE["deep-flow"][0])
    result = CliRunner().invoke(cli, ["diagnose", "--rules", str(tmp_path), "550 5.1.1 unknown user"])
    from mailtriage.errors import RuleError

    assert isinstance(result.exception, RuleError)  # main() prints it as one line, exit 2
    assert result.exception.problems[0].code == "MT012"


def test_markup_in_a_rule_title_is_text(tmp_path: Path) -> None:
    text = BUNDLED_RULE.read_text().replace("id: common-content-policy-rejected", "id: markup-title")
    text = re.sub(r"(?m)^title: .*$", "title: \"[/x] [bold]The receiver's policy refused it\"", text, count=1)
    (tmp_path / "r.yaml").write_text(text)
    from mailtriage.cli.render import render_diagnosis
    from mailtriage.engine import Engine
    from mailtriage.loader import KnowledgeBase

    loaded = load_knowledge_base([tmp_path])  # its see_also names bundled rules: keep the rule only
    engine = Engine(KnowledgeBase(rules=loaded.rules), backend="python")
    import io

    out = io.StringIO()
    diagnosis = engine.diagnose({"smtp.reply_code": 550, "smtp.text": "content restriction"})
    assert diagnosis.matches
    render_diagnosis(diagnosis, "text", "en", file=out)
    assert "[/x] [bold]The receiver" in out.getvalue()


@settings(max_examples=200, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=400) | st.binary(max_size=400).map(lambda b: b.decode("latin-1")))
def test_fuzz_yaml_loader(tmp_path: Path, text: str) -> None:
    """Any text: a document or located problems, never an exception (deadline: hang detector)."""
    document, problems = read_yaml("fuzz.yaml", text=text)
    assert (document is None) == bool(problems)
    assert all(isinstance(p, Problem) and p.location.line for p in problems)


YAML_ATOMS = st.sampled_from(
    ["a", "1", "-1", "0x1f", "1e3", ".inf", ".nan", "~", "true", "yes", "2024-01-01", "2024-13-45", "!!int x",
     "!!bool q", "!!float z", "!!str 1", "!!binary x", "&a 1", "*a", "<<", "? x", "'q'", '"\\x00"', "|\n  t", "!x y"]
)


@settings(max_examples=200, deadline=10_000)
@given(st.recursive(YAML_ATOMS, lambda inner: st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
                    | st.dictionaries(YAML_ATOMS, inner, max_size=3).map(lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"),
                    max_leaves=20))
def test_fuzz_yaml_structures(text: str) -> None:
    document, problems = read_yaml("fuzz.yaml", text="id: " + text + "\n")
    assert (document is None) == bool(problems)
    if document is not None:
        json.dumps(document.data, allow_nan=False)  # rules hold only plain, finite JSON values


def _copy_rule(folder: Path, title: str) -> None:
    folder.mkdir()
    text = BUNDLED_RULE.read_text()
    (folder / "r.yaml").write_text(re.sub(r"(?m)^title: .*$", f"title: {title}", text, count=1))


def test_two_extra_folders_with_one_id_name_each_other(tmp_path: Path) -> None:
    from mailtriage.resources import bundled_rules_dir

    _copy_rule(tmp_path / "first", "First override")
    _copy_rule(tmp_path / "second", "Second override")
    kb = load_knowledge_base([bundled_rules_dir(), tmp_path / "first", tmp_path / "second"])
    overrides = [p.message for p in kb.warnings if p.code == "MT201"]
    assert overrides[0] == "overrides bundled rule 'common-content-policy-rejected'"
    assert overrides[1] == f"overrides rule from {tmp_path / 'first' / 'r.yaml'}: 'common-content-policy-rejected'"
    assert kb.rules["common-content-policy-rejected"].title == "Second override"


def test_diagnose_says_when_a_bundled_rule_is_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy_rule(tmp_path / "mine", "My override")
    monkeypatch.setenv("MAILTRIAGE_RULES", str(tmp_path / "mine"))
    result = CliRunner().invoke(cli, ["diagnose", "550 5.7.1 rejected due to content restrictions"])
    assert "overrides bundled rule 'common-content-policy-rejected'" in result.stderr


def test_site_plugin_reads_mailtriage_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailtriage.resources import bundled_rules_dir
    from mailtriage.site_plugin import MailtriagePlugin

    _copy_rule(tmp_path / "mine", "My override")
    monkeypatch.setenv("MAILTRIAGE_RULES", str(tmp_path / "mine"))
    kb = MailtriagePlugin()._load(bundled_rules_dir())
    assert kb.rules["common-content-policy-rejected"].title == "My override"


@pytest.mark.parametrize("lang", ["../x", "pt-BR/../../x", "", "pt_BR"])
def test_translate_refuses_a_language_that_is_not_a_tag(lang: str) -> None:
    result = CliRunner().invoke(cli, ["rules", "translate", "common-content-policy-rejected", "--lang", lang, "--write"])
    assert result.exit_code == 2 and "not a language tag" in result.output


def test_lint_cli_reports_every_hostile_file_as_located_problems(tmp_path: Path) -> None:
    for name, (text, _code, _line) in HOSTILE.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    result = CliRunner().invoke(cli, ["lint", str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert {Path(line.split(":", 1)[0]).stem for line in lines} == set(HOSTILE)
    assert all(re.match(r"^[^:]+:\d+:\d+: MT\d{3} (error|warning): ", line) for line in lines), lines
