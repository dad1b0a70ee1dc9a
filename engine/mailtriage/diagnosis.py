"""The typed result of a diagnosis and its JSON-ready form (a contract: see `to_dict`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    # lang -> the parts of to_dict that do not depend on the facts (a match is immutable once made,
    # and an engine shares it between every fact set with the same signature).
    _templates: dict[str, _MatchTemplate] = field(default_factory=dict, init=False, repr=False, compare=False)

    def to_dict(self, facts: dict[str, FactValue], lang: str) -> dict[str, Any]:
        template = self._templates.get(lang)
        if template is None:
            template = self._templates[lang] = self._template(lang)
        get = facts.get
        head = template.head
        return {  # the contract's key order
            "rule": head[0],
            "codes": list(head[1]),
            "title": head[2],
            "summary": head[3],
            "kind": head[4],
            "generic_level": head[5],
            "family": head[6],
            "status": head[7],
            "why": [_reason(name, text, pattern, get(name)) for name, text, pattern in template.why],
            "causes": [
                {
                    "id": cause_id,
                    "title": title,
                    "detail": detail,
                    "likelihood": likelihood,
                    "because": [_reason(name, text, pattern, get(name)) for name, text, pattern in because],
                }
                for cause_id, title, detail, likelihood, because in template.causes
            ],
            "fixes": [
                {"id": fix_id, "title": title, "addresses": list(addresses), "steps": list(steps), "audience": audience,
                 "commands": [{"shell": shell, "run": run} for shell, run in commands]}
                for fix_id, title, addresses, steps, audience, commands in template.fixes
            ],
            "references": [{"title": title, "url": url} for title, url in template.references],
            "language": template.language,
        }

    def _template(self, lang: str) -> _MatchTemplate:
        rule = self.rule
        static = _rendered(rule, lang)
        head = static.head
        return _MatchTemplate(
            (rule.id, tuple(rule.codes), head["title"], head["summary"], head["kind"], head["generic_level"],
             head["family"], head["status"]),
            tuple(_reason_template(leaf, lang) for leaf in self.why),
            tuple(
                (
                    c.cause.id,
                    static.causes[c.cause.id]["title"],
                    static.causes[c.cause.id]["detail"],
                    c.likelihood.value,
                    tuple(_reason_template(leaf, lang) for leaf in c.because),
                )
                for c in self.causes
            ),
            tuple(
                (fix.id, static.fixes[fix.id]["title"], tuple(fix.addresses), tuple(static.fixes[fix.id]["steps"]),
                 fix.audience.value if fix.audience else None, tuple((c.shell, c.run) for c in fix.commands))
                for fix in self.fixes
            ),
            tuple((r.title, r.url) for r in rule.references),
            static.language,
        )


@dataclass(frozen=True)
class _MatchTemplate:
    head: tuple[Any, ...]
    why: tuple[_ReasonTemplate, ...]
    causes: tuple[tuple[str, str, str, str, tuple[_ReasonTemplate, ...]], ...]
    fixes: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], str | None, tuple[tuple[str, str], ...]], ...]
    references: tuple[tuple[str, str], ...]
    language: str


class Explanation(Protocol):
    """What a Diagnosis asks its engine for, on first use only (see `Diagnosis`)."""

    def matches(self) -> list[Match]: ...

    def top_rule(self) -> Rule | None: ...

    def next_checks(self) -> list[NextCheck]: ...

    def near_misses(self) -> list[NearMiss]: ...


class Diagnosis:
    """The matches (best first, explained), what to check next and the near misses of one fact set.

    An engine's diagnosis is lazy: each part is computed the first time it is read, so a caller
    that needs only the best rule (`top_rule`, `specific`, as `scan` does) never pays for causes,
    near misses and next checks. Reading a part always gives the same result as computing it
    eagerly would."""

    def __init__(
        self,
        facts: dict[str, FactValue],
        matches: list[Match] | None = None,
        next_checks: list[NextCheck] | None = None,
        near_misses: list[NearMiss] | None = None,
        *,
        explanation: Explanation | None = None,
        inferred: list[InferredFact] | None = None,
    ) -> None:
        if explanation is None and matches is None:
            matches = []
        self.facts = facts
        self._explanation = explanation
        self._matches = matches
        self._next_checks = next_checks if next_checks is not None or explanation is not None else []
        self._near_misses = near_misses if near_misses is not None or explanation is not None else []
        self._specific: bool | None = None
        # Context facts worked out from the input (not stated by the reader), with their evidence.
        self.inferred: list[InferredFact] = inferred if inferred is not None else []

    @property
    def matches(self) -> list[Match]:
        if self._matches is None:
            assert self._explanation is not None
            self._matches = self._explanation.matches()
        return self._matches

    @property
    def next_checks(self) -> list[NextCheck]:
        if self._next_checks is None:
            assert self._explanation is not None
            self._next_checks = self._explanation.next_checks()
        return self._next_checks

    @property
    def near_misses(self) -> list[NearMiss]:
        if self._near_misses is None:
            assert self._explanation is not None
            self._near_misses = self._explanation.near_misses()
        return self._near_misses

    @property
    def specific(self) -> bool:
        """True when at least one specific (not generic) rule matched."""
        if self._matches is None:
            # The best rule is specific iff any match is: specific rules rank first.
            top = self.top_rule
            return top is not None and top.kind is Kind.SPECIFIC
        return any(m.rule.kind is Kind.SPECIFIC for m in self._matches)

    @property
    def top(self) -> Match | None:
        return self.matches[0] if self.matches else None

    @property
    def top_rule(self) -> Rule | None:
        """The best matching rule, without explaining any match when they are not computed yet."""
        if self._matches is None:
            assert self._explanation is not None
            return self._explanation.top_rule()
        return self._matches[0].rule if self._matches else None

    def __repr__(self) -> str:
        return f"Diagnosis(facts={self.facts!r}, matches={[m.rule.id for m in self.matches]!r})"

    def to_dict(self, lang: str = SOURCE_LANGUAGE) -> dict[str, Any]:
        return {
            "facts": dict(self.facts),
            "inferred": [fact.to_dict() for fact in self.inferred],
            "specific": self.specific,
            "matches": [m.to_dict(self.facts, lang) for m in self.matches],
            "next_checks": [c.to_dict(lang) for c in self.next_checks],
            "near_misses": [
                {"rule": n.rule.id, "title": _rendered(n.rule, lang).head["title"], "failed": _leaf_reason(n.failed, self.facts, lang)}
                for n in self.near_misses
            ],
        }


@dataclass
class _RenderedRule:
    """The parts of a match's JSON that depend only on the rule and the language."""

    rule: Rule  # held so that the id keying this entry cannot be reused while it exists
    head: dict[str, Any]
    causes: dict[str, dict[str, str]]
    fixes: dict[str, dict[str, Any]]
    language: str


