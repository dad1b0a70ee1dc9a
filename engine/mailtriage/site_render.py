"""The Markdown of the generated site pages: one page per rule and the index pages.

Pure functions of the rules and a language; the MkDocs plugin decides where the pages go. Every
rule string passes through `site_text.md_text` (never raw), links are relative `.md` paths that
MkDocs resolves and checks, and external links are only the rule's validated http(s) references.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .i18n import SOURCE_LANGUAGE
from .lint import example_facts
from .model import All, AnyOf, Audience, Command, Condition, Example, Kind, Leaf, Not, Rule, Status
from .site_text import (
    SUBJECTS,
    escape_literal,
    family_name,
    html_attribute,
    md_code,
    md_text,
    plain_title,
    safe_url,
    system_name,
    ui,
)

_ENHANCED_IN_CODE = re.compile(r"([245X])\.([0-9x]{1,3})(?:\.([0-9x]{1,3}))?")


@dataclass(frozen=True)
class PageLayout:
    """Where generated pages live (source paths relative to the docs folder)."""

    rules_prefix: str = "rules"
    browse_prefix: str = "browse"
    reading_page: str = "reading-errors.md"
    translation_guide: str = "contributing.md#translations"

    def rule(self, rule_id: str) -> str:
        return f"{self.rules_prefix}/{rule_id}.md"

    def index(self, name: str) -> str:
        return f"{self.browse_prefix}/{name}.md"

    @property
    def index_names(self) -> tuple[str, ...]:
        return ("by-code", "by-family", "by-system", "codes")


@dataclass(frozen=True)
class RuleLinks:
    """External links of one rule page, computed by the plugin from the repository settings."""

    edit_url: str | None = None  # the rule's YAML file (or its translation) in the repository
    translation_path: str | None = None  # shown in the "not yet translated" note
    translation_url: str | None = None


def link(source: str, target: str) -> str:
    """Relative link from page `source` to page `target` (both docs-relative paths)."""
    path, _, anchor = target.partition("#")
    relative = posixpath.relpath(path, posixpath.dirname(source) or ".")
    return f"{relative}#{anchor}" if anchor else relative


def front_matter(title: str) -> str:
    # JSON strings are valid YAML scalars; the title is plain text already.
    return f"---\ntitle: {json.dumps(plain_title(title), ensure_ascii=False)}\n---\n\n"


# ---------------------------------------------------------------------------------------------
# Rule pages


def rule_page(rule: Rule, rules: dict[str, Rule], lang: str, layout: PageLayout, links: RuleLinks) -> str:
    """The Markdown of one rule's page in `lang`."""
    here = layout.rule(rule.id)
    title = rule.text("title", lang)
    out: list[str] = [front_matter(title), f"# {md_text(title)}\n"]
    # Notes first (a reader must see them before the text they qualify), then the summary as the
    # page's lead, then the facts table. Search shows the start of a page's first section as its
    # snippet: the notes and the facts table are left out of the index, so that is the summary
    # (codes are searchable through the index's own `codes` field, see site_search).
    if rule.status is Status.DEPRECATED and rule.replaced_by and rule.replaced_by in rules:
        replacement = rules[rule.replaced_by]
        body = ui(lang, "deprecated.body", title=md_text(replacement.text("title", lang)), url=link(here, layout.rule(replacement.id)))
        out.append(_admonition("warning", ui(lang, "deprecated.title"), body))
    if lang != SOURCE_LANGUAGE and not rule.is_translated(lang):
        missing, stale = rule.translation_state(lang)
        path = md_code(links.translation_path) if links.translation_path else md_code(f"{rule.id}.{lang}.yaml")
        if links.translation_url:
            # Percent-encoded by the plugin: no `)`, `<` or quote of a file name is left to end the link.
            path = f"[{path}]({links.translation_url})"
        body = ui(
            lang,
            "untranslated.body",
            count=len(missing) + len(stale),
            total=len(rule.english_strings()),
            guide=link(here, layout.translation_guide),
            path=path,
        )
        out.append(_admonition("info", ui(lang, "untranslated.title"), body, css="mt-untranslated"))
    out.append(f'<p class="mt-lead">{md_text(rule.text("summary", lang))}</p>\n')
    out.append(_facts_table(rule, lang))
    out.append(_causes(rule, lang))
    out.append(_fixes(rule, lang))
    out.append(_confirm(rule, lang, layout))
    out.append(_examples(rule, lang))
    if rule.references:
        out.append(f"## {ui(lang, 'references')}\n")
        for reference in rule.references:
            url = safe_url(reference.url)
            # The loader's schema already demands http(s); this guards against any other path in.
            out.append(f"- [{md_text(reference.title)}]({url})" if url else f"- {md_text(reference.title)}")
        out.append("")
    see_also = [rules[target] for target in rule.see_also if target in rules]
    if see_also:
        out.append(f"## {ui(lang, 'see_also')}\n")
        out.extend(f"- [{md_text(other.text('title', lang))}]({link(here, layout.rule(other.id))})" for other in see_also)
        out.append("")
    if links.edit_url:
        out.append(f'<p class="mt-edit"><a href="{html_attribute(links.edit_url)}">{escape_literal(ui(lang, "edit"))}</a></p>\n')
    return "\n".join(out)


