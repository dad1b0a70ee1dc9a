"""`mailtriage watch`: follow logs and drop folders, alert on incidents with the diagnosis and fix."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click

from .options import lang_option, rules_option


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--state", "state_file", default="mailtriage-watch.sqlite", show_default=True, type=click.Path(dir_okay=False),
              help="SQLite file keeping read positions and incident states across restarts.")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL", help="POST each alert as JSON to this URL (repeatable).")
@click.option("--exec", "commands", multiple=True, metavar="COMMAND",
              help="Run this command (no shell) with each alert's JSON on standard input (repeatable).")
@click.option("--no-stdout", is_flag=True, help="Do not print alerts as JSON Lines on standard output.")
@click.option("--threshold", type=click.IntRange(1, 10_000_000), default=50, show_default=True,
              help="Alert once more when an incident reaches this many failures.")
@click.option("--quiet", "quiet_seconds", type=click.FloatRange(1, 7 * 86400), default=900, show_default=True,
              help="An incident ends after this many seconds without a new failure.")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=0.5, show_default=True, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Poll once and exit (for cron, or to catch up).")
@lang_option
@rules_option
def watch(paths: tuple[str, ...], state_file: str, webhooks: tuple[str, ...], commands: tuple[str, ...], no_stdout: bool,
          threshold: int, quiet_seconds: float, interval: float, once: bool, lang: str, rule_dirs: tuple[str, ...]) -> None:
    """Follow growing MTA logs (rotation handled) and folders where traces or NDRs land, and alert
    when an incident (one destination failing with one diagnosis) starts, reaches --threshold
    failures, or ends after --quiet seconds without a failure. Each alert carries the diagnosis
    and its first fix. One alert per incident and state change; positions and states are kept in
    --state, so a restart never alerts twice.

    \b
    Examples:
      mailtriage watch /var/log/mail.log
      mailtriage watch /var/log/mail.log --webhook https://hooks.example/alerts --threshold 20
      mailtriage watch /srv/traces/ --exec "logger -t mailtriage" --quiet 1800
      mailtriage watch /var/log/mail.log --once --state /var/lib/mailtriage/watch.sqlite

    Alerts (JSON Lines on stdout unless --no-stdout): event (started, grew, ended), at, and the
    incident as `mailtriage report --format json` gives it. Exit status: 0 on Ctrl-C or SIGTERM
    (or after --once), 2 on bad usage.
    """
    from ..engine import Engine
    from ..incidents.watch import Watcher, command_sink, stdout_sink, webhook_sink

    def warn(message: str) -> None:
        from ..textsafe import visible

        click.echo(f"mailtriage watch: {visible(message)}", err=True)

    sinks = [] if no_stdout else [stdout_sink()]
    sinks += [webhook_sink(url, on_error=warn) for url in webhooks]
    sinks += [command_sink(command, on_error=warn) for command in commands]
    engine = Engine.load(rule_dirs)
    watcher = Watcher(list(paths), engine, state_file, sinks, threshold=threshold, quiet_seconds=quiet_seconds, lang=lang)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        if once:
            watcher.poll()
        else:
            watcher.run(interval, stop=lambda: stopping)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.close()
    sys.exit(0)
