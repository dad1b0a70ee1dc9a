"""Translation keys and source hashes for rule text.

English is the source. A translation file (`<rule-file>.<lang>.yaml` beside the rule) maps each
translatable key to `{text, source}`, where `source` is the hash of the English text it was made
from; when the English changes, the hash no longer matches and the linter reports it stale.
Keys: `title`, `summary`, `causes.<id>.title`, `causes.<id>.detail`, `fixes.<id>.title`,
`fixes.<id>.steps.<n>`, `examples.match.<n>.note`, `examples.no_match.<n>.note` (the captions).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

SOURCE_LANGUAGE = "en"
LANGUAGES = ("en", "pt-BR")


def source_hash(text: str) -> str:
    """Short, stable fingerprint of an English string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def translatable_strings(rule: Mapping[str, Any]) -> dict[str, str]:
    """Every user-facing English string of a rule (as loaded from YAML), by translation key."""
    strings: dict[str, str] = {}
    for key in ("title", "summary"):
        if isinstance(rule.get(key), str):
            strings[key] = rule[key]
    for cause in rule.get("causes") or []:
        if not isinstance(cause, Mapping) or "id" not in cause:
            continue
        for key in ("title", "detail"):
            if isinstance(cause.get(key), str):
                strings[f"causes.{cause['id']}.{key}"] = cause[key]
    for fix in rule.get("fixes") or []:
        if not isinstance(fix, Mapping) or "id" not in fix:
            continue
        if isinstance(fix.get("title"), str):
            strings[f"fixes.{fix['id']}.title"] = fix["title"]
        for index, step in enumerate(fix.get("steps") or []):
            if isinstance(step, str):
                strings[f"fixes.{fix['id']}.steps.{index}"] = step
    examples = rule.get("examples")
    for kind in ("match", "no_match"):
        listed = examples.get(kind) if isinstance(examples, Mapping) else None
        for index, example in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(example, Mapping) and isinstance(example.get("note"), str):
                strings[f"examples.{kind}.{index}.note"] = example["note"]
    return strings


def translation_stub(rule: Mapping[str, Any], lang: str, existing: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """A translation document for `rule`: existing texts kept, hashes refreshed only where the
    text was already current; missing keys get the English text prefixed with TODO."""
    existing = existing or {}
    strings: dict[str, dict[str, str]] = {}
    for key, english in translatable_strings(rule).items():
        current = existing.get(key)
        if current and current.get("source") == source_hash(english):
            strings[key] = {"source": current["source"], "text": current["text"]}
        elif current:
            strings[key] = {"source": current.get("source", ""), "text": current.get("text", "")}
        else:
            strings[key] = {"source": source_hash(english), "text": f"TODO: {english}"}
    return {"rule": rule.get("id"), "lang": lang, "strings": strings}