def _facts_table(rule: Rule, lang: str) -> str:
    kind = ui(lang, f"kind.{rule.kind.value}")
    if rule.kind is Kind.GENERIC and rule.generic_level is not None:
        kind = f"{kind} ({ui(lang, f'level.{rule.generic_level.value}')})"
    systems = ", ".join(escape_literal(system_name(s, lang)) for s in rule.systems)
    rows = [
        (ui(lang, "codes"), " ".join(md_code(code) for code in rule.codes) or "—"),
        (ui(lang, "reported_by"), systems),
        (ui(lang, "family"), escape_literal(family_name(rule.family, lang))),
        (ui(lang, "kind"), escape_literal(kind)),
        (ui(lang, "status"), escape_literal(ui(lang, f"status.{rule.status.value}"))),
    ]
    lines = ['<div class="mt-facts" data-search-exclude markdown>', "", "| | |", "|---|---|"]
    lines.extend(f"| {escape_literal(label)} | {value} |" for label, value in rows)
    lines.extend(["", "</div>", ""])
    return "\n".join(lines)


def _admonition(kind: str, title: str, body: str, css: str = "") -> str:
    """An admonition as Material renders `!!!`, kept out of the search index (a note about the
    page is not what a search result should show)."""
    classes = f"admonition {kind} {css}".strip()
    return f'<div class="{classes}" data-search-exclude markdown>\n<p class="admonition-title">{escape_literal(title)}</p>\n\n{body}\n\n</div>\n'


def _causes(rule: Rule, lang: str) -> str:
    out = [f"## {ui(lang, 'causes')}\n"]
    if not rule.causes:
        out.append(ui(lang, "cause.none") + "\n")
    for cause in rule.causes:
        line = f"- **{md_text(rule.text(f'causes.{cause.id}.title', lang))}**"
        if cause.detail:
            line += f"<br>\n  {md_text(rule.text(f'causes.{cause.id}.detail', lang))}"
        out.append(line)
    out.append("")
    return "\n".join(out)


def _fixes(rule: Rule, lang: str) -> str:
    out = [f"## {ui(lang, 'fixes')}\n"]
    if not rule.fixes:
        out.append(ui(lang, "fix.none") + "\n")
    out.append(_audience_split(rule, lang))
    cause_titles = {c.id: rule.text(f"causes.{c.id}.title", lang) for c in rule.causes}
    for number, fix in enumerate(rule.fixes, start=1):
        # An explicit id: the split above links here, whatever the (translated) title's slug.
        out.append(f"### {number}. {md_text(rule.text(f'fixes.{fix.id}.title', lang))} {{#fix-{fix.id}}}\n")
        out.extend(f"{step}. {md_text(rule.text(f'fixes.{fix.id}.steps.{index}', lang))}" for step, index in ((i + 1, i) for i in range(len(fix.steps))))
        out.append("")
        out.extend(command_blocks(fix.commands))
        addressed = [cause_titles[a] for a in fix.addresses if a in cause_titles]
        if addressed:
            out.append(f'<p class="mt-addresses">{escape_literal(ui(lang, "fix_addresses"))}: {"; ".join(md_text(t) for t in addressed)}</p>\n')
    return "\n".join(out)


