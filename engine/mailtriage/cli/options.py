"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

LANGUAGES = ("en", "pt-BR")


def lang_option(func: F) -> F:
    return click.option(
        "--lang", type=click.Choice(LANGUAGES), default="en", show_default=True, help="Language of the explanation."
    )(func)


def rules_option(func: F) -> F:
    return click.option(
        "--rules",
        "rule_dirs",
        multiple=True,
        type=click.Path(exists=True, file_okay=False),
        help="Extra rules folder (repeatable); its rules extend or override the bundled ones by id. "
        "MAILTRIAGE_RULES (a path list) does the same.",
    )(func)
