"""`mailtriage rules`: list and show the knowledge base, and start translations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .options import lang_option, rules_option


@click.group()
def rules() -> None:
    """Browse the knowledge base.

    \b
    Examples:
      mailtriage rules list --code 4.4.316
      mailtriage rules list --format json
      mailtriage rules show exo-connector-connection-refused --lang pt-BR
      mailtriage rules translate exo-connector-connection-refused --lang pt-BR
    """


def _engine_rules(rule_dirs: tuple[str, ...]) -> dict[str, Any]:
    from ..engine import Engine

    return Engine.load(rule_dirs, backend="python").rules


@rules.command("list")
@click.option("--kind", type=click.Choice(["specific", "generic"]), help="Only rules of this kind.")
@click.option("--family", help="Only rules of this family (dns, tcp, smtp, tls, connector...).")
@click.option("--system", help="Only rules that apply to this reporting system (e.g. exchange-online).")
@click.option("--code", help="Only rules explaining this code (e.g. 4.4.316 or 550).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@rules_option
def list_rules(kind: str | None, family: str | None, system: str | None, code: str | None, fmt: str, rule_dirs: tuple[str, ...]) -> None:
    """List rules. `--format json` prints an array of objects with id, codes, status, kind,
    family, title and languages (tags with a complete translation)."""
    from ..engine import Engine
    from ..triage import list_rules, rule_summary

    engine = Engine.load(rule_dirs, backend="python")
    selected = list_rules(engine, kind=kind, family=family, system=system, code=code)
    if fmt == "json":
        from .render import to_json

        click.echo(to_json([rule_summary(r) for r in selected]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for column in ("id", "codes", "kind", "status", "languages", "title"):
        table.add_column(column, overflow="fold")
    for r in selected:
        table.add_row(r.id, ", ".join(r.codes), r.kind.value, r.status.value, ", ".join(r.languages()), r.title)
    console = Console()
    console.print(table)
    console.print(f"{len(selected)} rules", style="dim")


@rules.command("show")
@click.argument("rule_id")
@lang_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@rules_option
def show_rule(rule_id: str, lang: str, fmt: str, rule_dirs: tuple[str, ...]) -> None:
    """Show one rule: codes, meaning, causes, fixes, examples, references."""
    known = _engine_rules(rule_dirs)
    rule = known.get(rule_id)
    if rule is None:
        import difflib

        close = difflib.get_close_matches(rule_id, list(known), n=3)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        raise click.BadParameter(f"no rule with id {rule_id!r}{hint}", param_hint="RULE_ID")
    data = rule.to_dict(lang)
    if fmt == "json":
        from .render import to_json

        click.echo(to_json(data))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    console.print(f"[bold]{escape(data['title'])}[/bold]")
    console.print(f"[dim]{data['id']} · {', '.join(data['codes'])} · {data['kind']} · {data['status']} · {', '.join(data['systems'])}[/dim]")
    if lang != "en" and not rule.is_translated(lang):
        console.print(f"[yellow]No complete {lang} translation yet; untranslated text is shown in English.[/yellow]")
    console.print(escape(data["summary"]))
    for cause in data["causes"]:
        console.print(f"\n[bold]- {escape(cause['title'])}[/bold]\n  {escape(cause['detail'])}")
    for fix in data["fixes"]:
        console.print(f"\n[bold]{escape(fix['title'])}[/bold]")
        for number, step in enumerate(fix["steps"], start=1):
            console.print(f"  {number}. {escape(step)}")
    for ref in data["references"]:
        console.print(f"\n[dim]{escape(ref['title'])}: {ref['url']}[/dim]")
    console.print(f"\n[dim]{data['source_path']}[/dim]")


@rules.command("translate")
@click.argument("rule_id")
@click.option("--lang", default="pt-BR", show_default=True, help="Target language tag.")
@click.option("--write", is_flag=True, help="Write the file beside the rule instead of printing it.")
@rules_option
def translate_rule(rule_id: str, lang: str, write: bool, rule_dirs: tuple[str, ...]) -> None:
    """Print (or --write) the translation file of a rule: current texts are kept, missing keys
    get `TODO: <English>`, stale ones keep their old text and hash so the linter still flags them."""
    import yaml

    from ..i18n import translation_stub

    rule = _engine_rules(rule_dirs).get(rule_id)
    if rule is None:
        raise click.BadParameter(f"no rule with id {rule_id!r}", param_hint="RULE_ID")
    existing = rule.translations.get(lang)
    current = {k: {"text": t, "source": s} for k, (t, s) in existing.strings.items()} if existing else None
    stub = translation_stub(rule.raw, lang, current)
    text = "# yaml-language-server: $schema=../schema/translation.schema.json\n" + yaml.safe_dump(
        stub, allow_unicode=True, sort_keys=False, width=100
    )
    if not write:
        sys.stdout.write(text)
        return
    source = Path(rule.source_file)
    target = source.with_name(f"{source.stem}.{lang}.yaml")
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}", err=True)
