"""The plain-Python evaluator of condition trees: the explainer and the oracle for durable-rules.

Two readings of one tree:
- `holds` is two-valued, the semantics durable-rules implements: a test of a missing field is
  false, and `not` inverts whatever its child gave.
- `compile_condition` turns a tree into a closure with exactly the semantics of `holds`, for the
  matcher's hot path (no per-node type dispatch at query time);
- `assess` is three-valued (True, False, None = cannot tell yet) and says which leaves held, failed
  or were unknown; diagnosis uses it to rank causes and to find what to check next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .facts import FactValue
from .model import All, AnyOf, Condition, Leaf, Not
from .textmatch import text_search


def leaf_holds(leaf: Leaf, facts: Mapping[str, FactValue]) -> bool:
    value = facts.get(leaf.field)
    op = leaf.op
    if op == "exists":
        return (value is not None) == bool(leaf.value)
    if value is None:
        return False
    if op == "equals":
        return _same(value, leaf.value)
    if op == "one_of":
        return any(_same(value, candidate) for candidate in leaf.value)
    if op == "matches":
        return isinstance(value, str) and text_search(leaf.value)(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    limit = float(leaf.value)
    if op == "less_than":
        return value < limit
    if op == "at_most":
        return value <= limit
    if op == "greater_than":
        return value > limit
    if op == "at_least":
        return value >= limit
    raise ValueError(f"unknown operator {op}")


def _same(fact: FactValue, expected: object) -> bool:
    # Types are normalised before evaluation; bool must not equal 1 here even though it does in Python.
    if isinstance(fact, bool) or isinstance(expected, bool):
        return isinstance(fact, bool) and isinstance(expected, bool) and fact is expected
    return fact == expected


def holds(condition: Condition, facts: Mapping[str, FactValue]) -> bool:
    if isinstance(condition, Leaf):
        return leaf_holds(condition, facts)
    if isinstance(condition, All):
        return all(holds(child, facts) for child in condition.children)
    if isinstance(condition, AnyOf):
        return any(holds(child, facts) for child in condition.children)
    return not holds(condition.child, facts)


Predicate = Callable[[Mapping[str, FactValue]], bool]


def compile_condition(condition: Condition) -> Predicate:
    """A closure equivalent to `holds(condition, facts)`, built once per condition."""
    if isinstance(condition, Leaf):
        return _compile_leaf(condition)
    if isinstance(condition, Not):
        inner = compile_condition(condition.child)
        return lambda facts: not inner(facts)
    parts = tuple(compile_condition(child) for child in condition.children)
    if len(parts) == 1:
        return parts[0]
    if isinstance(condition, All):
        if len(parts) == 2:
            first, second = parts
            return lambda facts: first(facts) and second(facts)
        return lambda facts: all(part(facts) for part in parts)
    if len(parts) == 2:
        first, second = parts
        return lambda facts: first(facts) or second(facts)
    return lambda facts: any(part(facts) for part in parts)


def _compile_leaf(leaf: Leaf) -> Predicate:
    name, op, expected = leaf.field, leaf.op, leaf.value
    if op == "exists":
        wanted = bool(expected)
        return lambda facts: (facts.get(name) is not None) == wanted
    if op == "equals" and isinstance(expected, str):
        # A bool, number or missing value never equals a string, so plain == is `_same` here.
        return lambda facts: facts.get(name) == expected
    if op == "one_of" and all(isinstance(candidate, str) for candidate in expected):
        allowed = frozenset(expected)
        return lambda facts: facts.get(name) in allowed
    if op == "matches":
        search = text_search(expected)
        return lambda facts: isinstance(value := facts.get(name), str) and search(value)
    if op in ("less_than", "at_most", "greater_than", "at_least"):
        limit = float(expected)
        compare: Callable[[float], bool] = {
            "less_than": limit.__gt__,
            "at_most": limit.__ge__,
            "greater_than": limit.__lt__,
            "at_least": limit.__le__,
        }[op]
        return lambda facts: (
            isinstance(value := facts.get(name), (int, float)) and not isinstance(value, bool) and compare(value)
        )
    # Booleans, numbers and mixed one_of lists: the general reading.
    return lambda facts: leaf_holds(leaf, facts)


@dataclass
class Assessment:
    """Three-valued result of a condition, with the leaves behind it."""

    value: bool | None
    held: list[Leaf] = field(default_factory=list)
    failed: list[Leaf] = field(default_factory=list)
    unknown: list[Leaf] = field(default_factory=list)


def assess(condition: Condition, facts: Mapping[str, FactValue], memo: dict[int, Assessment] | None = None) -> Assessment:
    """Three-valued value of `condition`. With `memo` (node id -> result, for one fact set and
    conditions that outlive it), every node is assessed once however often it is asked for."""
    if memo is None:
        return _assess(condition, facts, {})
    return _assess(condition, facts, memo)


def _assess(condition: Condition, facts: Mapping[str, FactValue], memo: dict[int, Assessment]) -> Assessment:
    done = memo.get(id(condition))
    if done is None:
        done = memo[id(condition)] = _assess_node(condition, facts, memo)
    return done


def _assess_node(condition: Condition, facts: Mapping[str, FactValue], memo: dict[int, Assessment]) -> Assessment:
    # The hot path of explanation: lists are passed positionally (no default factories) and each
    # composite walks its parts once.
    if isinstance(condition, Leaf):
        if condition.op != "exists" and condition.field not in facts:
            return Assessment(None, [], [], [condition])
        if leaf_holds(condition, facts):
            return Assessment(True, [condition], [], [])
        return Assessment(False, [], [condition], [])
    if isinstance(condition, Not):
        inner = _assess(condition.child, facts, memo)
        value = None if inner.value is None else not inner.value
        # Under a negation, leaves that failed are the ones that made it hold; they are reported
        # read the other way round ("does not match"), so no reason reads as its opposite.
        return Assessment(value, [leaf.negation() for leaf in inner.failed], [leaf.negation() for leaf in inner.held],
                          inner.unknown)
    parts = [_assess(child, facts, memo) for child in condition.children]
    decisive = not isinstance(condition, All)  # the value that settles an all (False) or an any (True)
    saw_decisive = saw_unknown = False
    for part in parts:
        if part.value is decisive:
            saw_decisive = True
        elif part.value is None:
            saw_unknown = True
    if saw_decisive:
        outcome: bool | None = decisive
        chosen = [p for p in parts if p.value is decisive]
    else:
        outcome = None if saw_unknown else not decisive
        chosen = parts
    held: list[Leaf] = []
    failed: list[Leaf] = []
    unknown: list[Leaf] = []
    for part in chosen:
        held.extend(part.held)
        failed.extend(part.failed)
        unknown.extend(part.unknown)
    return Assessment(outcome, held, failed, unknown)
