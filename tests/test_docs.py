"""Docs that go stale fail here: every rule renders a page, every CLI command is on the CLI
reference page, and the hand-written pages exist in both languages. Fast: no site build (the
built site is checked in test_site.py)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from mailtriage.cli import COMMANDS, cli
from mailtriage.cli.reference import iter_commands, reference_markdown
from mailtriage.i18n import LANGUAGES
from mailtriage.loader import load_knowledge_base
from mailtriage.model import Status
from mailtriage.site_plugin import CLI_REFERENCE_MARKER, PASTE_FORM_MARKER
from mailtriage.site_render import INDEX_PAGES, PageLayout, RuleLinks, rule_page
from mailtriage.site_text import md_text

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "site"
RULES = load_knowledge_base([REPO / "rules"]).rules
COMMAND_PATHS = [doc.path for doc in iter_commands()]


@pytest.mark.parametrize("rule_id", sorted(RULES))
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_rule_renders_a_page(rule_id: str, lang: str) -> None:
    rule = RULES[rule_id]
    page = rule_page(rule, RULES, lang, PageLayout(), RuleLinks())
    assert f"# {md_text(rule.text('title', lang))}\n" in page
    for code in rule.codes:
        assert code in page
    for fix in rule.fixes:
        assert md_text(rule.text(f"fixes.{fix.id}.title", lang)) in page


@pytest.mark.parametrize("lang", LANGUAGES)
def test_index_pages_list_every_active_rule(lang: str) -> None:
    layout = PageLayout()
    for name, render in INDEX_PAGES.items():
        page = render(RULES, lang, layout)
        for rule in RULES.values():
            if rule.status is not Status.DEPRECATED:
                assert f"../rules/{rule.id}.md" in page, (name, rule.id)


def test_every_top_level_command_is_walked() -> None:
    assert {path.split()[1] for path in COMMAND_PATHS if " " in path} == set(COMMANDS)


@pytest.mark.parametrize("path", COMMAND_PATHS)
def test_every_command_has_help_and_is_on_the_reference_page(path: str) -> None:
    reference = reference_markdown()
    assert f"## `{path}`" in reference
    command: click.Command = cli
    context = click.Context(cli, info_name="mailtriage")
    for name in path.split()[1:]:
        assert isinstance(command, click.Group)
        found = command.get_command(context, name)
        assert found is not None
        command = found
    assert (command.help or "").strip(), f"{path} has no help text"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_cli_reference_page_is_generated_in_each_language(lang: str) -> None:
    assert CLI_REFERENCE_MARKER in _page("cli-reference", lang)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_paste_page_has_the_form_placeholder(lang: str) -> None:
    assert PASTE_FORM_MARKER in _page("paste", lang)


@pytest.mark.parametrize("name", ["index", "paste", "reading-errors", "cli", "cli-reference", "contributing", "spark"])
def test_hand_written_pages_exist_in_both_languages(name: str) -> None:
    english, portuguese = _page(name, "en"), _page(name, "pt-BR")
    assert english.startswith("# ") and portuguese.startswith("# ")
    # Same structure: a translation that drops a section is stale.
    assert len(re.findall(r"^## ", english, re.M)) == len(re.findall(r"^## ", portuguese, re.M))


def test_portuguese_contributing_page_keeps_the_translations_anchor() -> None:
    assert "{#translations}" in _page("contributing", "pt-BR")


def test_nav_names_every_hand_written_and_index_page() -> None:
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config[config.index("\nnav:"):]
    for page in sorted(p.name for p in SITE.glob("*.md") if p.name.count(".") == 1):
        assert page in nav, page
    for name in INDEX_PAGES:
        assert f"browse/{name}.md" in nav, name


def _page(name: str, lang: str) -> str:
    path = SITE / (f"{name}.md" if lang == "en" else f"{name}.{lang}.md")
    return path.read_text(encoding="utf-8")
