"""Rendering of diagnoses and lint reports: rich text for people, JSON and Markdown for tools."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from ..diagnosis import Diagnosis
from ..errors import Problem, Severity
from ..textsafe import json_text, visible, visible_tree

LABELS = {
    "en": {
        "facts": "Facts used",
        "inferred": "Inferred",
        "from": "from",
        "no_match": "No rule matched these facts.",
        "generic_only": "Only generic explanations matched: the code's registry meaning is shown.",
        "why": "Why",
        "causes": "Likely causes",
        "fixes": "How to fix",
        "next": "What to check next",
        "how": "How",
        "also": "Also matched",
        "near": "Almost matched",
        "likely": "likely",
        "possible": "possible",
        "unlikely": "unlikely",
        "refs": "References",
        "failed": "failed on",
        "because": "because",
        "contains": "contains",
    },
    "pt-BR": {
        "facts": "Fatos usados",
        "inferred": "Inferido",
        "from": "de",
        "no_match": "Nenhuma regra corresponde a estes fatos.",
        "generic_only": "Só explicações genéricas corresponderam: é mostrado o significado do código no registro.",
        "why": "Por quê",
        "causes": "Causas prováveis",
        "fixes": "Como corrigir",
        "next": "O que verificar a seguir",
        "how": "Como",
        "also": "Também corresponderam",
        "near": "Quase corresponderam",
        "likely": "provável",
        "possible": "possível",
        "unlikely": "improvável",
        "refs": "Referências",
        "failed": "falhou em",
        "because": "porque",
        "contains": "contém",
    },
}


def safe_text(text: str) -> str:
    """Text for a terminal: control characters (ESC sequences included) shown escaped, never sent.
    The one helper is `textsafe.visible`; this name stays for the callers that import it."""
    return visible(text, keep_lines=True)


# A test quoted in a "why" line is cut here: some rule patterns run to hundreds of characters,
# and the JSON output keeps every test whole.
MAX_TEST_SHOWN = 100


def _double_quoted(text: str) -> str:
    return f'"{text}"'


def markdown_code(text: str) -> str:
    """`text` as a Markdown code span: words from a message never become links, HTML or emphasis."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if fence != "`" or text.startswith(" ") or text.endswith(" ") else f"`{text}`"


def why_line(reasons: list[dict[str, Any]], lang: str, quote: Callable[[str], str] = _double_quoted) -> str:
    """The reasons a rule matched, for people: a text test shows the words it matched
    (`smtp.text contains "User unknown"`), not its whole pattern; repeats are said once. `quote`
    marks the quoted words (Markdown reports pass `markdown_code`)."""
    contains = labels(lang)["contains"]
    shown: list[tuple[str, str | None, str]] = []  # (field, quoted words or None, phrase)
    for reason in reasons:
        name, excerpt = reason["field"], reason.get("excerpt")
        if excerpt:
            # Two branches of one rule often match overlapping words of the same text: quote the
            # longer once, where the first of them stood.
            if any(field == name and quoted and excerpt in quoted for field, quoted, _ in shown):
                continue
            phrase = f"{name} {contains} {quote(excerpt)}"
            inside = [i for i, (field, quoted, _) in enumerate(shown) if field == name and quoted and quoted in excerpt]
            if inside:
                shown[inside[0]] = (name, excerpt, phrase)
                shown = [entry for i, entry in enumerate(shown) if i not in inside[1:]]
                continue
        else:
            condition = reason["condition"]
            phrase = condition if len(condition) <= MAX_TEST_SHOWN else condition[: MAX_TEST_SHOWN - 2] + "…/"
        if all(phrase != seen for _, _, seen in shown):
            shown.append((name, excerpt, phrase))
    return "; ".join(phrase for _, _, phrase in shown)


def labels(lang: str) -> dict[str, str]:
    return LABELS.get(lang, LABELS["en"])


def to_json(data: Any) -> str:
    return json_text(data)


def terminal_dict(diagnosis: Diagnosis, lang: str) -> dict[str, Any]:
    """The diagnosis as a dict whose strings are safe to print (control characters escaped)."""
    data: dict[str, Any] = visible_tree(diagnosis.to_dict(lang))
    return data


def diagnosis_markdown(diagnosis: Diagnosis, lang: str) -> str:
    data = terminal_dict(diagnosis, lang)
    text = labels(lang)
    lines: list[str] = [f"{text['inferred']}: {line}  " for line in inferred_lines(diagnosis, lang)]
    if lines:
        lines.append("")
    if not data["matches"]:
        lines.append(text["no_match"])
    for position, match in enumerate(data["matches"][:3]):
        level = "#" if position == 0 else "##"
        lines.append(f"{level} {match['title']}")
        lines.append("")
        lines.append(f"`{match['rule']}` · {', '.join(match['codes'])} · {match['kind']}")
        lines.append("")
        lines.append(match["summary"])
        lines.append("")
        if match["why"]:
            lines.append(f"**{text['why']}:** " + why_line(match["why"], lang, markdown_code))
            lines.append("")
        if match["causes"]:
            lines.append(f"### {text['causes']}")
            lines.extend(f"- **{text[c['likelihood']]}**: {c['title']}" for c in match["causes"])
            lines.append("")
        if match["fixes"]:
            lines.append(f"### {text['fixes']}")
            for fix in match["fixes"]:
                lines.append(f"**{fix['title']}**")
                lines.append("")
                lines.extend(f"{n}. {step}" for n, step in enumerate(fix["steps"], start=1))
                lines.append("")
                for command in fix.get("commands") or []:
                    lines.append(f"    {command['run']}")
                if fix.get("commands"):
                    lines.append("")
    if data["next_checks"]:
        lines.append(f"## {text['next']}")
        lines.extend(f"- {c['question']} {text['how']}: {c['how']}" for c in data["next_checks"])
    return "\n".join(lines).rstrip() + "\n"


def inferred_lines(diagnosis: Diagnosis, lang: str) -> list[str]:
    """One line per context fact inferred from the input: `context.system=postfix (from log tag postfix/smtp)`."""
    from ..intake.context import describe

    return [describe(fact, labels(lang)["from"], lang) for fact in diagnosis.inferred]


def render_diagnosis(diagnosis: Diagnosis, fmt: str = "text", lang: str = "en", file: Any = None) -> None:
    """Print a diagnosis as `text` (rich), `json` or `markdown`."""
    out = file or sys.stdout
    if fmt == "json":
        out.write(to_json(diagnosis.to_dict(lang)) + "\n")
        return
    if fmt == "markdown":
        out.write(diagnosis_markdown(diagnosis, lang))
        return
    _render_rich(diagnosis, lang, out)


def _render_rich(diagnosis: Diagnosis, lang: str, out: Any) -> None:
    from rich.console import Console, Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.text import Text

    console = Console(file=out, highlight=False, soft_wrap=False)
    data = terminal_dict(diagnosis, lang)
    text = labels(lang)
    facts = ", ".join(f"{k}={v}" for k, v in data["facts"].items() if not k.startswith("smtp.enhanced_"))
    console.print(f"[dim]{text['facts']}: {escape(facts) or '-'}[/dim]")
    for line in inferred_lines(diagnosis, lang):
        console.print(f"[dim]{text['inferred']}: {escape(line)}[/dim]")
    if not data["matches"]:
        console.print(f"[yellow]{text['no_match']}[/yellow]")
    elif not data["specific"]:
        console.print(f"[yellow]{text['generic_only']}[/yellow]")
    style = {"likely": "bold green", "possible": "yellow", "unlikely": "dim"}
    for position, match in enumerate(data["matches"][:2] if data["specific"] else data["matches"][:3]):
        body: list[Any] = [Text(match["summary"]), Text("")]
        if match["why"]:
            body.append(Text.from_markup(f"[bold]{text['why']}:[/bold] " + escape(why_line(match["why"], lang))))
        if match["causes"]:
            body.append(Text.from_markup(f"\n[bold]{text['causes']}[/bold]"))
            for cause in match["causes"]:
                tag = text[cause["likelihood"]]
                body.append(Text.from_markup(f"  [{style[cause['likelihood']]}]{tag:>10}[/] {escape(cause['title'])}"))
        if match["fixes"]:
            body.append(Text.from_markup(f"\n[bold]{text['fixes']}[/bold]"))
            for fix in match["fixes"]:
                body.append(Text.from_markup(f"  [bold]{escape(fix['title'])}[/bold]"))
                for number, step in enumerate(fix["steps"], start=1):
                    body.append(Text(f"    {number}. {step}"))
                for command in fix.get("commands") or []:
                    body.append(Text(f"       {command['run']}", style="green"))
        if match["references"] and position == 0:
            body.append(Text.from_markup(f"\n[bold]{text['refs']}[/bold]"))
            for ref in match["references"]:
                body.append(Text(f"  {ref['title']}: {ref['url']}"))
        title = f"[bold]{escape(match['title'])}[/bold]  [dim]{escape(match['rule'])} · {escape(', '.join(match['codes']))}[/dim]"
        console.print(Panel(Group(*body), title=title, title_align="left", border_style="cyan" if position == 0 else "dim"))
    others = data["matches"][2:] if data["specific"] else data["matches"][3:]
    if others:
        console.print(f"[bold]{text['also']}:[/bold] " + escape(", ".join(f"{m['rule']} ({m['kind']})" for m in others)))
    if data["near_misses"]:
        console.print(f"[bold]{text['near']}:[/bold]")
        for near in data["near_misses"]:
            console.print(f"  {escape(near['rule'])}: {text['failed']} {escape(near['failed']['condition'])}")
    if data["next_checks"]:
        console.print(f"\n[bold]{text['next']}[/bold]")
        for number, check in enumerate(data["next_checks"], start=1):
            console.print(f"  {number}. {escape(check['question'])}")
            console.print(f"     [dim]{text['how']}: {escape(check['how'])}[/dim]")


def render_problems(problems: list[Problem], fmt: str, out: Any = None) -> None:
    out = out or sys.stdout
    if fmt == "json":
        out.write(to_json([p.to_dict() for p in problems]) + "\n")
        return
    for problem in problems:
        tag = "error" if problem.severity is Severity.ERROR else "warning"
        out.write(visible(f"{problem.location}: {problem.code} {tag}: {problem.message}") + "\n")