def _audience_split(rule: Rule, lang: str) -> str:
    """'What the sender can do / what the admin can do': the fixes by audience, linked, kept out of
    the search index (the fixes themselves are indexed below). Empty when no fix has an audience."""
    if not any(fix.audience for fix in rule.fixes):
        return ""
    here = "#fix-"
    sender = [f for f in rule.fixes if f.audience is Audience.SENDER]
    admin = [f for f in rule.fixes if f.audience in (Audience.ADMIN, Audience.RECIPIENT_ADMIN)]
    lines = ['<div class="mt-audience" data-search-exclude markdown>', ""]
    for key, fixes in (("who.sender", sender), ("who.admin", admin)):
        lines.append(f'<div class="mt-audience-{key.split(".")[1]}" markdown>')
        lines.append("")
        lines.append(f"**{escape_literal(ui(lang, key))}**")
        lines.append("")
        if not fixes and key == "who.sender":
            lines.append(f"- {escape_literal(ui(lang, 'who.sender.none'))}")
        for fix in fixes:
            item = f"- [{md_text(rule.text(f'fixes.{fix.id}.title', lang))}]({here}{fix.id})"
            if fix.audience is Audience.RECIPIENT_ADMIN:
                item += f" ({escape_literal(ui(lang, 'who.recipient-admin'))})"
            lines.append(item)
        lines.extend(["", "</div>", ""])
    lines.extend(["</div>", ""])
    return "\n".join(lines)


_HIGHLIGHT = {"powershell": "powershell", "sh": "sh"}


def command_blocks(commands: Iterable[Command]) -> list[str]:
    """Fenced code blocks (one per run of commands in the same shell), which Material renders with
    PowerShell or shell highlighting and a copy button. Commands are code: never escaped, never
    parsed as Markdown; the fence is longer than any backtick run inside, so none can close it."""
    out: list[str] = []
    groups: list[tuple[str, list[str]]] = []
    for command in commands:
        if groups and groups[-1][0] == command.shell:
            groups[-1][1].append(command.run)
        else:
            groups.append((command.shell, [command.run]))
    for shell, runs in groups:
        longest = max((len(m) for run in runs for m in re.findall(r"`+|~+", run)), default=0)
        fence = "`" * max(3, longest + 1)
        out.append(f"{fence} {_HIGHLIGHT.get(shell, 'text')}")
        out.extend(" ".join(run.split()) for run in runs)
        out.append(fence)
        out.append("")
    return out


def describe_leaf(leaf: Leaf, lang: str) -> str:
    """One test in words, as safe Markdown: `field` is `value`."""
    field = md_code(leaf.field)
    if leaf.op == "exists":
        return f"{field} {ui(lang, 'op.exists.true' if leaf.value else 'op.exists.false')}"
    if leaf.op == "one_of":
        values = ", ".join(md_code(_value_text(v)) for v in leaf.value)
        return f"{field} {ui(lang, 'op.one_of')} {values}"
    return f"{field} {ui(lang, 'op.' + leaf.op)} {md_code(_value_text(leaf.value))}"


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def condition_lines(condition: Condition, lang: str, depth: int = 0) -> list[str]:
    """A condition tree as a nested Markdown list (four spaces per level)."""
    pad = "    " * depth
    if isinstance(condition, Leaf):
        return [f"{pad}- {describe_leaf(condition, lang)}"]
    if isinstance(condition, Not):
        return [f"{pad}- {ui(lang, 'cond.not')}", *condition_lines(condition.child, lang, depth + 1)]
    word = "cond.all" if isinstance(condition, All) else "cond.any"
    lines = [f"{pad}- {ui(lang, word)}"]
    for child in condition.children:
        lines.extend(condition_lines(child, lang, depth + 1))
    return lines


