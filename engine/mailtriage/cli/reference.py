"""The command-line reference, generated from the click commands themselves so it cannot go stale.

Walks the `mailtriage` group (lazy commands included) and every subgroup, and renders each
command's `--help` exactly as the terminal shows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import click

HELP_WIDTH = 100


@dataclass(frozen=True)
class CommandDoc:
    """One command: its full invocation (`mailtriage rules list`) and its `--help` text."""

    path: str
    help_text: str
    is_group: bool

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.path.lower()).strip("-")


def iter_commands(root: click.Command | None = None, name: str = "mailtriage") -> Iterator[CommandDoc]:
    """Every visible command, depth first, the group itself first."""
    if root is None:
        from . import cli

        root = cli
    # The group's own settings (e.g. `-h` as a help option) apply, as when it runs from a shell.
    settings = {"terminal_width": HELP_WIDTH, "max_content_width": HELP_WIDTH, **root.context_settings}
    context = click.Context(root, info_name=name, **settings)
    yield from _walk(root, context, name)


def _walk(command: click.Command, context: click.Context, path: str) -> Iterator[CommandDoc]:
    is_group = isinstance(command, click.Group)
    yield CommandDoc(path, wrap_long_lines(command.get_help(context).rstrip(), HELP_WIDTH) + "\n", is_group)
    if not isinstance(command, click.Group):
        return
    for sub_name in command.list_commands(context):
        sub = command.get_command(context, sub_name)
        if sub is None or sub.hidden:
            continue
        sub_context = click.Context(sub, info_name=sub_name, parent=context, **sub.context_settings)
        yield from _walk(sub, sub_context, f"{path} {sub_name}")


def wrap_long_lines(text: str, width: int) -> str:
    """Click never wraps an option's first column: a `[a|b|c...]` choice list made lines of 210
    characters, which a phone (and the site's code blocks) scroll sideways. Break such lines after
    a `|` or a space, continuing under the list's opening bracket (or the line's indent)."""
    out: list[str] = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        indent = len(line) - len(line.lstrip())
        bracket = line.find("[", indent)
        hang = " " * (bracket + 1 if 0 <= bracket < width // 2 else indent + 4)
        rest = line
        while len(rest) > width:
            cut = max(rest.rfind("|", 0, width), rest.rfind(" ", len(hang) + 1, width))
            if cut <= len(hang):
                break
            keep = cut + 1 if rest[cut] == "|" else cut
            out.append(rest[:keep].rstrip())
            rest = hang + rest[keep:].lstrip()
        out.append(rest)
    return "\n".join(out)


def reference_markdown(heading_level: int = 2) -> str:
    """Markdown: one heading and one verbatim help block per command."""
    hashes = "#" * heading_level
    parts = []
    for doc in iter_commands():
        fence = "`" * max(3, _longest_backticks(doc.help_text) + 1)
        parts.append(f"{hashes} `{doc.path}` {{#{doc.anchor}}}\n\n{fence}text\n{doc.help_text}{fence}\n")
    return "\n".join(parts)


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
