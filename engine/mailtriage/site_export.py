"""The rules the "paste your error" page matches in the browser, as JSON.

Each active rule goes out with its id, specificity, codes, its title, summary and first fix in every
site language (what a result card shows), page URL and its match tree. Patterns go out in RE2 syntax: the page runs them on RE2JS, a JavaScript port
of RE2 vendored in the site assets, as the engine runs them on RE2 (linear time whatever a
contributed pattern looks like, and one dialect on both sides). A rule with a pattern RE2 cannot
compile is left out of the export (and counted), never exported half-working.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .model import All, AnyOf, Condition, Leaf, Not, Rule, Status
from .textmatch import pattern_problem, re2_syntax

EXPORT_VERSION = 2  # 2: patterns in RE2 syntax, for RE2JS


class UnsupportedPattern(ValueError):
    """A pattern RE2 (and so RE2JS) cannot compile."""


def export_pattern(pattern: str) -> str:
    """`pattern` as the page's RE2JS compiles it; raises UnsupportedPattern if RE2 cannot."""
    problem = pattern_problem(pattern)
    if problem is not None:
        raise UnsupportedPattern(problem)
    return re2_syntax(pattern)


def export_condition(condition: Condition) -> dict[str, Any]:
    """A condition tree in the JSON shape the browser matcher reads."""
    if isinstance(condition, All):
        return {"all": [export_condition(c) for c in condition.children]}
    if isinstance(condition, AnyOf):
        return {"any": [export_condition(c) for c in condition.children]}
    if isinstance(condition, Not):
        return {"not": export_condition(condition.child)}
    return _export_leaf(condition)


def _export_leaf(leaf: Leaf) -> dict[str, Any]:
    if leaf.op == "matches":
        return {"field": leaf.field, "matches": export_pattern(str(leaf.value)), "flags": "i"}
    value = list(leaf.value) if leaf.op == "one_of" else leaf.value
    return {"field": leaf.field, leaf.op: value}


@dataclass
class Export:
    """The exported document plus the rules left out, with the reason for each."""

    document: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.document, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def export_rules(rules: Iterable[Rule], languages: Iterable[str], url_of: Callable[[Rule], str]) -> Export:
    """The active rules as the browser matcher's JSON; `url_of(rule)` is the rule page's URL
    relative to a language's site root."""
    languages = list(languages)
    exported: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for rule in sorted(rules, key=lambda r: r.id):
        if rule.status is Status.DEPRECATED:
            continue
        try:
            match = export_condition(rule.match)
        except UnsupportedPattern as exc:
            skipped[rule.id] = str(exc)
            continue
        exported.append(
            {
                "id": rule.id,
                "kind": rule.kind.value,
                "generic_level": rule.generic_level.value if rule.generic_level else None,
                "specificity": rule.specificity,
                "experimental": rule.status is Status.EXPERIMENTAL,
                "codes": list(rule.codes),
                "title": {lang: rule.text("title", lang) for lang in languages},
                "summary": {lang: rule.text("summary", lang) for lang in languages},
                "fix": {lang: _first_fix(rule, lang) for lang in languages} if rule.fixes else None,
                "url": url_of(rule),
                "match": match,
            }
        )
    # The context markers go with the rules, so the page infers who reported an error from the
    # same table as `diagnose`.
    document = {"version": EXPORT_VERSION, "languages": languages, "rules": exported, "skipped": sorted(skipped),
                "context": export_reading()}
    return Export(document, skipped)


def _first_fix(rule: Rule, lang: str) -> dict[str, Any]:
    fix = rule.fix_dict(rule.fixes[0], lang)
    return {"title": fix["title"], "steps": fix["steps"]}


def export_reading() -> dict[str, Any]:
    """What the page needs to read a paste as `parse_input` does: the context markers and derived
    rules, where a bounce starts quoting the message it returns, how a log is told from a reply
    and how a log line is read (JavaScript spelling)."""
    from .intake import export_detection
    from .intake.context import export_markers
    from .intake.logs import export_log_reading
    from .intake.reply import RETURNED_MESSAGE
    from .jsregex import js_pattern

    return {**export_markers(), "returned_message": js_pattern(RETURNED_MESSAGE),
            "detection": export_detection(), "logs": export_log_reading()}


def reporting_systems(document: dict[str, Any]) -> list[str]:
    """The `context.system` values some exported rule asks for (not under a `not`): the systems
    worth offering in the page's "Reported by" list. Choosing any other changes no answer."""
    found: set[str] = set()

    def walk(node: dict[str, Any], negated: bool) -> None:
        if "all" in node or "any" in node:
            for child in node.get("all") or node.get("any") or []:
                walk(child, negated)
        elif "not" in node:
            walk(node["not"], not negated)
        elif node.get("field") == "context.system" and not negated:
            values = node["one_of"] if "one_of" in node else [node["equals"]] if "equals" in node else []
            found.update(str(v) for v in values)

    for rule in document.get("rules", []):
        walk(rule["match"], False)
    return sorted(found)
