"""Which rules match a fact set: the dispatch index shared by both evaluators, and the plain-Python
matcher (the oracle that the durable-rules matcher must agree with).

A rule's `match` is split into branches (the children of a top-level `any`); each branch is filed
under the equality tests on a dispatch field that it requires, so a query only looks at the branches
that can match the fact set's own values, plus those with no such key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .evaluate import Predicate, compile_condition, holds
from .facts import FactValue, askable_fields
from .model import All, AnyOf, Condition, Leaf, Not, Rule, iter_leaves
from .textmatch import WordFinder, _required_words, folded_text

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
# Keys shared by so many rules (every 550, every 5.x.x) that a branch which also needs some words
# in the reply text is better filed under those words: a 550 query then looks only at the rules
# whose wording the text could match, instead of at every rule that tests a 550.
_BROAD_FIELDS = frozenset(DISPATCH_FIELDS[DISPATCH_FIELDS.index("smtp.reply_code") :]) | {"smtp.enhanced_subject"}
WORD_KEY_PREFIX = "~"  # a word key is ("~smtp.text", "user unknown"): the text contains that word
# Shortest word a branch may be filed under. Longer minimums were tried on the bundled rules (5: 364
# vs 316 us per durable query; 7: worse still): most patterns have a short word in some alternative,
# and a branch left under a broad key costs a regex test on every query of that key.
_MIN_DISPATCH_WORD = 3

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
        if self.key_leaf.op == "matches":
            analysis = _required_words(self.key_leaf.value)
            assert analysis is not None
            return [(WORD_KEY_PREFIX + self.key_leaf.field, word) for word in analysis[0]]
        values = self.key_leaf.value if self.key_leaf.op == "one_of" else (self.key_leaf.value,)
        return [(self.key_leaf.field, value) for value in values]

    @property
    def name(self) -> str:
        return f"{self.rule_id}#{self.index}"

    # The conditions that must all hold (the children of an `all`, or the condition itself), those
    # without a text pattern first: a reader stopping at the first failure then often skips the
    # regexes. And the fields tested outside any `not`.
    conjuncts: tuple[Condition, ...] = field(init=False, repr=False, compare=False)
    positive_fields: frozenset[str] = field(init=False, repr=False, compare=False)
    # Fields with a question whose absence makes a test of this branch unknown (`exists` never is):
    # the only facts a next check about this branch could ask for.
    askable_fields: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        conjuncts = self.condition.children if isinstance(self.condition, All) else (self.condition,)
        ordered = tuple(sorted(conjuncts, key=lambda c: any(leaf.op == "matches" for leaf in iter_leaves(c))))
        fields = frozenset(leaf.field for c in conjuncts if not isinstance(c, Not) for leaf in iter_leaves(c))
        object.__setattr__(self, "conjuncts", ordered)  # frozen: set once, here
        object.__setattr__(self, "positive_fields", fields)
        unknowable = {leaf.field for leaf in iter_leaves(self.condition) if leaf.op != "exists"}
        object.__setattr__(self, "askable_fields", tuple(sorted(unknowable & askable_fields())))


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
        if key_leaf is None or key_leaf.field in _BROAD_FIELDS:
            word_leaf = next(
                (
                    c
                    for c in conjuncts
                    if isinstance(c, Leaf) and c.op == "matches" and _dispatch_words(c.value)
                ),
                None,
            )
            if word_leaf is not None:
                # The words are necessary, not sufficient: the regex stays among the conditions.
                branches.append(Branch(rule.id, index, alternative, word_leaf, tuple(conjuncts)))
                continue
        rest = tuple(c for c in conjuncts if c is not key_leaf)
        branches.append(Branch(rule.id, index, alternative, key_leaf, rest))
    return branches


def _dispatch_words(pattern: str) -> bool:
    analysis = _required_words(pattern)
    return analysis is not None and min(len(word) for word in analysis[0]) >= _MIN_DISPATCH_WORD


class DispatchIndex:
    """Branches by dispatch key; `candidates(facts)` lists the ones worth evaluating."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.by_key: dict[DispatchKey | None, list[Branch]] = {}
        self.words: dict[str, list[str]] = {}  # text field -> the words it is dispatched on
        rules = list(rules)
        self.rule_ids = frozenset(rule.id for rule in rules)  # what it was built from
        for rule in rules:
            for branch in split_branches(rule):
                for key in branch.keys:
                    if key is not None and key[0].startswith(WORD_KEY_PREFIX) and key not in self.by_key:
                        self.words.setdefault(key[0][len(WORD_KEY_PREFIX) :], []).append(str(key[1]))
                    self.by_key.setdefault(key, []).append(branch)
        self._finders = {name: WordFinder(words) for name, words in self.words.items()}
        self._word_sets = {name: frozenset(words) for name, words in self.words.items()}
        # The dispatch fields some branch is filed under, most selective first.
        used = {key[0] for key in self.by_key if key is not None}
        self._key_fields = tuple(name for name in DISPATCH_FIELDS if name in used)

    def keys_for(
        self, facts: Mapping[str, FactValue], found: Callable[[str], frozenset[str] | None] | None = None
    ) -> list[DispatchKey | None]:
        """The dispatch keys of `facts`. `found(text)`, if given, returns a superset of the words of
        `self.words` that the text contains (exactly those for these words), or None: one shared
        pass over the text instead of this index's own."""
        keys: list[DispatchKey | None] = []
        by_key = self.by_key
        for name in self._key_fields:
            if name in facts:
                key = (name, facts[name])
                if key in by_key:
                    keys.append(key)
        for name in self.words:
            text = facts.get(name)
            if not isinstance(text, str):
                continue
            prefixed = WORD_KEY_PREFIX + name
            words_found = found(text) if found is not None else None
            if words_found is not None:
                present = sorted(words_found & self._word_sets[name])
            else:
                present = self._finders[name].find(folded_text(text))
            keys.extend((prefixed, word) for word in present)
        if None in self.by_key:
            keys.append(None)
        return keys

    def candidates(self, facts: Mapping[str, FactValue], keys: list[DispatchKey | None] | None = None) -> list[Branch]:
        return [branch for key in (self.keys_for(facts) if keys is None else keys) for branch in self.by_key[key]]