# (id(rule), lang) -> rendered texts. Bounded: FIFO eviction beyond this many entries (a knowledge
# base has hundreds of rules; the bound only matters for processes that load many of them).
RENDER_CACHE_SIZE = 4096
_render_cache: dict[tuple[int, str], _RenderedRule] = {}


def _rendered(rule: Rule, lang: str) -> _RenderedRule:
    key = (id(rule), lang)
    entry = _render_cache.get(key)
    if entry is not None and entry.rule is rule:
        return entry
    entry = _RenderedRule(
        rule,
        {
            "rule": rule.id,
            "title": rule.text("title", lang),
            "summary": rule.text("summary", lang),
            "kind": rule.kind.value,
            "generic_level": rule.generic_level.value if rule.generic_level else None,
            "family": rule.family,
            "status": rule.status.value,
        },
        {
            cause.id: {
                "id": cause.id,
                "title": rule.text(f"causes.{cause.id}.title", lang),
                "detail": rule.text(f"causes.{cause.id}.detail", lang) if cause.detail else "",
            }
            for cause in rule.causes
        },
        {fix.id: rule.fix_dict(fix, lang) for fix in rule.fixes},
        lang if rule.is_translated(lang) else SOURCE_LANGUAGE,
    )
    while len(_render_cache) >= RENDER_CACHE_SIZE:
        try:
            del _render_cache[next(iter(_render_cache))]
        except (KeyError, RuntimeError, StopIteration):  # another thread evicted it first
            break
    _render_cache[key] = entry
    return entry


def _leaf_reason(leaf: Leaf, facts: dict[str, FactValue], lang: str = SOURCE_LANGUAGE) -> dict[str, Any]:
    name, condition, pattern = _reason_template(leaf, lang)
    return _reason(name, condition, pattern, facts.get(name))


# (field, the test in words, the pattern of a text test that held or None): what a reason needs
# besides the facts.
_ReasonTemplate = tuple[str, str, str | None]

# The longest excerpt a reason quotes: a pattern such as `denied.*policy` can span a whole text.
MAX_EXCERPT = 200


def _reason_template(leaf: Leaf, lang: str) -> _ReasonTemplate:
    pattern = leaf.value if leaf.op == "matches" and not leaf.negated else None
    return (leaf.field, leaf.describe(lang), pattern)


def _reason(name: str, condition: str, pattern: str | None, value: FactValue | None) -> dict[str, Any]:
    """One reason: the fact, the test in words, the fact's value and, for a text test that held,
    `excerpt`: the words of the text it matched (None for other tests)."""
    excerpt = None
    if pattern is not None and isinstance(value, str):
        from .textmatch import compile_pattern

        found = compile_pattern(pattern).find(value)
        if found:
            excerpt = found if len(found) <= MAX_EXCERPT else found[: MAX_EXCERPT - 1] + "…"
    return {"field": name, "condition": condition, "value": value, "excerpt": excerpt}
