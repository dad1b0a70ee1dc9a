"""What the knowledge base does not explain yet: run the intake over messages and logs and group
the inputs that got no record, the records no rule matched, and the records that only a generic
(registry) rule explained, by their normalised text. It is the contributors' to-do list:
`mailtriage rules coverage PATH...` renders it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["CoverageGroup", "CoverageReport", "Outcome", "coverage", "normalise_text"]

MAX_EXAMPLES = 3
MAX_TEXT_CHARS = 160


class Outcome(Enum):
    """Why an input is on the to-do list."""

    NO_RECORD = "no-record"  # read, but nothing in it was recognised as a failure
    NO_RULE = "no-rule"  # a record that no rule matched
    GENERIC = "generic"  # a record that only a generic (registry) rule explained

    def to_dict(self) -> str:
        return self.value


# Order matters: addresses before host names, host names before bare numbers.
_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[\w.!#$%&'*+/=?^`{|}~\-]+@[\w\-]+(?:\.[\w\-]+)+"), "<address>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "<ip>"),
    (re.compile(r"\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b", re.I), "<ip>"),
    (re.compile(r"\b(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,}\b", re.I), "<host>"),
    (re.compile(r"https?://\S+", re.I), "<url>"),
    # Queue ids, message ids, timestamps and other long tokens with digits in them.
    (re.compile(r"\b(?=[\w\-]*\d)(?=[\w\-]*[a-z])[\w\-]{6,}\b", re.I), "<id>"),
    (re.compile(r"(?<![\d.])\d+(?![\d.]*\.\d)"), "<n>"),
)
_ENHANCED = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


def normalise_text(text: str) -> str:
    """Text with its variable parts (addresses, hosts, IPs, ids, numbers) replaced by placeholders,
    so that the same error from different messages falls in one group. Status codes are kept."""
    codes: list[str] = []

    def keep(found: re.Match[str]) -> str:
        codes.append(found.group(0))
        # The placeholder has no digits, so the number normaliser leaves it alone.
        return "\x00" + "".join(chr(ord("a") + int(d)) for d in str(len(codes) - 1)) + "\x00"

    out = _ENHANCED.sub(keep, " ".join(text.split()))
    # A reply code at the start is part of the phrase, not a variable.
    out = re.sub(r"^([245]\d\d)(?=[ \-]|$)", keep, out)
    for pattern, placeholder in _NORMALISERS:
        out = pattern.sub(placeholder, out)
    out = re.sub(r"\x00([a-j]+)\x00",
                 lambda m: codes[int("".join(str(ord(c) - ord("a")) for c in m.group(1)))], out)
    out = out.lower()
    return out if len(out) <= MAX_TEXT_CHARS else out[: MAX_TEXT_CHARS - 1] + "\u2026"


@dataclass
class CoverageGroup:
    """Inputs that share an outcome and a normalised text."""

    outcome: Outcome
    text: str
    count: int = 0
    rules: dict[str, int] = field(default_factory=dict)  # generic rules that answered, with counts
    examples: list[str] = field(default_factory=list)  # sources, the first few

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.to_dict(), "text": self.text, "count": self.count,
                "rules": dict(self.rules), "examples": list(self.examples)}


@dataclass
class CoverageReport:
    """Counts over every input read, and the groups of what is not covered, biggest first."""

    records: int = 0
    specific: int = 0
    generic: int = 0
    no_rule: int = 0
    no_record: int = 0
    groups: list[CoverageGroup] = field(default_factory=list)

    @property
    def specific_rate(self) -> float:
        return self.specific / self.records if self.records else 0.0

    @property
    def complete(self) -> bool:
        """True when every input gave a record and every record a specific rule."""
        return not (self.generic or self.no_rule or self.no_record)

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records, "specific": self.specific, "generic": self.generic,
            "no_rule": self.no_rule, "no_record": self.no_record,
            "specific_rate": round(self.specific_rate, 4),
            "groups": [g.to_dict() for g in self.groups],
        }


def _record_text(facts: dict[str, Any], extra: dict[str, Any]) -> str:
    text = facts.get("smtp.text") or extra.get("diagnostic") or ""
    code = " ".join(str(facts[k]) for k in ("smtp.reply_code", "smtp.enhanced") if facts.get(k) is not None)
    text = str(text)
    if code and not text.startswith(code.split()[0]):
        text = f"{code} {text}"
    return text or "(no text)"


def coverage(paths: Iterable[str], engine: Engine | None = None) -> CoverageReport:
    """Read every file under `paths` (messages, mbox files, maildirs, logs, pasted replies) and
    report what got no record, no rule, or only a generic rule, grouped by normalised text."""
    from .intake import SkippedInput, iter_path_records
    from .triage import default_engine

    engine = engine or default_engine()
    report = CoverageReport()
    groups: dict[tuple[Outcome, str], CoverageGroup] = {}

    def add(outcome: Outcome, text: str, source: str, rule: str | None = None) -> None:
        key = (outcome, normalise_text(text))
        group = groups.get(key)
        if group is None:
            group = groups[key] = CoverageGroup(outcome, key[1])
        group.count += 1
        if rule:
            group.rules[rule] = group.rules.get(rule, 0) + 1
        if len(group.examples) < MAX_EXAMPLES:
            group.examples.append(source)

    for item in iter_path_records(paths):
        if isinstance(item, SkippedInput):
            report.no_record += 1
            add(Outcome.NO_RECORD, item.reason, item.source)
            continue
        report.records += 1
        diagnosis = engine.diagnose(item.facts)
        if diagnosis.specific:
            report.specific += 1
        elif diagnosis.matches:
            report.generic += 1
            add(Outcome.GENERIC, _record_text(item.facts, item.extra), item.source, diagnosis.matches[0].rule.id)
        else:
            report.no_rule += 1
            add(Outcome.NO_RULE, _record_text(item.facts, item.extra), item.source)
    order = {Outcome.NO_RECORD: 0, Outcome.NO_RULE: 1, Outcome.GENERIC: 2}
    report.groups = sorted(groups.values(), key=lambda g: (-g.count, order[g.outcome], g.text))
    return report
