"""`mailtriage probe`: collect the symptoms of a destination live (DNS, TCP, SMTP, STARTTLS/TLS)
and diagnose them. Never sends a message."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from .options import lang_option, rules_option

if TYPE_CHECKING:
    from ..diagnosis import Diagnosis
    from ..probe import HostResult, ProbeResult

_EXAMPLES = """
\b
Examples:
  mailtriage probe contoso.com
  mailtriage probe --smart-host mail.contoso.com --require-tls contoso.com
  mailtriage probe mail.contoso.com:587 --rcpt postmaster@contoso.com -v
  mailtriage probe 192.0.2.10 --tls-name mail.contoso.com --ca-file private-ca.pem
  mailtriage probe contoso.com --nameserver 192.0.2.53 --format json

\b
Exit status: 0 delivery looks possible, 1 a problem was found, 2 bad usage,
130 interrupted (what was collected so far is still reported).
"""

_STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim"}


@click.command(epilog=_EXAMPLES)
@click.argument("target", required=False)
@click.option("--smart-host", metavar="HOST[:PORT]", help="Probe this host the way an Exchange Online outbound connector with a smart host does (no MX lookup); TARGET, if given, is the recipient domain.")
@click.option("--host", "as_host", is_flag=True, help="TARGET is a host name, not a domain: no MX lookup.")
@click.option("--port", type=click.IntRange(1, 65535), help="SMTP port for every host probed (default 25, or the port in TARGET).")
@click.option("--require-tls", is_flag=True, help="Behave like a connector that requires TLS: no STARTTLS is a failure.")
@click.option("--tls-name", metavar="NAME", help="Name the certificate must match (default: the host name; useful when connecting by IP).")
@click.option("--ca-file", type=click.Path(dir_okay=False), help="Extra trusted CA certificates (PEM), for a private PKI.")
@click.option("--nameserver", metavar="IP[:PORT]", help="DNS server to ask instead of the system's.")
@click.option("--timeout", type=click.FloatRange(min=0, max=3600, min_open=True), default=10.0, show_default=True, help="Seconds each network step may take.")
@click.option("--deadline", type=click.FloatRange(min=0, max=3600, min_open=True), default=30.0, show_default=True, help="Seconds the whole probe may take.")
@click.option("--rcpt", metavar="ADDRESS", help="Also test MAIL FROM:<> and RCPT TO:<ADDRESS> (then QUIT: no message is ever sent).")
@click.option("--ehlo", "ehlo_name", metavar="NAME", help="Name to give in EHLO (default: this machine's host name).")
@click.option("--public-only", is_flag=True, help="Connect only to public addresses (checked after resolution: no loopback, private, link-local, cloud-metadata or reserved address) on ports 25, 465 and 587, as a service probing for others must.")
@click.option("-v", "--verbose", is_flag=True, help="Show the SMTP transcript of every host.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@lang_option
@rules_option
def probe(
    target: str | None,
    smart_host: str | None,
    as_host: bool,
    port: int | None,
    require_tls: bool,
    tls_name: str | None,
    ca_file: str | None,
    nameserver: str | None,
    timeout: float,
    deadline: float,
    rcpt: str | None,
    ehlo_name: str | None,
    public_only: bool,
    verbose: bool,
    fmt: str,
    lang: str,
    rule_dirs: tuple[str, ...],
) -> None:
    """Probe a destination and diagnose what it does: TARGET is a domain (its MX hosts are probed
    at the same time), a host, or host:port.

    Steps: MX and A/AAAA lookups, TCP connect, banner, EHLO, STARTTLS, TLS handshake with
    certificate verification, EHLO again, optionally MAIL FROM:<> / RCPT TO, then QUIT. The probe
    never sends DATA. When several hosts are probed, the facts diagnosed are those of the first
    host (in MX preference order) that works, or of the first host if none works.
    """
    from ..errors import ProbeError
    from ..probe import ALLOW_ALL, ProbeOptions, ProbePolicy, run_probe
    from .render import to_json

    options = ProbeOptions(
        target=target,
        smart_host=smart_host,
        as_host=as_host,
        port=port,
        nameserver=nameserver,
        timeout=timeout,
        deadline=deadline,
        require_tls=require_tls,
        tls_name=tls_name,
        ca_file=ca_file,
        rcpt=rcpt,
        ehlo_name=ehlo_name,
    )
    try:
        result = run_probe(options, policy=ProbePolicy.public_only() if public_only else ALLOW_ALL)
    except ProbeError as exc:
        raise click.UsageError(str(exc)) from None
    diagnosis = _diagnose(result, rule_dirs)
    if fmt == "json":
        data = result.to_dict()
        data["diagnosis"] = diagnosis.to_dict(lang)
        click.echo(to_json(data))
    else:
        _render_text(result, diagnosis, verbose, lang)
    if result.interrupted:
        sys.exit(130)
    sys.exit(0 if result.verdict.value != "fail" else 1)


def _diagnose(result: ProbeResult, rule_dirs: tuple[str, ...]) -> Diagnosis:
    from ..engine import Engine

    return Engine.load(rule_dirs).diagnose(result.facts)


def _render_text(result: ProbeResult, diagnosis: Diagnosis, verbose: bool, lang: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from .render import render_diagnosis

    console = Console(highlight=False)
    verdict = result.verdict.value
    console.print(
        f"[bold]Probe of {escape(result.target)}[/bold] ({result.mode}): "
        f"[{_STATUS_STYLE[verdict]}]{verdict.upper()}[/] in {result.elapsed_ms / 1000:.2f} s "
        f"[dim](timeout {result.timeout:g} s per step, deadline {result.deadline:g} s)[/dim]"
    )
    if result.interrupted:
        console.print("[yellow]Interrupted: showing what was collected so far.[/yellow]")
    elif result.deadline_reached:
        console.print(f"[yellow]The overall deadline ({result.deadline:g} s) was reached before every step finished.[/yellow]")
    for note in result.notes:
        console.print(f"[yellow]Note:[/yellow] {escape(note)}")

    table = Table(show_header=True, header_style="bold", expand=False)
    for column, justify in (("Host", "left"), ("Step", "left"), ("Status", "left"), ("Time", "right"), ("Result", "left")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for step in result.domain_steps:
        table.add_row(escape(result.target), escape(step.name), _status(step.status.value), f"{step.elapsed_ms:.0f} ms", escape(step.summary))
    for host in result.hosts:
        label = _host_label(host, result.chosen_host)
        for index, step in enumerate(host.steps):
            table.add_row(label if index == 0 else "", escape(step.name), _status(step.status.value), f"{step.elapsed_ms:.0f} ms", escape(step.summary))
        table.add_section()
    console.print(table)

    if verbose:
        for host in result.hosts:
            console.print(f"\n[bold]Transcript of {escape(host.name)}[/bold]")
            if not host.transcript:
                console.print("  [dim](no SMTP dialogue)[/dim]")
            for line in host.transcript:
                console.print(f"  [dim]{line.at_ms:7.0f} ms[/dim] {escape(line.direction)} {escape(line.text)}")

    console.print("\n[bold]Observed facts[/bold]" + (f" [dim](from {escape(result.chosen_host)})[/dim]" if result.chosen_host else ""))
    evidence = {fact.field: fact.evidence for fact in result.inferred}
    for name, value in result.facts.items():
        if not name.startswith("smtp.enhanced_"):
            why = f" [dim](inferred: {escape(evidence[name])})[/dim]" if name in evidence else ""
            console.print(f"  {escape(name)} = {escape(value)}{why}")
    console.print()
    sys.stdout.flush()
    render_diagnosis(diagnosis, "text", lang)


def escape(value: object) -> str:
    """A value from the network or the command line as rich markup: control characters shown
    escaped (a banner may carry ESC sequences), markup characters literal."""
    from rich.markup import escape as markup_escape

    from ..textsafe import visible

    return markup_escape(visible(str(value)))


def _status(value: str) -> str:
    return f"[{_STATUS_STYLE[value]}]{value}[/]"


def _host_label(host: HostResult, chosen: str | None) -> str:
    parts: list[Any] = [escape(host.name)]
    if host.preference is not None:
        parts.append(f"MX {host.preference}")
    if host.address:
        parts.append(escape(f"{host.address}:{host.port}"))
    label = "\n".join(str(p) for p in parts)
    return label + ("\n[bold](diagnosed)[/bold]" if host.name == chosen else "")
