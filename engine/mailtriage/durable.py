"""The durable-rules matcher. This is the only module that imports durable-rules.

durable-rules 2.0.28 has measured traps (see the project notes); each is handled here:
- events are consumed by the first rule that fires: we assert *facts* and retract them;
- a session per query plus `delete_state` leaks, caps at 1024 sessions and can segfault: one fixed
  session per ruleset, assert, drain every pending action, retract in `finally`;
- a condition node holds at most 511 distinct children (beyond that, create or assert hangs), 255
  identical chains, 128 `$or`/`$nex` forward nodes: branches are partitioned by a dispatch key
  (the key's equality is the first condition, so the root has one child per ruleset) and chunked;
- its regex dialect ignores `\\d`, `^`, `(?i)` and misses some real matches: every `matches` test is
  run with Python's `re` and handed over as a boolean fact;
- strings are compared as raw JSON text and string/number comparisons are unreliable: only
  normalised, typed, non-free-text values are asserted (free text only as a presence marker);
- the C extension holds the GIL and shares session state: one lock around each query;
- `$nex` misfires when the same ruleset also tests the field (found by our property tests: with
  `$eq f v` beside it, `$nex f` fires although f is present): presence is handed over as a boolean
  fact `px.<field>` and `$ex`/`$nex` are never used;
- errors at assert time (such as 303, more than 64 matching siblings) fall back to the Python
  evaluator for that ruleset.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine as _dre

from .evaluate import Predicate, compile_condition, holds, leaf_holds
from .facts import FactValue, vocabulary
from .matching import WORD_KEY_PREFIX, Branch, DispatchIndex, DispatchKey
from .model import All, AnyOf, Condition, Leaf, Not, Rule

MAX_BRANCHES_PER_RULESET = 250
MAX_FORWARD_NODES_PER_RULESET = 100  # $or/$nex under one node: the engine fails at 129
MAX_GROUPS_PER_RULE = 15  # each $and/$or takes 2 of 32 expression slots

_ruleset_counter = itertools.count()


class CompileError(Exception):
    """A branch that durable-rules cannot represent; it is evaluated in Python instead."""


@dataclass
class _Compiled:
    expression: dict[str, Any]
    regexes: set[int]
    presence: set[str]
    forward_nodes: int
    groups: int


class _RegexTable:
    """Distinct (field, pattern) tests, each handed to durable-rules as the fact `rx.r<N>`."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], int] = {}
        self.leaves: list[Leaf] = []

    def id_for(self, leaf: Leaf) -> int:
        key = (leaf.field, leaf.value)
        if key not in self.ids:
            self.ids[key] = len(self.leaves)
            self.leaves.append(leaf)
        return self.ids[key]


def _is_text(name: str) -> bool:
    spec = vocabulary().get(name)
    return spec is not None and spec.is_text()


