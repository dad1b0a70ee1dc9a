"""Query workloads for the bundled knowledge base: each rule's own examples plus a fixed list of
realistic inputs (the six connector errors of the source article, common registry codes, probe
results), cycled to the requested count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailtriage.engine import rule_dirs
from mailtriage.intake import parse_input
from mailtriage.loader import KnowledgeBase
from mailtriage.model import Example, Rule

REALISTIC: tuple[tuple[str | None, dict[str, Any]], ...] = (
    ("450 4.4.312 DNS query failed", {"context.system": "exchange-online"}),
    ("450 4.4.315 Connection timed out", {"context.system": "exchange-online"}),
    ("450 4.4.316 Connection refused [Message=Socket error code 10061]", {"context.system": "exchange-online"}),
    ("450 4.4.317 Cannot connect to remote server [Message=451 5.7.3 STARTTLS is required to send mail]", {}),
    ("450 4.4.318 Connection was closed abruptly", {"context.system": "exchange-online"}),
    ("450 4.7.320 Certificate validation failed", {"context.system": "exchange-online", "tls.error": "certificate-expired"}),
    ("550 5.4.316 Message expired, connection refused", {"context.system": "exchange-online"}),
    ("550 5.1.1 The email account that you tried to reach does not exist", {"context.remote_provider": "gmail"}),
    ("421 4.7.0 Try again later, closing connection", {}),
    ("554 5.7.1 Service unavailable; Client host blocked using Spamhaus", {"context.system": "postfix"}),
    ("452 4.2.2 The email account that you tried to reach is over quota", {}),
    ("550 5.7.26 This message does not have authentication information", {"context.remote_provider": "gmail"}),
    (None, {"tcp.state": "refused", "context.direction": "outbound-connector"}),
    (None, {"dns.result": "nxdomain"}),
    (None, {"tls.error": "name-mismatch", "context.tls_required": True}),
    ("250 2.0.0 OK", {}),
)


def _facts(reply: str | None, facts: dict[str, Any]) -> dict[str, Any] | None:
    merged: dict[str, Any] = {}
    if reply is not None:
        records = parse_input(reply, kind="reply")
        if not records:
            return None
        merged.update(records[0].facts)
    merged.update(facts)
    return merged or None


def bundled_queries(rules: list[Rule], count: int) -> list[dict[str, Any]]:
    """`count` raw fact sets drawn in a fixed order from rule examples and REALISTIC."""
    base: list[dict[str, Any]] = []
    examples: list[Example] = [e for r in rules for e in (*r.examples_match, *r.examples_no_match)]
    for example in examples:
        facts = _facts(example.reply, dict(example.facts))
        if facts is not None:
            base.append(facts)
    for reply, extra in REALISTIC:
        facts = _facts(reply, extra)
        if facts is not None:
            base.append(facts)
    return [dict(base[i % len(base)]) for i in range(count)]


def bundled_kb(extra_dirs: list[str] | None = None) -> KnowledgeBase:
    from mailtriage.cache import load_cached_knowledge_base

    return load_cached_knowledge_base(rule_dirs([Path(d) for d in extra_dirs or []]))


def bundled_workload(count: int, extra_dirs: list[str] | None = None) -> tuple[list[Rule], list[dict[str, Any]]]:
    kb = bundled_kb(extra_dirs)
    rules = sorted(kb.rules.values(), key=lambda r: r.id)
    return rules, bundled_queries(rules, count)
