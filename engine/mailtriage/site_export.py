"""The rules the "paste your error" page matches in the browser, as JSON.

Each active rule goes out with its id, specificity, codes, title in every site language, page URL
and its match tree. Patterns are written in Python's `re` dialect; `js_regex` rewrites the few
constructs JavaScript spells differently and refuses the ones it lacks, and a rule with a refused
pattern is left out of the export (and counted), never exported half-working.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .model import All, AnyOf, Condition, Leaf, Not, Rule, Status

EXPORT_VERSION = 1
# Python inline flags JavaScript has no equivalent for in a pattern (x: verbose, L/a/u: locale and
# ASCII modes).
_UNSUPPORTED_FLAGS = set("xLau")


class UnsupportedPattern(ValueError):
    """A Python regex construct with no JavaScript equivalent."""


def js_regex(pattern: str) -> tuple[str, str]:
    """(source, extra flags) of a JavaScript RegExp equivalent to Python `pattern`, searched with
    the `i` flag. Raises UnsupportedPattern for constructs JavaScript lacks."""
    out: list[str] = []
    flags = ""
    i = 0
    n = len(pattern)
    in_class = False
    last_quantifier = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise UnsupportedPattern("trailing backslash")
            nxt = pattern[i + 1]
            if not in_class and nxt == "Z":
                out.append("$")
            elif not in_class and nxt == "A":
                out.append("^")
            elif nxt in "NpPgG":
                raise UnsupportedPattern(f"\\{nxt} escapes are not portable")
            else:
                out.append(ch + nxt)
            i += 2
            last_quantifier = False
            continue
        if in_class or ch in "[(":
            last_quantifier = False
        if in_class:
            if ch == "]":
                in_class = False
            elif ch == "[" and i + 1 < n and pattern[i + 1] in ":=.":
                raise UnsupportedPattern("POSIX classes are not portable")
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                # Python reads a leading ] as a literal; JavaScript would close an empty class.
                out.append("\\]")
                i += 1
            continue
        if ch == "(" and pattern.startswith("(?", i):
            rest = pattern[i + 2:]
            if rest.startswith("P<"):
                out.append("(?<")
                i += 4
                continue
            if rest.startswith("P="):
                close = pattern.index(")", i)
                out.append(f"\\k<{pattern[i + 4:close]}>")
                i = close + 1
                continue
            if rest[:1] in (":", "=", "!") or rest.startswith(("<=", "<!")):
                out.append("(?")
                i += 2
                continue
            if rest[:1] in ("<",):
                out.append("(?")  # (?<name>...) is the same in both
                i += 2
                continue
            j = 0
            while j < len(rest) and rest[j].isalpha():
                j += 1
            letters = rest[:j]
            if letters and j < len(rest) and rest[j] == ")" and i == 0:
                if set(letters) & _UNSUPPORTED_FLAGS:
                    raise UnsupportedPattern(f"inline flags (?{letters}) are not portable")
                flags += "".join(sorted(set(letters) & set("sm")))
                i += 2 + j + 1
                continue
            raise UnsupportedPattern(f"group (?{rest[:3]}... is not portable")
        if ch == "{" and pattern.startswith("{,", i):
            out.append("{0,")
            i += 2
            last_quantifier = False
            continue
        if ch in "*+?}":
            if ch == "+" and last_quantifier:
                raise UnsupportedPattern("possessive quantifiers are not portable")
            # `?` right after a quantifier makes it lazy (same in both dialects).
            last_quantifier = not (ch == "?" and last_quantifier)
        else:
            last_quantifier = False
        out.append(ch)
        i += 1
    return "".join(out), flags


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
        source, flags = js_regex(str(leaf.value))
        return {"field": leaf.field, "matches": source, "flags": "i" + flags}
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
                "url": url_of(rule),
                "match": match,
            }
        )
    from .intake.context import export_markers

    # The context markers go with the rules, so the page infers who reported an error from the
    # same table as `diagnose`.
    document = {"version": EXPORT_VERSION, "languages": languages, "rules": exported, "skipped": sorted(skipped),
                "context": export_markers()}
    return Export(document, skipped)