def _confirm(rule: Rule, lang: str, layout: PageLayout) -> str:
    out = [f"## {ui(lang, 'confirm')}\n", ui(lang, "confirm.checks") + "\n"]
    for key, commands in confirm_checks(rule):
        out.append(f"- {escape_literal(ui(lang, key))}\n")
        out.extend("    " + line if line else "" for line in command_blocks(commands))
    # The matching conditions are for contributors and the curious: collapsed, out of the index.
    out.append(f'<details class="mt-conditions" data-search-exclude markdown>\n<summary>{escape_literal(ui(lang, "confirm.conditions"))}</summary>\n')
    match = rule.match
    if isinstance(match, AnyOf):
        out.append(ui(lang, "confirm.any") + "\n")
        children: Iterable[Condition] = match.children
    elif isinstance(match, All):
        out.append(ui(lang, "confirm.all") + "\n")
        children = match.children
    else:
        out.append(ui(lang, "confirm.one") + "\n")
        children = (match,)
    for child in children:
        out.extend(condition_lines(child, lang))
    out.append("")
    out.append(ui(lang, "confirm.note", reading=link(layout.rule(rule.id), layout.reading_page)) + "\n")
    out.append("</details>\n")
    return "\n".join(out)


def _fields(condition: Condition) -> set[str]:
    if isinstance(condition, Leaf):
        return {condition.field}
    if isinstance(condition, Not):
        return _fields(condition.child)
    return {name for child in condition.children for name in _fields(child)}


def _ps(run: str) -> Command:
    return Command("powershell", run)


def _sh(run: str) -> Command:
    return Command("sh", run)


def confirm_checks(rule: Rule) -> list[tuple[str, list[Command]]]:
    """What an admin runs to confirm this diagnosis, derived from what the rule tests (its fact
    fields, family and reporting system): (ui key of the sentence, commands). The example names are
    the documentation ones (contoso.com, fabrikam.example)."""
    fields = _fields(rule.match)
    prefixes = {name.split(".")[0] for name in fields}
    systems = set(rule.systems)
    checks: list[tuple[str, list[Command]]] = []
    if "exchange-online" in systems:
        checks.append(("check.trace", [
            _ps("Get-MessageTraceV2 -RecipientAddress user@fabrikam.example -StartDate (Get-Date).AddDays(-2) -EndDate (Get-Date)"),
            _ps("Get-MessageTraceDetailV2 -MessageTraceId <MessageTraceId> -RecipientAddress user@fabrikam.example"),
        ]))
    network = rule.family in ("connector", "tcp", "dns", "tls") or prefixes & {"tcp", "dns", "tls"}
    if "dns" in prefixes or rule.family == "dns":
        checks.append(("check.dns", [_sh("dig MX fabrikam.example +short"), _ps("Resolve-DnsName -Name fabrikam.example -Type MX")]))
    if "tcp" in prefixes or rule.family in ("tcp", "connector"):
        checks.append(("check.tcp", [_ps("Test-NetConnection mail.fabrikam.example -Port 25"), _sh("nc -vz mail.fabrikam.example 25")]))
    if "tls" in prefixes or rule.family in ("tls", "connector") or "smtp.starttls_offered" in fields:
        checks.append(("check.tls", [_sh("openssl s_client -starttls smtp -connect mail.fabrikam.example:25 -servername mail.fabrikam.example")]))
    if network:
        checks.append(("check.probe", [_sh("mailtriage probe fabrikam.example")]))
    if "postfix" in systems:
        checks.append(("check.postfix", [_sh("postqueue -p"), _sh("grep 'status=deferred' /var/log/mail.log | tail -n 20")]))
    if "exim" in systems:
        checks.append(("check.exim", [_sh("exim -bp"), _sh("exim -bt user@fabrikam.example")]))
    example = next((ex for ex in rule.examples_match if ex.reply), None)
    if example is not None and example.reply is not None:
        quoted = " ".join(example.reply.split()).replace("'", "'\\''")
        system = example.facts.get("context.system")
        where = f" --system {system}" if isinstance(system, str) and re.fullmatch(r"[a-z0-9-]+", system) else ""
        checks.append(("check.diagnose", [_sh(f"mailtriage diagnose --smtp-reply '{quoted}'{where}")]))
    return checks


