"""Symptom intake: turn what users hold (replies, NDRs, log lines) into facts.

`parse_input` is the one entry point the CLI and the scanner use; it recognises the kind of
input unless told, and returns one record per failed recipient or attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..facts import FactValue

INPUT_KINDS = ("auto", "reply", "ndr", "log")


@dataclass
class IntakeRecord:
    """The facts read from one input about one failed recipient (or one reply/log line)."""

    facts: dict[str, FactValue]
    kind: str  # "reply" | "ndr" | "log"
    source: str = "<input>"
    recipient: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_input(data: bytes | str, kind: str = "auto", source: str = "<input>") -> list[IntakeRecord]:
    """Read facts from pasted text, a message or log lines. An empty list means nothing recognised."""
    from .reply import parse_reply

    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    facts = parse_reply(text)
    if not facts:
        return []
    facts.setdefault("input.kind", "reply")
    return [IntakeRecord(facts=facts, kind="reply", source=source)]
