"""The diagnosis engine: load a knowledge base once, then turn fact sets into ranked, explained
diagnoses. Matching runs on durable-rules (or the Python evaluator); explanation, cause ranking and
next checks use the three-valued Python assessment of the matched rules only."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .diagnosis import CauseAssessment, Diagnosis, Likelihood, Match, NearMiss, NextCheck
from .errors import RuleError
from .evaluate import Assessment, assess
from .facts import normalize_facts, vocabulary
from .loader import KnowledgeBase
from .matching import Branch, DispatchIndex, DispatchKey, PythonMatcher
from .model import Condition, Leaf, Not, Rule, Status, iter_leaves
from .textmatch import PatternSet, folded_text, pattern_plan

if TYPE_CHECKING:
    from .triage import TextDiagnosis

Backend = Literal["durable", "python"]
RULES_ENV = "MAILTRIAGE_RULES"
MAX_NEXT_CHECKS = 5
MAX_NEAR_MISSES = 3
# Explanations kept for reuse, by exact signature. A bulk scan sees a few thousand distinct
# signatures at most; each entry holds one explained fact set (a few kB).
EXPLANATION_CACHE_SIZE = 4096
CACHE_AFTER_DIAGNOSES = 16  # the first diagnoses of an engine are not cached (see diagnose)
_PRESENT = "\0present"  # a free-text field's entry in a signature: its outcomes say the rest
_evict_lock = threading.Lock()
_SERVER_SAID = frozenset({"smtp.reply_code", "smtp.enhanced"})  # observed, never a near-miss lead


def rule_dirs(extra_dirs: Iterable[Path | str] | None = None, bundled: bool = True) -> list[Path]:
    """Bundled rules first, then MAILTRIAGE_RULES folders, then explicit ones (later ones override)."""
    from .resources import bundled_rules_dir

    dirs = [bundled_rules_dir()] if bundled else []
    env = os.environ.get(RULES_ENV, "")
    dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.extend(Path(p) for p in extra_dirs or [])
    return dirs


class Engine:
    """Loaded knowledge base plus a matcher. Safe to share between threads."""

    def __init__(
        self,
        kb: KnowledgeBase | None = None,
        backend: Backend = "durable",
        *,
        explanation_cache_size: int = EXPLANATION_CACHE_SIZE,
    ) -> None:
        """`Engine()` loads the bundled rules (plus MAILTRIAGE_RULES folders), as `Engine.load()` does.

        `explanation_cache_size` bounds the explanations kept for reuse (0: none kept)."""
        if kb is None:
            from .cache import load_cached_knowledge_base

            kb = load_cached_knowledge_base(rule_dirs(None, True), use_cache=True)
        if kb.errors:
            raise RuleError(kb.errors)
        self.kb = kb
        self.rules: dict[str, Rule] = kb.rules
        active = [r for r in kb.rules.values() if r.status is not Status.DEPRECATED]
        self.backend: Backend = backend
        # The cache keeps the index of the active rules (building it is most of this constructor).
        index = kb.dispatch_index if isinstance(kb.dispatch_index, DispatchIndex) else None
        if index is not None and index.rule_ids != {rule.id for rule in active}:
            index = None  # the rules changed since: never match with another set's index
        if backend == "durable":
            from .durable import DurableMatcher

            self.matcher: Any = DurableMatcher(active, index=index)
        else:
            self.matcher = PythonMatcher(active, index=index)
        # Both matchers file the same branches under the same keys; explanation reuses that index.
        self._index: DispatchIndex = self.matcher.index
        self._specificity = {rule.id: rule.specificity for rule in kb.rules.values()}
        # The explanation cache: signature -> explanation, FIFO-evicted beyond the bound.
        self.explanation_cache_size = explanation_cache_size
        self._explanations: dict[Hashable, _Explanation] | None = {} if explanation_cache_size > 0 else None
        self._uncached_left = CACHE_AFTER_DIAGNOSES
        # Exact fact sets seen recently -> (normalised facts, explanation); same bound.
        self._recent: dict[Hashable, tuple[dict[str, Any], _Explanation]] = {}
        # Every text test of the knowledge base (built with the first signature), and per
        # dispatch key the bits of the tests its explanations may make.
        self._text_tests: _TextTests | None = None
        self._key_masks: dict[DispatchKey | None, int] = {}
        tested = {leaf.field for rule in kb.rules.values() for leaf in _all_leaves(rule)}
        specs = vocabulary()
        self._text_fields = frozenset(n for n in tested if n in specs and specs[n].is_text())
        self._typed_fields = frozenset(tested - self._text_fields)
        self._all_patterns = {(leaf.field, leaf.value) for rule in kb.rules.values() for leaf in _all_leaves(rule) if leaf.op == "matches"}
        # Every text pattern of the knowledge base, tested against a text in one pass.
        self._patterns = PatternSet(
            sorted({pattern for _name, pattern in self._all_patterns}),
            extra_words={word for words in self._index.words.values() for word in words},
        )

    @classmethod
    def load(
        cls,
        extra_dirs: Iterable[Path | str] | None = None,
        *,
        bundled: bool = True,
        backend: Backend = "durable",
        use_cache: bool = True,
    ) -> Engine:
        """Load the bundled rules plus `extra_dirs`; raises RuleError if any rule is invalid."""
        from .cache import load_cached_knowledge_base

        dirs = rule_dirs(extra_dirs, bundled)
        missing = [d for d in dirs if not d.exists()]
        if missing:
            from .errors import MailtriageError

            raise MailtriageError(f"rules folder not found: {missing[0]}")
        return cls(load_cached_knowledge_base(dirs, use_cache=use_cache), backend=backend)

    def prepare(self) -> None:
        """Build now what is otherwise built on first use (every durable-rules ruleset, the word
        finder, the text-test index): for a process about to fork workers that share them."""
        build_all = getattr(self.matcher, "build_all", None)
        if build_all is not None:
            build_all()
        self._patterns.build()
        if self._text_tests is None:
            self._text_tests = _TextTests(sorted(self._all_patterns))
        self._uncached_left = 0

    def diagnose_text(self, text: bytes | str, facts: Mapping[str, Any] | None = None, *,
                      kind: str = "auto", source: str = "<input>") -> list[TextDiagnosis]:
        """One diagnosis per record of `text` (a reply, an NDR, log lines), as `diagnose` prints them."""
        from .triage import diagnose_text

        return diagnose_text(text, kind=kind, facts=facts, engine=self, source=source)

    def diagnose(self, raw_facts: Mapping[str, Any]) -> Diagnosis:
        """Match the facts, rank the matches, assess causes and find what to check next.

        The result is lazy (each part is computed when first read) and its explanation is shared
        by every fact set with the same signature (see `_signature`), so a caller that reads only
        the best rule, or asks again about an error already seen, skips the work."""
        cache = self._explanations
        if cache is None or self._uncached_left > 0:
            # Signatures need every relevant text pattern analysed and compiled: more than a
            # one-shot command spends on its answer. The cache starts after a few diagnoses.
            if self._uncached_left > 0:
                self._uncached_left -= 1
            facts = normalize_facts(raw_facts)
            keys = self._index.keys_for(facts, self._patterns.found)
            return Diagnosis(facts, explanation=_Explanation(self, facts, keys, self.matcher.match(facts, keys)))
        # The same fact set again (a retried message, a repeated bounce): no normalising either.
        # The value's type is part of the key because True == 1 and 1 == 1.0 in Python.
        raw_key: Hashable | None = tuple((name, value.__class__, value) for name, value in raw_facts.items())
        try:
            seen = self._recent.get(raw_key)
        except TypeError:  # an unhashable value: normalize_facts will say what is wrong with it
            raw_key = seen = None
        if seen is not None:
            return Diagnosis(dict(seen[0]), explanation=seen[1])
        facts = normalize_facts(raw_facts)
        keys = self._index.keys_for(facts, self._patterns.found)  # once for matching and explaining
        signature = self._signature(facts, keys)
        explanation = cache.get(signature)
        if explanation is None:
            explanation = _Explanation(self, facts, keys, self.matcher.match(facts, keys))
            _bounded_put(cache, signature, explanation, self.explanation_cache_size)
        if raw_key is not None:
            _bounded_put(self._recent, raw_key, (dict(facts), explanation), self.explanation_cache_size)
        return Diagnosis(facts, explanation=explanation)

    def _signature(self, facts: dict[str, Any], keys: list[DispatchKey | None]) -> Hashable:
        """Everything the explanation of `facts` depends on, exactly: the dispatch keys (they
        decide the candidates), the value of every typed field some rule tests, and for free text
        whether it is present and the outcome of every text pattern that the matched rules, their
        causes or the candidates could test. Two fact sets with the same signature get the same
        matches, causes, fixes, near misses and next checks; only the facts quoted differ."""
        typed = self._typed_fields
        texts = self._text_fields
        values: list[tuple[str, Any]] = []
        for name, value in facts.items():
            if name in typed:
                values.append((name, value))
            elif name in texts:
                values.append((name, _PRESENT))
        key_tuple = tuple(keys)
        tests = self._text_tests
        if tests is None:
            tests = self._text_tests = _TextTests(sorted(self._all_patterns))
        mask = 0
        masks = self._key_masks
        for key in keys:
            key_mask = masks.get(key)
            if key_mask is None:
                key_mask = masks[key] = tests.mask(self._patterns_of_key(key))
            mask |= key_mask
        outcomes = tests.outcomes(facts, self._patterns, mask)
        values.sort()
        return (key_tuple, tuple(values), outcomes)

    def _patterns_of_key(self, key: DispatchKey | None) -> set[tuple[str, str]]:
        """The text tests (field, pattern) that explaining a query with this key may make: those of
        the key's rules and of their causes."""
        return {
            (leaf.field, leaf.value)
            for branch in self._index.by_key[key]
            for leaf in _all_leaves(self.rules[branch.rule_id])
            if leaf.op == "matches"
        }

    def _explain(self, rule: Rule, assessor: _Assessor) -> Match:
        assess = assessor.assess
        why = list(dict.fromkeys(assess(rule.match).held))  # branches may share leaves
        why.sort(key=lambda leaf: leaf.negated)  # what held before what was ruled out
        causes = []
        for cause in rule.causes:
            likely = assess(cause.likely_when) if cause.likely_when else None
            unlikely = assess(cause.unlikely_when) if cause.unlikely_when else None
            if unlikely is not None and unlikely.value is True:
                causes.append(CauseAssessment(cause, Likelihood.UNLIKELY, unlikely.held))
            elif likely is not None and likely.value is True:
                causes.append(CauseAssessment(cause, Likelihood.LIKELY, likely.held))
            else:
                causes.append(CauseAssessment(cause, Likelihood.POSSIBLE, []))
        order = {Likelihood.LIKELY: 0, Likelihood.POSSIBLE: 1, Likelihood.UNLIKELY: 2}
        # Within a level, stronger evidence first (a text match says more than a stage or a code);
        # ties keep the authors' order.
        causes.sort(key=lambda c: (order[c.likelihood], -_evidence(c)))
        rank = {c.cause.id: index for index, c in enumerate(causes)}
        fixes = sorted(
            rule.fixes,
            key=lambda f: min((rank.get(a, len(rank)) for a in f.addresses), default=-1),
        )
        return Match(rule=rule, why=why, causes=causes, fixes=fixes)

    def _rank_key(self, rule: Rule, why: int) -> tuple[int, bool, int, str]:
        return (-self._specificity[rule.id], rule.status is Status.EXPERIMENTAL, -why, rule.id)

    def _near_misses(self, candidates: list[Branch], matched: set[str], assessor: _Assessor) -> list[NearMiss]:
        """Specific rules, among those sharing a dispatch key with the facts, that one known fact
        kept from matching: every other condition of the branch (at least two) held. Those with more conditions
        held come first (a rule that matched the code, the wording and the reporter but not the
        stage is a better lead than one that matched only the code)."""
        near: dict[str, tuple[int, NearMiss]] = {}
        reportable = _reportable_fields()
        for branch in candidates:
            rule_id = branch.rule_id
            if rule_id in matched or self._specificity[rule_id] < 3 or reportable.isdisjoint(branch.positive_fields):
                continue
            failed: Assessment | None = None
            held = 0
            for conjunct in branch.conjuncts:
                result = assessor.assess(conjunct)
                if result.value is True:
                    held += 1
                elif result.value is False and failed is None and self._worth_reporting(conjunct, result):
                    failed = result
                else:  # a second failure, an unknown fact (next checks ask for it) or not worth it
                    break
            else:
                # One held condition (usually the dispatch key itself) is too little to call it close.
                if failed is not None and held >= 2 and (rule_id not in near or near[rule_id][0] < held):
                    near[rule_id] = (held, NearMiss(self.rules[rule_id], failed.failed[0]))
        ranked = sorted(near.values(), key=lambda entry: (-entry[0], entry[1].rule.id))
        return [miss for _held, miss in ranked[:MAX_NEAR_MISSES]]

    @staticmethod
    def _worth_reporting(conjunct: Condition, result: Assessment) -> bool:
        """A failure on a fact the reader supplies or can check (the context: reporting system,
        direction, whose server answered...; the fields with a question, such as probe results). Not: what the server said (its
        codes and wording identify a different error, not an almost-match), nor a `not` (a
        deliberate exclusion, such as a fallback rule stepping aside for a specific one)."""
        return not isinstance(conjunct, Not) and len(result.failed) == 1 and result.failed[0].field in _reportable_fields()

    def _next_checks(self, facts: dict[str, Any], matches: list[Match], candidates: list[Branch], assessor: _Assessor) -> list[NextCheck]:
        """Unknown facts whose answer changes what is on screen: the order of the best matches'
        causes, or which rule comes out on top. A question whose every answer leaves both as they
        are is not asked (a Gmail DMARC rejection asks nothing about connectors, TCP or TLS).

        Who reported the error and which way the mail was going come first: they decide which
        rules apply at all, the other questions refine the causes within one."""
        fields = vocabulary()
        subjects: dict[str, list[str]] = {}
        changes: dict[str, int] = {}

        def askable(field: str) -> bool:
            spec = fields.get(field)
            return spec is not None and spec.question is not None and field not in facts

        def note(field: str, subject: str) -> None:
            found = subjects.setdefault(field, [])
            if subject not in found:
                found.append(subject)

        top = self._specificity[matches[0].rule.id] if matches else 0
        best = [m for m in matches if self._specificity[m.rule.id] == top][:3]
        deciding: dict[str, list[Leaf]] = {}
        for match in best:
            for assessed in match.causes:
                for condition in (assessed.cause.likely_when, assessed.cause.unlikely_when):
                    if condition is None:
                        continue
                    for leaf in assessor.assess(condition).unknown:
                        if askable(leaf.field):
                            deciding.setdefault(leaf.field, []).append(leaf)
                            note(leaf.field, f"{match.rule.id}/{assessed.cause.id}")
        top_changes: dict[str, int] = {}  # how many different orders of the first match's causes
        if deciding:
            baseline = _cause_orders(best)
            for name, leaves in deciding.items():
                outcomes = {baseline}
                first = {baseline[:1]}
                for value in _trial_values(fields[name], leaves):
                    trial = _Assessor({**facts, name: value})
                    orders = _cause_orders([self._explain(m.rule, trial) for m in best])
                    outcomes.add(orders)
                    first.add(orders[:1])
                if len(outcomes) > 1:
                    changes[name] = changes.get(name, 0) + len(outcomes) - 1
                    top_changes[name] = len(first) - 1
        matched = {m.rule.id for m in matches}
        for branch in candidates:
            # A rule that would rank below the best one would not change what is read first.
            if branch.rule_id in matched or (matches and self._specificity[branch.rule_id] < top):
                continue
            # Only an unknown fact with a question can be noted: a branch testing none that is
            # missing here has nothing to ask, whatever its value.
            for name in branch.askable_fields:
                if name not in facts:
                    break
            else:
                continue
            # Conjunct by conjunct (memoised, shared with near misses): most candidates fail on
            # one conjunct, and then the rest need not be assessed.
            unknown: list[Leaf] = []
            held = 0
            for conjunct in branch.conjuncts:
                result = assessor.assess(conjunct)
                if result.value is False:
                    break
                held += len(result.held)
                unknown.extend(result.unknown)
            else:
                if unknown and held and all(askable(leaf.field) for leaf in unknown) and (
                    not matches or self._would_lead(branch.rule_id, held + len(unknown), matches[0])
                ):
                    for name in dict.fromkeys(leaf.field for leaf in unknown):
                        note(name, branch.rule_id)
                        changes[name] = changes.get(name, 0) + 1
                        top_changes[name] = top_changes.get(name, 0) + 1  # it would lead
        ranked = sorted(
            changes,
            key=lambda name: (name not in _ASKED_FIRST, _ASKED_FIRST.index(name) if name in _ASKED_FIRST else 0,
                              -top_changes.get(name, 0), -changes[name], -len(subjects.get(name, ())), name),
        )[:MAX_NEXT_CHECKS]
        checks = []
        for name in ranked:
            spec = fields[name]
            assert spec.question is not None and spec.how is not None
            checks.append(NextCheck(name, dict(spec.question), dict(spec.how), subjects.get(name, [])))
        return checks

    def _would_lead(self, rule_id: str, conditions: int, best: Match) -> bool:
        """Whether `rule_id`, matching on `conditions` facts, would sort above the best match
        (the order of `diagnose`: specificity, stable before experimental, more reasons first)."""
        # A tie, settled only by the rule ids' alphabetical order, is not a reason to ask.
        rule = self.rules[rule_id]
        key = (-self._specificity[rule_id], rule.status is Status.EXPERIMENTAL, -conditions)
        top = (-self._specificity[best.rule.id], best.rule.status is Status.EXPERIMENTAL, -len(best.why))
        return key < top