def _examples(rule: Rule, lang: str) -> str:
    out = [f"## {ui(lang, 'examples')}\n"]
    for kind, examples in (("match", rule.examples_match), ("no_match", rule.examples_no_match)):
        if not examples:
            continue
        out.append(ui(lang, f"examples.{kind}") + "\n")
        for index, example in enumerate(examples):
            out.append(_example(example, rule.note(kind, index, lang) if example.note else None, lang))
    return "\n".join(out)


def _example(example: Example, note: str | None, lang: str) -> str:
    parts = []
    if example.reply is not None:
        parts.append(md_code(" ".join(example.reply.split())))
    if example.facts:
        facts = ", ".join(md_code(f"{k} = {_value_text(v)}") for k, v in example.facts.items())
        parts.append(f"{ui(lang, 'examples.facts')} {facts}" if example.reply is not None else facts)
    line = "- " + " ".join(parts)
    if note:
        line += f"<br>\n  <em>{md_text(note)}</em>"
    return line + "\n"


# ---------------------------------------------------------------------------------------------
# Index pages


def _rule_link(rule: Rule, source: str, layout: PageLayout, lang: str) -> str:
    return f"[{md_text(rule.text('title', lang))}]({link(source, layout.rule(rule.id))})"


def _order(rules: Iterable[Rule]) -> list[Rule]:
    return sorted(rules, key=lambda r: (-r.specificity, r.id))


def _listed(rules: dict[str, Rule]) -> list[Rule]:
    return [r for r in rules.values() if r.status is not Status.DEPRECATED]


def code_key(code: str) -> tuple[str, str]:
    """(class digit, subject) of a rule code such as `450 4.4.316` or `X.7.x`, for grouping."""
    found = _ENHANCED_IN_CODE.search(code)
    if not found:
        first = code.strip()[:1]
        return (first if first in "245" else "", "")
    cls, subject, _ = found.groups()
    return (cls if cls in "245" else "X", subject if subject.isdecimal() else "")


def by_code_page(rules: dict[str, Rule], lang: str, layout: PageLayout) -> str:
    here = layout.index("by-code")
    out = [front_matter(ui(lang, "index.by_code")), f"# {escape_literal(ui(lang, 'index.by_code'))}\n", ui(lang, "index.by_code.intro") + "\n"]
    groups: dict[str, list[tuple[str, Rule]]] = {}
    for rule in _listed(rules):
        for code in rule.codes or [""]:
            _, subject = code_key(code) if code else ("", "")
            groups.setdefault(subject, []).append((code, rule))
    for subject in sorted(groups, key=lambda s: (s == "", int(s) if s else 0)):
        heading = f"X.{subject} {SUBJECTS[subject][lang if lang in SUBJECTS[subject] else 'en']}" if subject in SUBJECTS else ui(lang, "subject.other") if subject else ui(lang, "no_code")
        out.append(f"## {escape_literal(heading)}\n")
        entries = sorted(groups[subject], key=lambda e: (_code_sort(e[0]), -e[1].specificity, e[1].id))
        out.extend(f"- {md_code(code) if code else '—'} {_rule_link(rule, here, layout, lang)}" for code, rule in entries)
        out.append("")
    return "\n".join(out)


def _code_sort(code: str) -> tuple[int, ...]:
    numbers = [int(n) if n.isdecimal() else 999 for n in re.split(r"[ .]", code.replace("X", "0")) if n]
    enhanced = numbers[1:] if len(numbers) == 4 else numbers
    return (*enhanced, *numbers)


def by_family_page(rules: dict[str, Rule], lang: str, layout: PageLayout) -> str:
    groups: dict[str, list[Rule]] = {}
    for rule in _listed(rules):
        groups.setdefault(rule.family, []).append(rule)
    order = sorted(groups, key=lambda f: family_name(f, lang).lower())
    return _grouped_index("by-family", "index.by_family", [(family_name(f, lang), groups[f]) for f in order], lang, layout)


