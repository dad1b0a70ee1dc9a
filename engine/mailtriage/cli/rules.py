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
      mailtriage rules coverage bounces/
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
    from rich.markup import escape
    from rich.table import Table

    from ..textsafe import visible

    table = Table(show_lines=False, header_style="bold")
    for column in ("id", "codes", "kind", "status", "languages", "title"):
        table.add_column(column, overflow="fold")
    for r in selected:
        cells = (r.id, ", ".join(r.codes), r.kind.value, r.status.value, ", ".join(r.languages()), r.title)
        table.add_row(*(escape(visible(cell)) for cell in cells))
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

    from ..textsafe import visible_tree

    # Rules from --rules folders are anyone's text: no raw control character reaches the terminal.
    data = visible_tree(data)
    console = Console(highlight=False)
    console.print(f"[bold]{escape(data['title'])}[/bold]")
    console.print(f"[dim]{escape(' · '.join([data['id'], ', '.join(data['codes']), data['kind'], data['status'], ', '.join(data['systems'])]))}[/dim]")
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
        console.print(f"\n[dim]{escape(ref['title'])}: {escape(ref['url'])}[/dim]")
    console.print(f"\n[dim]{escape(data['source_path'])}[/dim]")


def _language_tag(value: str) -> str:
    """A tag such as pt-BR: it becomes part of a file name, so nothing else (no `../x`)."""
    import re

    if not re.fullmatch(r"[a-z]{2}(?:-[A-Z]{2})?", value):
        raise click.BadParameter(f"{value!r} is not a language tag such as pt-BR", param_hint="--lang")
    return value


@rules.command("translate")
@click.argument("rule_id")
@click.option("--lang", default="pt-BR", show_default=True, callback=lambda _c, _p, v: _language_tag(v),
              help="Target language tag (ll or ll-CC, such as pt-BR).")
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


@rules.command("coverage")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--top", type=click.IntRange(min=0), default=30, show_default=True,
              help="Groups to list in text output (0: all). JSON always lists all.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@rules_option
def coverage_command(paths: tuple[str, ...], top: int, fmt: str, rule_dirs: tuple[str, ...]) -> None:
    """What the rules do not explain yet in some messages or logs: inputs that gave no record,
    records no rule matched and records only a generic rule explained, grouped by their text with
    addresses, hosts, IPs and numbers replaced by placeholders, biggest group first.

    \b
    Examples:
      mailtriage rules coverage bounces/
      mailtriage rules coverage /var/log/mail.log --format json

    Exit status: 0 when every input gave a record with a specific rule, 1 otherwise.
    """
    from ..coverage import coverage
    from ..engine import Engine

    report = coverage(paths, Engine.load(rule_dirs or None))
    if fmt == "json":
        from .render import to_json

        click.echo(to_json(report.to_dict()))
    else:
        from rich.console import Console
        from rich.markup import escape

        console = Console(highlight=False)
        console.print(
            f"{report.records} records: {report.specific} specific ({100 * report.specific_rate:.1f}%), "
            f"{report.generic} generic only, {report.no_rule} no rule; {report.no_record} inputs with no record"
        )
        shown = report.groups if top == 0 else report.groups[:top]
        for group in shown:
            console.print(f"[bold]{group.count:>5}[/bold]  {group.outcome.value:<9}  {escape(group.text)}")
            answered = ", ".join(f"{rule} ({n})" for rule, n in group.rules.items())
            if answered:
                console.print(f"{'':>18}[dim]answered by: {escape(answered)}[/dim]")
            console.print(f"{'':>18}[dim]e.g. {escape(', '.join(group.examples))}[/dim]")
        if len(shown) < len(report.groups):
            console.print(f"{len(report.groups) - len(shown)} more groups (--top 0 lists all)", style="dim")
    sys.exit(0 if report.complete else 1)