# Who reported the error and which way the mail went decide which rules apply at all.
_ASKED_FIRST = ("context.system", "context.direction")


def _cause_orders(matches: list[Match]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(c.cause.id for c in m.causes) for m in matches)


def _trial_values(spec: Any, leaves: list[Leaf]) -> list[Any]:
    """Answers worth trying for a field: its allowed values, or the values its conditions test."""
    if spec.type == "boolean":
        return [True, False]
    if spec.enum is not None:
        return list(spec.enum)
    values: list[Any] = []
    for leaf in leaves:
        if leaf.op == "equals":
            values.append(leaf.value)
        elif leaf.op == "one_of":
            values.extend(leaf.value)
        elif leaf.op in ("less_than", "at_most", "greater_than", "at_least") and spec.type in ("integer", "number"):
            limit = leaf.value
            values.extend([limit - 1, limit, limit + 1])
    return list(dict.fromkeys(values))


@functools.cache
def _reportable_fields() -> frozenset[str]:
    """Facts a near miss may name: the context the reader supplies and the facts they can check
    (those with a question), but not the server's own codes."""
    return frozenset(
        name
        for name, spec in vocabulary().items()
        if (spec.question is not None or name.startswith("context.")) and name not in _SERVER_SAID
    )


class _TextTests:
    """Outcomes of (field, pattern) tests as one integer (bit i: test i held), in one pass per
    text: each pattern's alternatives are filed under their necessary words, so only those whose
    words occur in the text run (a text contains few of them); `mask` limits the run to the tests
    a query's explanation may make."""

    def __init__(self, tests: list[tuple[str, str]]) -> None:
        self.bits = {test: 1 << number for number, test in enumerate(tests)}
        by_field: dict[str, tuple[dict[str, list[tuple[int, bool, Callable[[str, str], bool]]]], list[tuple[int, Callable[[str, str], bool]]]]] = {}
        for (name, pattern), bit in self.bits.items():
            index, always = by_field.setdefault(name, ({}, []))
            plan = pattern_plan(pattern)
            for words, exact, search in plan.alternatives:
                for word in words:
                    index.setdefault(word, []).append((bit, exact, search))
            if plan.rest is not None:
                always.append((bit, plan.rest))
        self.fields = [(name, index, frozenset(index), always) for name, (index, always) in by_field.items()]

    def mask(self, tests: Iterable[tuple[str, str]]) -> int:
        mask = 0
        for test in tests:
            mask |= self.bits[test]
        return mask

    def outcomes(self, facts: Mapping[str, Any], patterns: PatternSet, mask: int) -> int:
        outcomes = 0
        for name, index, words, always in self.fields:
            text = facts.get(name)
            if not isinstance(text, str):
                continue
            folded = folded_text(text)
            found = patterns.found(text)
            present = (found & words) if found is not None else [word for word in words if word in folded]
            for word in present:
                for bit, exact, search in index[word]:
                    if mask & bit and not outcomes & bit and (exact or search(text, folded)):
                        outcomes |= bit
            for bit, rest in always:
                if mask & bit and not outcomes & bit and rest(text, folded):
                    outcomes |= bit
        return outcomes


