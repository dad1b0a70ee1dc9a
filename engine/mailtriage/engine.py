"""The diagnosis engine: load a knowledge base once, then turn fact sets into ranked, explained
diagnoses. Matching runs on durable-rules (or the Python evaluator); explanation, cause ranking and
next checks use the three-valued Python assessment of the matched rules only."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from .diagnosis import CauseAssessment, Diagnosis, Likelihood, Match, NearMiss, NextCheck
from .errors import RuleError
from .evaluate import assess
from .facts import normalize_facts, vocabulary
from .loader import KnowledgeBase
from .matching import PythonMatcher
from .model import Rule, Status

Backend = Literal["durable", "python"]
RULES_ENV = "MAILTRIAGE_RULES"
MAX_NEXT_CHECKS = 5
MAX_NEAR_MISSES = 3


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

    def __init__(self, kb: KnowledgeBase, backend: Backend = "durable") -> None:
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
        self._explainer = PythonMatcher(active)

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

    def diagnose(self, raw_facts: Mapping[str, Any]) -> Diagnosis:
        """Match the facts, rank the matches, assess causes and find what to check next."""
        facts = normalize_facts(raw_facts)
        matched_ids = self.matcher.match(facts)
        matches = [self._explain(self.rules[rule_id], facts) for rule_id in matched_ids]
        matches.sort(key=lambda m: (-m.rule.specificity, m.rule.status is Status.EXPERIMENTAL, -len(m.why), m.rule.id))
        near = self._near_misses(facts, matched_ids)
        return Diagnosis(facts=facts, matches=matches, next_checks=self._next_checks(facts, matches, near), near_misses=near)

    def _explain(self, rule: Rule, facts: dict[str, Any]) -> Match:
        why = list(dict.fromkeys(assess(rule.match, facts).held))  # branches may share leaves
        causes = []
        for cause in rule.causes:
            likely = assess(cause.likely_when, facts) if cause.likely_when else None
            unlikely = assess(cause.unlikely_when, facts) if cause.unlikely_when else None
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

    def _near_misses(self, facts: dict[str, Any], matched: set[str]) -> list[NearMiss]:
        """Specific rules that failed on exactly one known fact, among those sharing a dispatch key."""
        near: dict[str, NearMiss] = {}
        for branch in self._explainer.index.candidates(facts):
            rule = self.rules[branch.rule_id]
            if rule.id in matched or rule.id in near or rule.specificity < 3:
                continue
            result = assess(branch.condition, facts)
            if result.value is False and len(result.failed) == 1 and result.held:
                near[rule.id] = NearMiss(rule, result.failed[0])
        return sorted(near.values(), key=lambda n: n.rule.id)[:MAX_NEAR_MISSES]

    def _next_checks(self, facts: dict[str, Any], matches: list[Match], near: list[NearMiss]) -> list[NextCheck]:
        """Unknown facts that decide causes of the best matches or candidates that almost matched."""
        fields = vocabulary()
        scores: dict[str, list[str]] = {}

        def note(field: str, subject: str) -> None:
            spec = fields.get(field)
            if spec is None or spec.question is None or field in facts:
                return
            subjects = scores.setdefault(field, [])
            if subject not in subjects:
                subjects.append(subject)

        best = [m for m in matches if m.rule.specificity == (matches[0].rule.specificity if matches else 0)]
        for match in best[:3]:
            for assessed in match.causes:
                for condition in (assessed.cause.likely_when, assessed.cause.unlikely_when):
                    if condition is None:
                        continue
                    for leaf in assess(condition, facts).unknown:
                        note(leaf.field, f"{match.rule.id}/{assessed.cause.id}")
        for branch in self._explainer.index.candidates(facts):
            if branch.rule_id in {m.rule.id for m in matches}:
                continue
            result = assess(branch.condition, facts)
            if result.value is None and result.held:
                for leaf in result.unknown:
                    note(leaf.field, branch.rule_id)
        ranked = sorted(scores.items(), key=lambda item: (-len(item[1]), item[0]))[:MAX_NEXT_CHECKS]
        checks = []
        for name, subjects in ranked:
            spec = fields[name]
            assert spec.question is not None and spec.how is not None
            checks.append(NextCheck(name, dict(spec.question), dict(spec.how), subjects))
        return checks


def _evidence(assessed: CauseAssessment) -> int:
    if assessed.likelihood is not Likelihood.LIKELY:
        return 0
    return sum(2 if leaf.op == "matches" else 1 for leaf in dict.fromkeys(assessed.because))
