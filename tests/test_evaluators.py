"""The durable-rules matcher and the Python evaluator must return exactly the same matches:
on generated rule sets and fact sets (Hypothesis), and on every bundled rule's examples."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RULES
from mailtriage.durable import DurableMatcher
from mailtriage.facts import normalize_facts
from mailtriage.lint import example_facts
from mailtriage.loader import load_knowledge_base
from mailtriage.matching import PythonMatcher, naive_match
from rulegen import make_rule

# A small vocabulary so that generated rules and facts actually meet.
ENUM_FIELDS = {
    "tcp.state": ["connected", "refused", "timeout", "reset"],
    "dns.result": ["noerror", "nxdomain", "servfail"],
    "context.system": ["exchange-online", "postfix", "gmail"],
    "smtp.enhanced": ["4.4.316", "5.7.1", "5.1.1", "4.7.0"],
}
NUMBER_FIELDS = {"smtp.reply_code": [421, 450, 550, 554], "context.hours_queued": [0.5, 24.0, 48.0]}
BOOL_FIELDS = ["context.migrated_to_cloud", "smtp.starttls_offered"]
TEXTS = ["Connection refused", "timeoutish reply", "mailbox full", "relay access denied", "testes 5.7.1", "", "MAILBOX FULL é", "ſtest refuſed"]
PATTERNS = ["refused", "timeout", "mailbox (full|over)", r"\d\.\d\.\d", "^relay", "test"]

leaf = st.one_of(
    st.sampled_from(sorted(ENUM_FIELDS)).flatmap(lambda f: st.sampled_from(ENUM_FIELDS[f]).map(lambda v: {"field": f, "equals": v})),
    st.sampled_from(sorted(ENUM_FIELDS)).flatmap(
        lambda f: st.lists(st.sampled_from(ENUM_FIELDS[f]), min_size=1, max_size=3, unique=True).map(lambda v: {"field": f, "one_of": v})
    ),
    st.sampled_from(sorted(NUMBER_FIELDS)).flatmap(
        lambda f: st.tuples(st.sampled_from(["less_than", "at_most", "greater_than", "at_least", "equals"]), st.sampled_from(NUMBER_FIELDS[f])).map(
            lambda t: {"field": f, t[0]: t[1]}
        )
    ),
    st.sampled_from(BOOL_FIELDS).flatmap(lambda f: st.booleans().map(lambda v: {"field": f, "equals": v})),
    st.sampled_from(PATTERNS).map(lambda p: {"field": "smtp.text", "matches": p}),
    st.tuples(st.sampled_from(["smtp.text", "tcp.state", "context.migrated_to_cloud"]), st.booleans()).map(lambda t: {"field": t[0], "exists": t[1]}),
)

condition = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=6,
)


@st.composite
def fact_sets(draw: st.DrawFn) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for name, values in {**ENUM_FIELDS, **NUMBER_FIELDS}.items():
        if draw(st.booleans()):
            facts[name] = draw(st.sampled_from(values))
    for name in BOOL_FIELDS:
        if draw(st.booleans()):
            facts[name] = draw(st.booleans())
    if draw(st.booleans()):
        facts["smtp.text"] = draw(st.sampled_from(TEXTS))
    return normalize_facts(facts)


@settings(max_examples=int(os.environ.get("MAILTRIAGE_HYPOTHESIS_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(condition, min_size=1, max_size=12), st.lists(fact_sets(), min_size=1, max_size=8))
def test_durable_and_python_agree_on_generated_rules(conditions: list[dict[str, Any]], facts_list: list[dict[str, Any]]) -> None:
    rules = [make_rule(f"r{i}", c) for i, c in enumerate(conditions)]
    durable = DurableMatcher(rules)
    python = PythonMatcher(rules)
    for facts in facts_list:
        expected = naive_match(rules, facts)
        assert python.match(facts) == expected
        assert durable.match(facts) == expected


_KB = load_knowledge_base([RULES])
_EXAMPLES = [
    pytest.param(rule, kind, index, example, id=f"{rule.id}-{kind}-{index}")
    for rule in _KB.rules.values()
    for kind, examples in (("match", rule.examples_match), ("no_match", rule.examples_no_match))
    for index, example in enumerate(examples)
]


@pytest.fixture(scope="module")
def matchers() -> tuple[DurableMatcher, PythonMatcher]:
    rules = list(_KB.rules.values())
    return DurableMatcher(rules), PythonMatcher(rules)


@pytest.mark.parametrize(("rule", "kind", "index", "example"), _EXAMPLES)
def test_every_rule_example_behaves_and_both_evaluators_agree(
    matchers: tuple[DurableMatcher, PythonMatcher], rule: Any, kind: str, index: int, example: Any
) -> None:
    facts = normalize_facts(example_facts(example))
    durable, python = matchers
    by_python = python.match(facts)
    assert durable.match(facts) == by_python
    assert (rule.id in by_python) == (kind == "match"), f"{rule.source_path} examples.{kind}[{index}]"
