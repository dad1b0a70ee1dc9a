"""`mailtriage report`: group failures in traces, NDRs and MTA logs into incidents."""

from __future__ import annotations

import sys

import click

from .options import lang_option, rules_option


def _parse_now(value: str | None) -> object:
    if value is None:
        return None
    from ..incidents.group import parse_iso

    when = parse_iso(value)
    if when is None:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2024-05-01T12:00:00Z", param_hint="--now")
    return when


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json", "html"]), default="text", show_default=True,
              help="text: a table; markdown; json (for scripts); html: one self-contained page with a timeline per incident.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write the report to this file.")
@click.option("--now", "now_text", metavar="TIME",
              help="Judge 'still retrying' against this UTC time (default: the latest event in the inputs).")
@lang_option
@rules_option
def report(paths: tuple[str, ...], fmt: str, output: str | None, now_text: str | None, lang: str,
           rule_dirs: tuple[str, ...]) -> None:
    """Group the failures in PATHS (Exchange Online message traces, NDRs, MTA logs) into incidents:
    one destination (connector, server or domain) failing with one diagnosis, with first and last
    seen, messages and recipients affected, whether they are still retrying or have expired
    (Microsoft 365 and most MTAs give up after 24 hours), the diagnosis and its first fix.

    \b
    Examples:
      mailtriage report MessageTraceDetail.csv
      mailtriage report trace.json /var/log/mail.log bounces/ --format html -o incidents.html
      mailtriage report exports/ --format json | jq '.incidents[] | select(.state == "retrying")'

    Traces: Get-MessageTraceV2 / Get-MessageTraceDetailV2 output saved with Export-Csv or
    ConvertTo-Json, the admin centre's message trace downloads (UTF-16 included), and Microsoft
    Graph exchangeMessageTrace / exchangeMessageTraceDetail JSON. Summary rows carry no reply:
    export the detail rows for a diagnosis.

    Exit status: 0 no incident, 1 incidents found, 2 no input could be read.
    """
    from ..engine import Engine
    from ..incidents import build_report
    from ..incidents.render import to_html, to_markdown
    from ..textsafe import visible
    from .render import to_json

    now = _parse_now(now_text)
    engine = Engine.load(rule_dirs)
    result = build_report(paths, engine, now=now, lang=lang)  # type: ignore[arg-type]
    if fmt == "json":
        text = to_json(result.to_dict())
    elif fmt == "markdown":
        text = visible(to_markdown(result, lang), keep_lines=True)
    elif fmt == "html":
        text = to_html(result, lang)
    else:
        text = ""
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text if fmt != "text" else to_markdown(result, lang))
    elif fmt == "text":
        _print_table(result, lang)
    else:
        click.echo(text, nl=not text.endswith("\n"))
    if not result.records and result.skipped and all("no such file" in reason for reason in result.skipped):
        sys.exit(2)
    sys.exit(1 if result.incidents else 0)


def _print_table(result: object, lang: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..incidents.group import Report
    from ..incidents.render import labels
    from ..textsafe import visible_tree

    assert isinstance(result, Report)
    # Destinations, replies and reasons come from the inputs: control characters shown escaped.
    data = visible_tree(result.to_dict())
    t = labels(lang)
    console = Console()
    console.print(f"[bold]{t['title']}[/] - {t['as_of']} {escape(data['as_of'] or '-')}: "
                  f"{data['records']} {t['records']}, {len(data['incidents'])} {t['incidents']}")
    if not data["incidents"]:
        console.print(t["none"])
    else:
        table = Table(show_lines=True)
        for column in ("destination", "diagnosis", "state", "first", "last", "messages", "fix"):
            table.add_column(t[column], no_wrap=column in ("first", "last", "state"))
        for item in data["incidents"]:
            approx = "~" if item["messages_approximate"] else ""
            table.add_row(
                escape(item["destination"]), escape(item["title"] + (f" ({item['rule']})" if item["rule"] else "")),
                t[item["state"]], item["first_seen"] or "-", item["last_seen"] or "-",
                f"{approx}{item['messages']}", escape(item["first_fix"] or "-"),
            )
        console.print(table)
    if data["counts_approximate"]:
        console.print(t["approx"].format(n=1024))
    for reason, count in data["skipped"].items():
        console.print(f"{t['skipped']}: {count} x {escape(reason)}")