class _Compiler:
    def __init__(self, regexes: _RegexTable) -> None:
        self.regexes = regexes
        self.used: set[int] = set()
        self.presence: set[str] = set()
        self.forward = 0
        self.groups = 0

    def compile(self, condition: Condition, negate: bool = False) -> dict[str, Any]:
        if isinstance(condition, Not):
            return self.compile(condition.child, not negate)
        if isinstance(condition, (All, AnyOf)):
            conjunction = isinstance(condition, All) != negate  # De Morgan
            parts = [self.compile(child, negate) for child in condition.children]
            return self._group("$and" if conjunction else "$or", parts)
        return self._leaf(condition, negate)

    def _group(self, op: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        if len(parts) == 1:
            return parts[0]
        self.groups += 1
        if op == "$or":
            self.forward += 1
        return {op: parts}

    def _leaf(self, leaf: Leaf, negate: bool) -> dict[str, Any]:
        name, op, value = leaf.field, leaf.op, leaf.value
        if op == "matches":
            flag = f"rx.r{self.regexes.id_for(leaf)}"
            self.used.add(self.regexes.id_for(leaf))
            return {"$eq": {flag: not negate}}
        if op == "exists":
            return self._presence(name, bool(value) != negate)
        if _is_text(name):
            raise CompileError(f"{name} is free text; only 'matches' and 'exists' apply")
        if op == "one_of":
            if negate:
                # Absent, or present and different from every value.
                return self._group("$or", [self._absent(name), self._group("$and", [{"$neq": {name: v}} for v in value])])
            return self._group("$or", [{"$eq": {name: v}} for v in value])
        if op == "equals":
            return self._group("$or", [self._absent(name), {"$neq": {name: value}}]) if negate else {"$eq": {name: value}}
        durable_op, inverse = {
            "less_than": ("$lt", "$gte"),
            "at_most": ("$lte", "$gt"),
            "greater_than": ("$gt", "$lte"),
            "at_least": ("$gte", "$lt"),
        }[op]
        if negate:
            return self._group("$or", [self._absent(name), {inverse: {name: value}}])
        return {durable_op: {name: value}}

    def _absent(self, name: str) -> dict[str, Any]:
        return self._presence(name, False)

    def _presence(self, name: str, present: bool) -> dict[str, Any]:
        self.presence.add(name)
        return {"$eq": {f"px.{presence_key(name)}": present}}


def compile_branch(branch: Branch, key: DispatchKey | None, regexes: _RegexTable) -> _Compiled:
    """The durable-rules expression of one branch, its dispatch key's equality first."""
    compiler = _Compiler(regexes)
    parts: list[dict[str, Any]] = []
    if key is not None and key[0].startswith(WORD_KEY_PREFIX):
        # Asserted only when the word is in the text: the ruleset's shared first condition.
        parts.append({"$eq": {"tw.k": True}})
        rest: tuple[Condition, ...] = branch.rest
    elif key is not None:
        parts.append({"$eq": {key[0]: key[1]}})
        rest = branch.rest
    else:
        rest = branch.condition.children if isinstance(branch.condition, All) else (branch.condition,)
    parts.extend(compiler.compile(part) for part in rest)
    expression = compiler._group("$and", parts)
    if compiler.groups > MAX_GROUPS_PER_RULE:
        raise CompileError(f"{compiler.groups} and/or groups (durable-rules allows {MAX_GROUPS_PER_RULE})")
    return _Compiled(expression, compiler.used, compiler.presence, compiler.forward, compiler.groups)


def presence_key(name: str) -> str:
    return name.replace(".", "_")


@dataclass
class _Ruleset:
    """One durable-rules ruleset: a chunk of branches sharing a dispatch key."""

    key: DispatchKey | None
    branches: list[Branch]
    compiled: list[_Compiled]
    regex_ids: set[int] = field(default_factory=set)
    presence: set[str] = field(default_factory=set)
    handle: int | None = None
    broken: str | None = None  # why durable-rules could not take it; then Python evaluates it
    regex_members: list[tuple[str, Leaf]] = field(default_factory=list)
    presence_members: list[tuple[str, str]] = field(default_factory=list)

    def definition(self) -> dict[str, Any]:
        return {f"b{i}": {"all": [{"m": c.expression}]} for i, c in enumerate(self.compiled)}

    def flag_members(self, regexes: _RegexTable) -> None:
        """Precompute the JSON member prefixes of this ruleset's regex and presence flags, so a
        query only fills in true/false."""
        self.regex_members = [(f'"r{i}": ', regexes.leaves[i]) for i in sorted(self.regex_ids)]
        self.presence_members = [(f'"{presence_key(name)}": ', name) for name in sorted(self.presence)]


class _RulesetsByKey(dict[DispatchKey | None, list[_Ruleset]]):
    """Rulesets by dispatch key, compiled the first time a key is looked up."""

    def __init__(self, compile_key: Callable[[DispatchKey | None], list[_Ruleset]]) -> None:
        super().__init__()
        self._compile_key = compile_key

    def __missing__(self, key: DispatchKey | None) -> list[_Ruleset]:
        chunks = self._compile_key(key)  # KeyError for a key the index does not have
        self[key] = chunks
        return chunks


class DurableMatcher:
    """Matches fact sets with durable-rules, partitioned so that no rule-count limit applies."""

    name = "durable"

    def __init__(self, rules: Iterable[Rule], chunk_size: int = MAX_BRANCHES_PER_RULESET) -> None:
        self.index = DispatchIndex(rules)
        self.regexes = _RegexTable()
        self.chunk_size = chunk_size
        # Branches are compiled per dispatch key on first use of the key (a one-shot CLI query
        # touches a handful of keys out of hundreds); `rulesets[key]` compiles on demand.
        self.rulesets: _RulesetsByKey = _RulesetsByKey(self._compile_key)
        self._python_only: dict[DispatchKey | None, list[tuple[Branch, Predicate, str]]] = {}
        self._lock = threading.Lock()
        self._prefix = f"mt{next(_ruleset_counter)}"
        self.fallbacks = 0

    def _compile_key(self, key: DispatchKey | None) -> list[_Ruleset]:
        chunks: list[_Ruleset] = []
        python_only: list[tuple[Branch, Predicate, str]] = []
        current: _Ruleset | None = None
        forward = 0
        for branch in self.index.by_key[key]:
            try:
                compiled = compile_branch(branch, key, self.regexes)
            except CompileError as exc:
                python_only.append((branch, compile_condition(branch.condition), str(exc)))
                continue
            if current is None or len(current.branches) >= self.chunk_size or forward + compiled.forward_nodes > MAX_FORWARD_NODES_PER_RULESET:
                current = _Ruleset(key, [], [])
                chunks.append(current)
                forward = 0
            current.branches.append(branch)
            current.compiled.append(compiled)
            current.regex_ids |= compiled.regexes
            current.presence |= compiled.presence
            forward += compiled.forward_nodes
        self._python_only[key] = python_only
        return chunks

    def _compile_all(self) -> None:
        for key in self.index.by_key:
            self.rulesets[key]  # compiles the key on first access

    @property
    def python_only(self) -> list[tuple[Branch, DispatchKey | None, str]]:
        """Branches durable-rules cannot represent (evaluated in Python), with their key and why."""
        with self._lock:
            self._compile_all()
        return [(branch, key, reason) for key, entries in self._python_only.items() for branch, _test, reason in entries]

    def build_all(self) -> int:
        """Create every ruleset now rather than on first use (for long-running processes and
        benchmarks; the CLI stays lazy). Returns the number of rulesets."""
        with self._lock:
            self._compile_all()
            for chunks in self.rulesets.values():
                for ruleset in chunks:
                    if ruleset.handle is None and ruleset.broken is None:
                        self._build(ruleset)
        return sum(len(chunks) for chunks in self.rulesets.values())

    def _build(self, ruleset: _Ruleset) -> None:
        ruleset.flag_members(self.regexes)
        name = f"{self._prefix}_{next(_ruleset_counter)}"
        try:
            ruleset.handle = _dre.create_ruleset(name, json.dumps(ruleset.definition(), ensure_ascii=False))
        except (_dre.error, MemoryError) as exc:
            ruleset.broken = str(exc)

    def match(self, facts: Mapping[str, FactValue]) -> set[str]:
        keys = self.index.keys_for(facts)
        base = _durable_json(facts)
        matched: set[str] = set()
        texts: dict[tuple[str, str], bool] = {}
        with self._lock:
            for key in keys:  # every key of keys_for is in the index
                for ruleset in self.rulesets[key]:
                    if ruleset.handle is None and ruleset.broken is None:
                        self._build(ruleset)
                    if ruleset.broken is not None:
                        matched |= _python_eval(ruleset.branches, facts)
                        continue
                    matched |= self._query(ruleset, base, facts, texts)
        for key in keys:
            for branch, test, _reason in self._python_only[key]:
                if test(facts):
                    matched.add(branch.rule_id)
        return matched

    def _query(self, ruleset: _Ruleset, base: str, facts: Mapping[str, FactValue], texts: dict[tuple[str, str], bool]) -> set[str]:
        assert ruleset.handle is not None
        # The query's fields are serialised once per query (`base`); each ruleset only adds its
        # own flags as JSON members, which is much cheaper than a json.dumps per ruleset.
        members = []
        if ruleset.regex_members:
            values = []
            for member, leaf in ruleset.regex_members:
                # The same pattern often appears in several rulesets of one query: test it once.
                key = (leaf.field, leaf.value)
                held = texts.get(key)
                if held is None:
                    held = texts[key] = leaf_holds(leaf, facts)
                values.append(f"{member}{'true' if held else 'false'}")
            flags = ", ".join(values)
            members.append(f'"rx": {{{flags}}}')
        if ruleset.key is not None and ruleset.key[0].startswith(WORD_KEY_PREFIX):
            members.append('"tw": {"k": true}')
        if ruleset.presence_members:
            flags = ", ".join(f"{member}{'true' if name in facts else 'false'}" for member, name in ruleset.presence_members)
            members.append(f'"px": {{{flags}}}')
        if not members:
            text = base
        elif base == "{}":
            text = "{" + ", ".join(members) + "}"
        else:
            text = base[:-1] + ", " + ", ".join(members) + "}"
        handle = ruleset.handle
        fired: set[str] = set()
        asserted = False
        try:
            code, offset = _dre.assert_fact(handle, text)
            asserted = code in (0, 2)
            if code == 0:
                result = _dre.start_action_for_state(handle, offset)
                while result:
                    messages = result[1] if isinstance(result, tuple) else result
                    # One action per fired rule: '{"b<index>":{"m":{...the fact...}}}'. Reading the
                    # name off the front avoids decoding the whole fact again.
                    fired.add(ruleset.branches[int(messages[3 : messages.index('"', 3)])].rule_id)
                    result = _dre.complete_and_start_action(handle, offset)
        except _dre.error:
            # e.g. error 303: too many matching siblings for the engine's stack. Python answers instead.
            self.fallbacks += 1
            return _python_eval(ruleset.branches, facts)
        finally:
            if asserted:
                with contextlib.suppress(_dre.error):
                    _dre.retract_fact(handle, text)
        return fired


def _python_eval(branches: list[Branch], facts: Mapping[str, FactValue]) -> set[str]:
    return {branch.rule_id for branch in branches if holds(branch.condition, facts)}


@functools.cache
def _text_fields() -> frozenset[str]:
    return frozenset(name for name, spec in vocabulary().items() if spec.is_text())


def _durable_json(facts: Mapping[str, FactValue]) -> str:
    """Nested fact for durable-rules, as JSON: typed values only; free text only as a presence marker."""
    text_fields = _text_fields()
    nested: dict[str, Any] = {}
    for name, value in facts.items():
        head, _, tail = name.partition(".")
        nested.setdefault(head, {})[tail] = True if name in text_fields else value
    return json.dumps(nested, ensure_ascii=False)
