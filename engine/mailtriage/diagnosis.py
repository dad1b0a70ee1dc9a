"""The typed result of a diagnosis and its JSON-ready form (a contract: see `to_dict`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .facts import FactValue, InferredFact
from .i18n import SOURCE_LANGUAGE
from .model import Cause, Fix, Kind, Leaf, Rule


class Likelihood(enum.Enum):
    LIKELY = "likely"
    POSSIBLE = "possible"
    UNLIKELY = "unlikely"


@dataclass
class CauseAssessment:
    cause: Cause
    likelihood: Likelihood
    because: list[Leaf] = field(default_factory=list)  # the facts that made it likely or unlikely


@dataclass
class NextCheck:
    """An unknown fact that would best separate the remaining candidates or causes."""

    field: str
    question: dict[str, str]
    how: dict[str, str]
    separates: list[str]  # "rule-id" or "rule-id/cause-id" whose assessment depends on it

    def to_dict(self, lang: str) -> dict[str, Any]:
        return {
            "field": self.field,
            "question": self.question.get(lang) or self.question.get(SOURCE_LANGUAGE, ""),
            "how": self.how.get(lang) or self.how.get(SOURCE_LANGUAGE, ""),
            "separates": list(self.separates),
        }


@dataclass
class NearMiss:
    rule: Rule
    failed: Leaf


@dataclass
class Match:
    rule: Rule
    why: list[Leaf]
    causes: list[CauseAssessment]
    fixes: list[Fix]

    def to_dict(self, facts: dict[str, FactValue], lang: str) -> dict[str, Any]:
        rule = self.rule
        return {
            "rule": rule.id,
            "codes": list(rule.codes),
            "title": rule.text("title", lang),
            "summary": rule.text("summary", lang),
            "kind": rule.kind.value,
            "generic_level": rule.generic_level.value if rule.generic_level else None,
            "family": rule.family,
            "status": rule.status.value,
            "why": [_leaf_reason(leaf, facts) for leaf in self.why],
            "causes": [
                {
                    "id": c.cause.id,
                    "title": rule.text(f"causes.{c.cause.id}.title", lang),
                    "detail": rule.text(f"causes.{c.cause.id}.detail", lang) if c.cause.detail else "",
                    "likelihood": c.likelihood.value,
                    "because": [_leaf_reason(leaf, facts) for leaf in c.because],
                }
                for c in self.causes
            ],
            "fixes": [rule.fix_dict(fix, lang) for fix in self.fixes],
            "references": [{"title": r.title, "url": r.url} for r in rule.references],
            "language": lang if rule.is_translated(lang) else SOURCE_LANGUAGE,
        }


@dataclass
class Diagnosis:
    facts: dict[str, FactValue]
    matches: list[Match]
    next_checks: list[NextCheck]
    near_misses: list[NearMiss] = field(default_factory=list)
    # Context facts worked out from the input (not stated by the reader), with their evidence.
    inferred: list[InferredFact] = field(default_factory=list)

    @property
    def specific(self) -> bool:
        """True when at least one specific (not generic) rule matched."""
        return any(m.rule.kind is Kind.SPECIFIC for m in self.matches)

    @property
    def top(self) -> Match | None:
        return self.matches[0] if self.matches else None

    def to_dict(self, lang: str = SOURCE_LANGUAGE) -> dict[str, Any]:
        return {
            "facts": dict(self.facts),
            "inferred": [fact.to_dict() for fact in self.inferred],
            "specific": self.specific,
            "matches": [m.to_dict(self.facts, lang) for m in self.matches],
            "next_checks": [c.to_dict(lang) for c in self.next_checks],
            "near_misses": [
                {"rule": n.rule.id, "title": n.rule.text("title", lang), "failed": _leaf_reason(n.failed, self.facts)}
                for n in self.near_misses
            ],
        }


def _leaf_reason(leaf: Leaf, facts: dict[str, FactValue]) -> dict[str, Any]:
    return {"field": leaf.field, "condition": leaf.describe(), "value": facts.get(leaf.field)}
