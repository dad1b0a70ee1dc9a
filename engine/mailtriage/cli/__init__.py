"""Command-line entry point. Each command lives in its own module and is imported only when run,
so `mailtriage --help` and a cached `diagnose` start fast."""

from __future__ import annotations

import importlib
import sys

import click

# name -> "module:attribute" (relative to this package); loaded on first use.
COMMANDS: dict[str, str] = {
    "diagnose": ".diagnose:diagnose",
    "lint": ".lint:lint",
    "probe": ".probe:probe",
    "report": ".report:report",
    "rules": ".rules:rules",
    "scan": ".scan:scan",
    "serve": ".serve:serve",
    "watch": ".watch:watch",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name, __name__)
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mailtriage")
def cli() -> None:
    """Explain mail-flow failures: what an SMTP error, NDR or log line means, which causes fit,
    what to check next and how to fix it.

    \b
    Examples:
      mailtriage diagnose --smtp-reply "450 4.4.316 Connection refused" --system exchange-online
      mailtriage diagnose --tcp refused --direction outbound-connector --lang pt-BR
      mailtriage rules list
      mailtriage lint rules/

    Exit status: 0 success (diagnose: a specific rule matched), 1 findings (lint errors,
    diagnose: only generic rules or none matched), 2 bad input or usage, 3 internal error (a
    bug: please report it; MAILTRIAGE_DEBUG=1 shows the traceback).
    """


def main() -> None:
    """Console-script entry point: known errors become one line on stderr and exit status 2."""
    from ..errors import MailtriageError

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        import io

        from ..textsafe import visible

        # Messages quote what the user gave: shown with control characters escaped.
        shown = io.StringIO()
        exc.show(file=shown)
        click.echo(visible(shown.getvalue(), keep_lines=True), err=True, nl=False)
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except MailtriageError as exc:
        from ..textsafe import visible

        click.echo(f"mailtriage: error: {visible(str(exc))}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except RecursionError:
        # Input nested beyond what a parser copes with, and no parser caught it: still no traceback.
        click.echo("mailtriage: error: input nested too deeply to read", err=True)
        sys.exit(2)
    except Exception as exc:  # a bug, not the user's fault: one line, a distinct status
        import os

        if os.environ.get("MAILTRIAGE_DEBUG"):
            raise
        click.echo(f"mailtriage: internal error: {type(exc).__name__}: {exc} (please report it; "
                   "MAILTRIAGE_DEBUG=1 shows the traceback)", err=True)
        sys.exit(3)
