"""`compile_condition` (the matcher's fast path) must read every condition exactly as `holds` does,
including the corners where Python's own equality differs from ours (bool vs number, missing
fields, mixed-type one_of lists, numbers compared with strings)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.evaluate import compile_condition, holds
from mailtriage.model import condition_from_dict

FIELDS = ["a.x", "a.y", "b.z"]
VALUES = st.one_of(
    st.booleans(),
    st.sampled_from([0, 1, 2, 450, 450.0, 1.5]),
    st.sampled_from(["", "1", "450", "refused", "Connection REFUSED", "timeoutish", "true"]),
)
PATTERNS = ["refused", "^conn", r"\d+", "timeout", "(?:x|y)"]

leaf = st.one_of(
    st.tuples(st.sampled_from(FIELDS), VALUES).map(lambda t: {"field": t[0], "equals": t[1]}),
    st.tuples(st.sampled_from(FIELDS), st.lists(VALUES, min_size=1, max_size=3)).map(lambda t: {"field": t[0], "one_of": t[1]}),
    st.tuples(st.sampled_from(FIELDS), st.sampled_from(PATTERNS)).map(lambda t: {"field": t[0], "matches": t[1]}),
    st.tuples(
        st.sampled_from(FIELDS), st.sampled_from(["less_than", "at_most", "greater_than", "at_least"]), st.sampled_from([0, 1, 449.5, 450])
    ).map(lambda t: {"field": t[0], t[1]: t[2]}),
    st.tuples(st.sampled_from(FIELDS), st.booleans()).map(lambda t: {"field": t[0], "exists": t[1]}),
)
condition = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=4).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=8,
)
facts = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3)


@settings(max_examples=int(os.environ.get("MAILTRIAGE_HYPOTHESIS_EXAMPLES", "300")), deadline=None)
@given(condition, st.lists(facts, min_size=1, max_size=6))
def test_compiled_condition_agrees_with_holds(data: dict[str, Any], fact_sets: list[dict[str, Any]]) -> None:
    tree = condition_from_dict(data)
    test = compile_condition(tree)
    for fact_set in fact_sets:
        assert test(fact_set) is holds(tree, fact_set)


@pytest.mark.parametrize(
    ("data", "fact_set", "expected"),
    [
        ({"field": "a.x", "equals": 1}, {"a.x": True}, False),  # True == 1 in Python, not here
        ({"field": "a.x", "equals": True}, {"a.x": 1}, False),
        ({"field": "a.x", "equals": True}, {"a.x": True}, True),
        ({"field": "a.x", "equals": 450}, {"a.x": 450.0}, True),
        ({"field": "a.x", "equals": "450"}, {"a.x": 450}, False),
        ({"field": "a.x", "one_of": ["x", 1]}, {"a.x": True}, False),
        ({"field": "a.x", "one_of": ["x", "y"]}, {}, False),
        ({"field": "a.x", "at_least": 1}, {"a.x": True}, False),  # bools are not numbers here
        ({"field": "a.x", "less_than": 500}, {"a.x": "99"}, False),  # nor are numeric strings
        ({"field": "a.x", "matches": "refused"}, {"a.x": "Connection REFUSED"}, True),  # case-insensitive search
        ({"field": "a.x", "matches": "1"}, {"a.x": 1}, False),
        ({"not": {"field": "a.x", "equals": "refused"}}, {}, True),  # a missing field's test is false
        ({"field": "a.x", "exists": False}, {}, True),
    ],
)
def test_compiled_condition_corner_cases(data: dict[str, Any], fact_set: dict[str, Any], expected: bool) -> None:
    tree = condition_from_dict(data)
    assert compile_condition(tree)(fact_set) is expected is holds(tree, fact_set)