class _Explanation:
    """The explanation of one fact set, each part computed on first use. Shared (through the
    engine's cache) by every fact set with the same signature, which it explains identically."""

    def __init__(self, engine: Engine, facts: dict[str, Any], keys: list[DispatchKey | None], matched: set[str]) -> None:
        self.engine = engine
        self.facts = facts
        self.keys = keys
        self.matched = matched
        self._assessor: _Assessor | None = _Assessor(facts)
        self._matches: list[Match] | None = None
        self._top: tuple[Rule | None] | None = None
        self._candidates: list[Branch] | None = None
        self._near: list[NearMiss] | None = None
        self._next: list[NextCheck] | None = None

    def _assessor_now(self) -> _Assessor:
        # Dropped once every part is computed (the cache then holds results, not the memo).
        return self._assessor or _Assessor(self.facts)

    def top_rule(self) -> Rule | None:
        if self._matches is not None:
            return self._matches[0].rule if self._matches else None
        if self._top is None:
            engine = self.engine
            rules = [engine.rules[rule_id] for rule_id in self.matched]
            if not rules:
                self._top = (None,)
            else:
                # Rank on specificity and status first; the held-condition count (which needs an
                # assessment) only breaks ties between the best, as in the full ranking.
                best = min(engine._rank_key(rule, 0)[:2] for rule in rules)
                tied = [rule for rule in rules if engine._rank_key(rule, 0)[:2] == best]
                if len(tied) > 1:
                    assess = self._assessor_now().assess
                    tied.sort(key=lambda rule: engine._rank_key(rule, len(dict.fromkeys(assess(rule.match).held))))
                self._top = (tied[0],)
        return self._top[0]

    def matches(self) -> list[Match]:
        if self._matches is None:
            engine = self.engine
            assessor = self._assessor_now()
            matches = [engine._explain(engine.rules[rule_id], assessor) for rule_id in self.matched]
            matches.sort(key=lambda m: engine._rank_key(m.rule, len(m.why)))
            self._matches = matches
            self._release()
        return self._matches

    def _candidate_branches(self) -> list[Branch]:
        if self._candidates is None:
            self._candidates = self.engine._index.candidates(self.facts, self.keys)
        return self._candidates

    def near_misses(self) -> list[NearMiss]:
        if self._near is None:
            self._near = self.engine._near_misses(self._candidate_branches(), self.matched, self._assessor_now())
            self._release()
        return self._near

    def next_checks(self) -> list[NextCheck]:
        if self._next is None:
            matches = self.matches()
            self._next = self.engine._next_checks(self.facts, matches, self._candidate_branches(), self._assessor_now())
            self._release()
        return self._next

    def _release(self) -> None:
        if self._matches is not None and self._near is not None and self._next is not None:
            self._assessor = None
            self._candidates = None


