"""Which rules match a fact set: the dispatch index shared by both evaluators, and the plain-Python
matcher (the oracle that the durable-rules matcher must agree with).

A rule's `match` is split into branches (the children of a top-level `any`); each branch is filed
under the equality tests on a dispatch field that it requires, so a query only looks at the branches
that can match the fact set's own values, plus those with no such key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .evaluate import Predicate, compile_condition, holds
from .facts import FactValue
from .model import All, AnyOf, Condition, Leaf, Rule

# Most selective first: a branch is filed under the first of these it tests for equality.
DISPATCH_FIELDS = (
    "smtp.enhanced",
    "smtp.enhanced_generic",
    "smtp.enhanced_subject",
    "tls.error",
    "dns.result",
    "tcp.state",
    "smtp.reply_code",
    "outer.enhanced",
    "smtp.enhanced_class",
    "context.remote_provider",
    "context.system",
    "context.direction",
)
_PRIORITY = {name: index for index, name in enumerate(DISPATCH_FIELDS)}

DispatchKey = tuple[str, FactValue]


@dataclass(frozen=True)
class Branch:
    """One alternative of a rule's condition, filed under its dispatch keys."""

    rule_id: str
    index: int
    condition: Condition
    key_leaf: Leaf | None  # the conjunct the keys come from (equals or one_of on a dispatch field)
    rest: tuple[Condition, ...]  # the other conjuncts

    @property
    def keys(self) -> list[DispatchKey | None]:
        if self.key_leaf is None:
            return [None]
        values = self.key_leaf.value if self.key_leaf.op == "one_of" else (self.key_leaf.value,)
        return [(self.key_leaf.field, value) for value in values]

    @property
    def name(self) -> str:
        return f"{self.rule_id}#{self.index}"


def split_branches(rule: Rule) -> list[Branch]:
    alternatives = rule.match.children if isinstance(rule.match, AnyOf) else (rule.match,)
    branches = []
    for index, alternative in enumerate(alternatives):
        conjuncts = alternative.children if isinstance(alternative, All) else (alternative,)
        key_leaf = None
        for conjunct in conjuncts:
            if (
                isinstance(conjunct, Leaf)
                and conjunct.op in ("equals", "one_of")
                and conjunct.field in _PRIORITY
                and (key_leaf is None or _PRIORITY[conjunct.field] < _PRIORITY[key_leaf.field])
            ):
                key_leaf = conjunct
        rest = tuple(c for c in conjuncts if c is not key_leaf)
        branches.append(Branch(rule.id, index, alternative, key_leaf, rest))
    return branches


class DispatchIndex:
    """Branches by dispatch key; `candidates(facts)` lists the ones worth evaluating."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.by_key: dict[DispatchKey | None, list[Branch]] = {}
        for rule in rules:
            for branch in split_branches(rule):
                for key in branch.keys:
                    self.by_key.setdefault(key, []).append(branch)

    def keys_for(self, facts: Mapping[str, FactValue]) -> list[DispatchKey | None]:
        keys: list[DispatchKey | None] = []
        for name in DISPATCH_FIELDS:
            if name in facts:
                key = (name, facts[name])
                if key in self.by_key:
                    keys.append(key)
        if None in self.by_key:
            keys.append(None)
        return keys

    def candidates(self, facts: Mapping[str, FactValue]) -> list[Branch]:
        return [branch for key in self.keys_for(facts) for branch in self.by_key[key]]


class PythonMatcher:
    """Evaluates the candidate branches with the Python evaluator (conditions compiled to closures)."""

    name = "python"

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.index = DispatchIndex(rules)
        # Per dispatch key, (rule id, predicate) of its branches; compiled on first use of the key.
        self._compiled: dict[DispatchKey | None, list[tuple[str, Predicate]]] = {}

    def _branches(self, key: DispatchKey | None) -> list[tuple[str, Predicate]]:
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = [(branch.rule_id, compile_condition(branch.condition)) for branch in self.index.by_key[key]]
            self._compiled[key] = compiled
        return compiled

    def match(self, facts: Mapping[str, FactValue]) -> set[str]:
        return {rule_id for key in self.index.keys_for(facts) for rule_id, test in self._branches(key) if test(facts)}


def naive_match(rules: Iterable[Rule], facts: Mapping[str, FactValue]) -> set[str]:
    """Every rule, no index: the simplest possible reading, used as the reference in tests."""
    return {rule.id for rule in rules if holds(rule.match, facts)}
