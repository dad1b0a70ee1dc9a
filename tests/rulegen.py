"""Build Rule objects in tests without YAML files."""

from __future__ import annotations

from typing import Any

from mailtriage.model import Rule


def make_rule(rule_id: str, match: dict[str, Any], **extra: Any) -> Rule:
    data: dict[str, Any] = {
        "id": rule_id,
        "status": "stable",
        "kind": "specific",
        "family": "smtp",
        "codes": [],
        "systems": ["any"],
        "title": rule_id,
        "summary": rule_id,
        "match": match,
        "examples": {"match": [{"facts": {}}], "no_match": [{"facts": {}}]},
    }
    data.update(extra)
    return Rule.from_dict(data)
