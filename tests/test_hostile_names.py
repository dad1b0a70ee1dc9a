"""Rule file names come from pull requests: a hostile name never becomes markup on the site, and
lint refuses it (MT014)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mailtriage.cli import cli
from mailtriage.lint import lint_paths
from test_site import DATA, REPO, build, html_files, parse

HOSTILE_NAMES = [
    'x" onmouseover="alert(1)" y=".yaml',
    "a)<img src=x onerror=alert(1)>.yaml",
    "b'><script>alert(2)<\\x2fscript>.yaml",
    "c) [z](javascript:alert(3)).yaml",
]


def hostile_rules(root: Path) -> Path:
    rules = root / "rules"
    rules.mkdir(parents=True)
    text = (DATA / "lifecycle" / "new-rule.yaml").read_text(encoding="utf-8")
    for index, name in enumerate(HOSTILE_NAMES):
        (rules / name).write_text(text.replace("id: site-fixture-new", f"id: hostile-name-{index}"), encoding="utf-8")
    return rules


def test_lint_refuses_unsafe_rule_file_names(tmp_path: Path) -> None:
    rules = hostile_rules(tmp_path)
    (rules / "sub dir").mkdir()
    text = (DATA / "lifecycle" / "new-rule.yaml").read_text(encoding="utf-8")
    (rules / "sub dir" / "fine-name.pt-BR.yaml").write_text(text.replace("id: site-fixture-new", "id: in-bad-folder"), encoding="utf-8")
    (rules / "fine-name.yaml").write_text(text.replace("id: site-fixture-new", "id: fine-name"), encoding="utf-8")
    report = lint_paths([rules])
    flagged = sorted(Path(p.location.path).name for p in report.problems if p.code == "MT014")
    assert flagged == sorted([*HOSTILE_NAMES, "fine-name.pt-BR.yaml"])
    result = CliRunner().invoke(cli, ["lint", str(rules)])
    assert result.exit_code == 1
    assert result.output.count("MT014") == len(HOSTILE_NAMES) + 1


def test_bundled_rule_names_are_safe() -> None:
    assert not [p for p in lint_paths([REPO / "rules"]).problems if p.code == "MT014"]


def test_hostile_rule_file_names_never_become_markup(tmp_path: Path) -> None:
    rules = hostile_rules(tmp_path)
    config = tmp_path / "mkdocs.yml"
    # repo_root is the temporary folder, so the rules get "edit" and "translate" links.
    config.write_text(
        f"INHERIT: {REPO / 'mkdocs.yml'}\n"
        f"docs_dir: {REPO / 'site'}\n"
        # The real config's custom_dir is relative to its own folder, not to this one.
        f"theme:\n  custom_dir: {REPO / 'engine' / 'mailtriage' / 'site_assets' / 'theme'}\n"
        "plugins:\n"
        "  mailtriage:\n"
        f"    rules_dir: {rules}\n"
        f"    repo_root: {tmp_path}\n",
        encoding="utf-8",
    )
    result, _ = build(tmp_path / "public", config, offline=True)
    assert result.returncode == 0, result.stderr
    edit_links = 0
    for file in html_files(tmp_path / "public"):
        page = parse(file.read_text(encoding="utf-8"))
        for tag, attrs in page.tags:
            assert not [name for name in attrs if name.startswith("on")], (file, tag, attrs)
            assert tag not in ("img", "iframe"), (file, tag, attrs)
            assert not any("alert" in value and ("<" in value or '"' in value) for value in attrs.values()), (file, tag, attrs)
            if tag == "script":
                assert "alert" not in attrs.get("src", ""), (file, attrs)
            href = attrs.get("href", "")
            assert not href.lower().startswith("javascript:"), (file, attrs)
            if tag == "a" and "/edit/main/" in href and "alert" in href:
                edit_links += 1
                assert all(ch not in href for ch in "<>\"' ()"), href
        for script in page.scripts:
            assert "alert(" not in script, file
    # Each hostile rule page in each language has its edit link, percent-encoded.
    assert edit_links >= len(HOSTILE_NAMES) * 2