def _all_leaves(rule: Rule) -> list[Leaf]:
    """The leaves of a rule's condition and of its causes' conditions."""
    leaves = iter_leaves(rule.match)
    for cause in rule.causes:
        for condition in (cause.likely_when, cause.unlikely_when):
            if condition is not None:
                leaves.extend(iter_leaves(condition))
    return leaves


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any, bound: int) -> None:
    """Insert, evicting the oldest entries (FIFO) beyond `bound`."""
    with _evict_lock:
        while len(cache) >= bound:
            del cache[next(iter(cache))]
        cache[key] = value


class _Assessor:
    """Three-valued assessments of conditions against one fact set, each computed once."""

    def __init__(self, facts: dict[str, Any]) -> None:
        self.facts = facts
        # Every node assessed, by identity: conditions are immutable parts of the loaded rules,
        # which outlive the diagnosis, so an id cannot be reused while this memo exists.
        self._done: dict[int, Assessment] = {}

    def assess(self, condition: Condition) -> Assessment:
        return assess(condition, self.facts, self._done)


def _evidence(assessed: CauseAssessment) -> int:
    if assessed.likelihood is not Likelihood.LIKELY:
        return 0
    return sum(2 if leaf.op == "matches" else 1 for leaf in dict.fromkeys(assessed.because))
