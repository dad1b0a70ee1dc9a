"""The diagnosis engine: load a knowledge base once, then turn fact sets into ranked, explained
diagnoses. Matching runs on durable-rules (or the Python evaluator); explanation, cause ranking and
next checks use the three-valued Python assessment of the matched rules only."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .diagnosis import CauseAssessment, Diagnosis, Likelihood, Match, NearMiss, NextCheck
from .errors import RuleError
from .evaluate import Assessment, assess
from .facts import normalize_facts, vocabulary
from .loader import KnowledgeBase
from .matching import Branch, DispatchIndex, PythonMatcher
from .model import Condition, Leaf, Not, Rule, Status

if TYPE_CHECKING:
    from .triage import TextDiagnosis

Backend = Literal["durable", "python"]
RULES_ENV = "MAILTRIAGE_RULES"
MAX_NEXT_CHECKS = 5
MAX_NEAR_MISSES = 3
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

    def __init__(self, kb: KnowledgeBase | None = None, backend: Backend = "durable") -> None:
        """`Engine()` loads the bundled rules (plus MAILTRIAGE_RULES folders), as `Engine.load()` does."""
        if kb is None:
            from .cache import load_cached_knowledge_base

            kb = load_cached_knowledge_base(rule_dirs(None, True), use_cache=True)
        if kb.errors:
            raise RuleError(kb.errors)
        self.kb = kb
        self.rules: dict[str, Rule] = kb.rules
        active = [r for r in kb.rules.values() if r.status is not Status.DEPRECATED]
        self.backend: Backend = backend
        if backend == "durable":
            from .durable import DurableMatcher

            self.matcher: Any = DurableMatcher(active)
        else:
            self.matcher = PythonMatcher(active)
        # Both matchers file the same branches under the same keys; explanation reuses that index.
        self._index: DispatchIndex = self.matcher.index
        self._specificity = {rule.id: rule.specificity for rule in kb.rules.values()}

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

    def diagnose_text(self, text: bytes | str, facts: Mapping[str, Any] | None = None, *,
                      kind: str = "auto", source: str = "<input>") -> list[TextDiagnosis]:
        """One diagnosis per record of `text` (a reply, an NDR, log lines), as `diagnose` prints them."""
        from .triage import diagnose_text

        return diagnose_text(text, kind=kind, facts=facts, engine=self, source=source)

    def diagnose(self, raw_facts: Mapping[str, Any]) -> Diagnosis:
        """Match the facts, rank the matches, assess causes and find what to check next."""
        facts = normalize_facts(raw_facts)
        keys = self._index.keys_for(facts)  # computed once for matching and explaining
        matched_ids = self.matcher.match(facts, keys)
        # One diagnosis assesses the same conditions several times (a cause while explaining and
        # again for next checks, a candidate branch for near misses and next checks): memoise.
        assessor = _Assessor(facts)
        matches = [self._explain(self.rules[rule_id], assessor) for rule_id in matched_ids]
        specificity = self._specificity
        matches.sort(key=lambda m: (-specificity[m.rule.id], m.rule.status is Status.EXPERIMENTAL, -len(m.why), m.rule.id))
        candidates = self._index.candidates(facts, keys)
        near = self._near_misses(candidates, matched_ids, assessor)
        next_checks = self._next_checks(facts, matches, candidates, assessor)
        return Diagnosis(facts=facts, matches=matches, next_checks=next_checks, near_misses=near)

    def _explain(self, rule: Rule, assessor: _Assessor) -> Match:
        assess = assessor.assess
        why = list(dict.fromkeys(assess(rule.match).held))  # branches may share leaves
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