class PythonMatcher:
    """Evaluates the candidate branches with the Python evaluator (conditions compiled to closures)."""

    name = "python"

    def __init__(self, rules: Iterable[Rule], *, index: DispatchIndex | None = None) -> None:
        """`index`: the DispatchIndex of exactly these rules, if one is at hand (the cache keeps one)."""
        self.index = index if index is not None else DispatchIndex(rules)
        # Per dispatch key, (rule id, predicate) of its branches; compiled on first use of the key.
        self._compiled: dict[DispatchKey | None, list[tuple[str, Predicate]]] = {}

    def _branches(self, key: DispatchKey | None) -> list[tuple[str, Predicate]]:
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = [(branch.rule_id, compile_condition(branch.condition)) for branch in self.index.by_key[key]]
            self._compiled[key] = compiled
        return compiled

    def match(self, facts: Mapping[str, FactValue], keys: list[DispatchKey | None] | None = None) -> set[str]:
        if keys is None:
            keys = self.index.keys_for(facts)
        compiled = self._compiled
        matched: set[str] = set()
        for key in keys:
            branches = compiled.get(key)
            if branches is None:
                branches = self._branches(key)
            for rule_id, test in branches:
                if test(facts):
                    matched.add(rule_id)
        return matched


def naive_match(rules: Iterable[Rule], facts: Mapping[str, FactValue]) -> set[str]:
    """Every rule, no index: the simplest possible reading, used as the reference in tests."""
    return {rule.id for rule in rules if holds(rule.match, facts)}
