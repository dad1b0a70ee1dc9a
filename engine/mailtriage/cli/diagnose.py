"""`mailtriage diagnose`: explain an error from pasted text, a file, or explicit symptoms."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .options import lang_option, rules_option

_EXAMPLES = """
\b
Examples:
  mailtriage diagnose --smtp-reply "450 4.4.316 Connection refused" --system exchange-online
  mailtriage diagnose "550 5.4.316 Message expired, connection refused"
  mailtriage diagnose --tcp refused --direction outbound-connector --migrated-to-cloud
  mailtriage diagnose ndr.eml --format json
  tail -n 200 /var/log/mail.log | mailtriage diagnose - --input-kind log
"""


def _choices(field: str) -> click.Choice[str]:
    from ..facts import vocabulary

    spec = vocabulary()[field]
    assert spec.enum is not None
    return click.Choice([str(v) for v in spec.enum], case_sensitive=False)


# (option, fact field, help) for the symptom options with a closed vocabulary.
_ENUM_OPTIONS = (
    ("--dns", "dns.result", "DNS outcome for the destination."),
    ("--tcp", "tcp.state", "TCP connection outcome."),
    ("--tls-error", "tls.error", "Why TLS failed."),
    ("--stage", "smtp.stage", "SMTP stage at which it failed."),
    ("--system", "context.system", "The system that reported the error."),
    ("--provider", "context.remote_provider", "The provider whose server answered."),
    ("--direction", "context.direction", "Which way the message was going."),
    ("--destination", "context.destination", "Who runs the connector's destination server."),
)
# (flag name, fact field, help) for yes/no context; each gets --NAME/--no-NAME.
_BOOL_OPTIONS = (
    ("smart-host", "context.smart_host", "The connector routes to a smart host."),
    ("tls-required", "context.tls_required", "The connector requires TLS."),
    ("migrated-to-cloud", "context.migrated_to_cloud", "On-premises mail servers were retired after migrating."),
    ("recent-dns-change", "context.recent_dns_change", "The destination's DNS changed recently."),
    ("recent-network-change", "context.recent_network_change", "The destination's ISP/IPs/firewall changed recently."),
    ("starttls-offered", "smtp.starttls_offered", "The server offers STARTTLS."),
    ("closed-abruptly", "smtp.closed_abruptly", "The server dropped the connection mid-dialogue."),
)


def _symptom_options(func: Any) -> Any:
    for name, field, text in reversed(_BOOL_OPTIONS):
        func = click.option(f"--{name}/--no-{name}", field.replace(".", "__"), default=None, help=text)(func)
    for option, field, text in reversed(_ENUM_OPTIONS):
        func = click.option(option, field.replace(".", "__"), type=_choices(field), help=text)(func)
    return func


@click.command(epilog=_EXAMPLES)
@click.argument("input_text", metavar="[INPUT]", required=False)
@click.option("--smtp-reply", help='An SMTP reply line, e.g. "450 4.4.316 Connection refused".')
@click.option("--input-kind", type=click.Choice(["auto", "reply", "ndr", "log"]), default="auto", show_default=True, help="What INPUT is.")
@_symptom_options
@click.option("--hours-queued", type=click.FloatRange(min=0), help="How long the message has been queued, in hours.")
@click.option("--fact", "extra_facts", multiple=True, metavar="FIELD=VALUE", help="Any fact of the vocabulary (repeatable), e.g. --fact smtp.socket_error=10061.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
@lang_option
@rules_option
@click.option("--interactive", "-i", is_flag=True,
              help="Guided troubleshooting: ask the next checks one at a time (answer, skip, or let a probe answer), "
              "re-rank the causes after each answer, and end with the fix plan.")
@click.option("--backend", type=click.Choice(["durable", "python"]), default="durable", show_default=True, hidden=True)
def diagnose(
    input_text: str | None,
    smtp_reply: str | None,
    input_kind: str,
    hours_queued: float | None,
    extra_facts: tuple[str, ...],
    fmt: str,
    lang: str,
    rule_dirs: tuple[str, ...],
    interactive: bool,
    backend: str,
    **symptoms: Any,
) -> None:
    """Explain a mail-flow error: what it means, which causes fit, what to check next, how to fix it.

    INPUT is pasted text (an SMTP reply, an NDR excerpt, log lines), a file (.eml, mbox, log), or
    `-` for standard input; its kind is detected unless --input-kind says. Symptom options add or
    override facts. The report lists the matching rules (specific before generic) with their
    causes, likeliest first, and fixes; rules that almost matched (one fact you gave or can check,
    such as --system or --tcp, differed); and the questions whose answers would settle the rest.
    Exit status: 0 when a specific rule matched, 1 when only generic rules or none matched, 2 on
    bad input.
    """
    from ..diagnosis import Diagnosis
    from ..engine import Engine
    from ..errors import InputError
    from ..textsafe import visible
    from ..triage import diagnose_facts, diagnose_text, diagnosis_document
    from .render import render_diagnosis, to_json

    flags: dict[str, Any] = {key.replace("__", "."): value for key, value in symptoms.items() if value is not None}
    if hours_queued is not None:
        flags["context.hours_queued"] = hours_queued
    for item in extra_facts:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE", param_hint="--fact")
        flags[name.strip()] = value.strip()

    engine = Engine.load(rule_dirs, backend=backend)  # type: ignore[arg-type]
    for problem in engine.kb.warnings:
        if problem.code == "MT201":  # --rules or MAILTRIAGE_RULES replaced a rule: never silently
            click.echo(f"mailtriage: note: {problem.location.path} {problem.message}", err=True)
    results: list[tuple[str | None, Diagnosis]] = []
    sources: list[str | None] = []  # where each result was read (an mbox message, a log line)
    if smtp_reply is not None:
        # A single line of any kind `diagnose INPUT` reads: a reply, or an MTA log line.
        found = diagnose_text(smtp_reply, facts=flags, engine=engine, source="--smtp-reply")
        if not found:
            raise InputError(f"--smtp-reply: no SMTP reply code or MTA log failure found in {smtp_reply!r}")
        results.extend((r.recipient, r.diagnosis) for r in found)
        sources.extend(r.record.source for r in found)
    if input_text is not None:
        found = _diagnose_input(input_text, input_kind, flags, engine)
        results.extend((r.recipient, r.diagnosis) for r in found)
        sources.extend(r.record.source for r in found)
    if not results:
        if not flags:
            raise click.UsageError("give INPUT, --smtp-reply or at least one symptom option (see --help)")
        flags.setdefault("input.kind", "flags")
        results.append((None, diagnose_facts(flags, engine)))

    if interactive:
        from ..dialogue import Dialogue
        from .interactive import run_dialogue

        if len(results) > 1:
            raise click.UsageError("--interactive works on one error at a time; this input holds several")
        run_dialogue(Dialogue(engine, dict(results[0][1].facts), lang=lang))
        sys.exit(0)

    if fmt == "json":
        click.echo(to_json(diagnosis_document(results, lang, sources)))
    else:
        for index, (recipient, result) in enumerate(results):
            if len(results) > 1:
                click.echo(("\n" if index else "") + f"== {visible(recipient or f'record {index + 1}')} ==")
            render_diagnosis(result, fmt, lang)
    sys.exit(0 if all(d.specific for _, d in results) else 1)


MAX_RECORDS = 1000  # more failures than this in one input: `mailtriage scan` is the tool


def _diagnose_input(value: str, kind: str, flags: dict[str, Any], engine: Any) -> list[Any]:
    """INPUT is `-` (stdin), an existing file, or the text itself. Files and stdin are read the
    way `scan` reads them (every message of an mbox, logs line by line, each kind capped), and
    what was cut or could not be read is said on stderr."""
    from ..errors import InputError
    from ..intake import IntakeRecord, SkippedInput
    from ..triage import TextDiagnosis, diagnose_record, diagnose_text

    if not value.strip():
        raise InputError("INPUT is empty: give the text, a file, or - for standard input")
    items: Any = None
    source = "<argument>"
    if value == "-":
        from ..intake.paths import iter_stream_records

        source = "<stdin>"
        items = iter_stream_records(sys.stdin.buffer, source, kind)
    elif "\n" not in value and len(value) < 4096:
        path = Path(value)
        try:
            is_file, is_dir = path.is_file(), path.is_dir()
        except OSError:
            is_file = is_dir = False
        if is_dir:
            raise InputError(f"{path}: is a folder; use `mailtriage scan` for folders")
        if is_file:
            from ..intake.paths import read_file

            source = str(path)
            items = read_file(path, kind)
    if items is None:
        return diagnose_text(value, kind=kind, facts=flags, engine=engine, source=source) or _nothing(source, None)
    found: list[TextDiagnosis] = []
    notes: list[str] = []
    truncated = False
    for item in items:
        if isinstance(item, SkippedInput):
            notes.append(item.reason)
            continue
        assert isinstance(item, IntakeRecord)
        if len(found) >= MAX_RECORDS:
            click.echo(f"mailtriage: {source}: more than {MAX_RECORDS} failed recipients; only the first "
                       f"{MAX_RECORDS} are shown (use `mailtriage scan` for bulk)", err=True)
            break
        truncated = truncated or bool(item.extra.get("truncated"))
        found.append(diagnose_record(item, flags, engine))
    if truncated:
        click.echo(f"mailtriage: {source}: input cut at its size cap; what follows the cut was not read", err=True)
    if not found:
        _nothing(source, notes)
    for note in notes:
        click.echo(f"mailtriage: {source}: {note}", err=True)
    return found


def _nothing(source: str, notes: list[str] | None) -> Any:
    from ..errors import InputError

    reason = "; ".join(notes) if notes else "nothing recognisable as an SMTP reply, bounce message or MTA log line"
    raise InputError(f"{source}: {reason}")
