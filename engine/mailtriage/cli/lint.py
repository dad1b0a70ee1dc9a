"""`mailtriage lint`: check rule files and their examples."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--strict", is_flag=True, help="Fail on warnings too (missing or stale translations, rules without references...).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def lint(paths: tuple[Path, ...], strict: bool, fmt: str) -> None:
    """Check rules: YAML syntax, schema, meaning (fields, codes, regexes, references),
    translations, and every rule's own examples.

    PATHS are rule files or folders (default: the bundled rules). Rules outside the bundled
    folder are checked on top of the bundled ones, so they may refer to bundled ids.
    Every problem is printed as `file:line:col: CODE severity: message`; the exit status is 1
    if there is any error (with --strict, any warning), else 0.

    \b
    Examples:
      mailtriage lint
      mailtriage lint rules/exchange-online --strict
      mailtriage lint my-rules/ --format json
    """
    from ..lint import lint_paths
    from ..resources import bundled_rules_dir
    from .render import render_problems, to_json

    bundled = bundled_rules_dir().resolve()
    targets = list(paths) or [bundled]
    inside_bundled = all(p.resolve() == bundled or bundled in p.resolve().parents for p in targets)
    base = [] if inside_bundled else [bundled]
    report = lint_paths(targets, base=base, display_root=Path.cwd())
    if fmt == "json":
        click.echo(
            to_json(
                {
                    "rules": len(report.kb.rules),
                    "errors": len(report.errors),
                    "warnings": len(report.warnings),
                    "problems": [p.to_dict() for p in report.problems],
                }
            )
        )
    else:
        render_problems(report.problems, "text")
        summary = f"{len(report.kb.files)} files, {len(report.kb.rules)} rules: {len(report.errors)} errors, {len(report.warnings)} warnings"
        click.echo(summary, err=True)
    sys.exit(1 if report.failed(strict) else 0)