def by_system_page(rules: dict[str, Rule], lang: str, layout: PageLayout) -> str:
    groups: dict[str, list[Rule]] = {}
    for rule in _listed(rules):
        for system in rule.systems:
            groups.setdefault(system, []).append(rule)
    order = sorted(groups, key=lambda s: (s == "any", system_name(s, lang).lower()))
    return _grouped_index("by-system", "index.by_system", [(system_name(s, lang), groups[s]) for s in order], lang, layout)


def _grouped_index(page: str, title_key: str, groups: list[tuple[str, list[Rule]]], lang: str, layout: PageLayout) -> str:
    """An index page: a heading per group (in the order given), its rules linked with their codes."""
    here = layout.index(page)
    title = ui(lang, title_key)
    out = [front_matter(title), f"# {escape_literal(title)}\n", ui(lang, f"{title_key}.intro") + "\n"]
    for heading, group in groups:
        out.append(f"## {escape_literal(heading)}\n")
        out.extend(f"- {_rule_link(rule, here, layout, lang)} {_codes_inline(rule)}" for rule in _order(group))
        out.append("")
    return "\n".join(out)


def codes_page(rules: dict[str, Rule], lang: str, layout: PageLayout) -> str:
    here = layout.index("codes")
    out = [front_matter(ui(lang, "index.codes")), f"# {escape_literal(ui(lang, 'index.codes'))}\n", ui(lang, "index.codes.intro") + "\n"]
    header = [ui(lang, c) for c in ("col.code", "col.rule", "col.family", "col.systems", "col.kind")]
    out.append("| " + " | ".join(escape_literal(h) for h in header) + " |")
    out.append("|---|---|---|---|---|")
    rows = [(code, rule) for rule in _listed(rules) for code in rule.codes or [""]]
    for code, rule in sorted(rows, key=lambda e: (not e[0], _code_sort(e[0]), -e[1].specificity, e[1].id)):
        kind = ui(lang, f"kind.{rule.kind.value}")
        if rule.generic_level is not None and rule.kind is Kind.GENERIC:
            kind += f" ({ui(lang, f'level.{rule.generic_level.value}')})"
        cells = [
            md_code(code) if code else "—",
            _rule_link(rule, here, layout, lang),
            escape_literal(family_name(rule.family, lang)),
            escape_literal(", ".join(system_name(s, lang) for s in rule.systems)),
            escape_literal(kind),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(ui(lang, "index.count", count=len(_listed(rules))) + "\n")
    return "\n".join(out)


def _codes_inline(rule: Rule) -> str:
    return " ".join(md_code(code) for code in rule.codes[:4]) + (" …" if len(rule.codes) > 4 else "")


INDEX_PAGES = {
    "by-code": by_code_page,
    "by-family": by_family_page,
    "by-system": by_system_page,
    "codes": codes_page,
}


def example_cases(rules: dict[str, Rule]) -> list[tuple[str, Example]]:
    """(rule id, example) of every example with a reply, for the paste page's agreement test."""
    return [(rule.id, ex) for rule in rules.values() for ex in (*rule.examples_match, *rule.examples_no_match) if ex.reply is not None]


__all__ = ["INDEX_PAGES", "PageLayout", "RuleLinks", "condition_lines", "example_cases", "example_facts", "link", "rule_page"]


def fact_fields_table(lang: str) -> str:
    """The fact vocabulary as a table: field, values, description (or the question, translated)."""
    from .facts import vocabulary

    header = {"en": ("Field", "Values", "Meaning"), "pt-BR": ("Campo", "Valores", "Significado")}.get(lang, ("Field", "Values", "Meaning"))
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|"]
    for spec in vocabulary().values():
        if spec.enum is not None:
            values = ", ".join(md_code(_value_text(v)) for v in spec.enum)
        else:
            values = escape_literal(spec.type)
        text = spec.description
        if lang != SOURCE_LANGUAGE and spec.question and lang in spec.question:
            text = spec.question[lang]
        lines.append(f"| {md_code(spec.name)} | {values} | {md_text(text)} |")
    return "\n".join(lines) + "\n"
