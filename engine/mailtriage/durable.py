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
  normalised, typed, non-free-text values are asserted, never free text;
- assert cost grows with the number of properties in the fact (14 us at 30 properties, 66 us at
  100, measured) and a fact holds at most 252: each ruleset is sent only the fields and flags its
  own conditions test, as flat names (`smtp:enhanced`, no nested objects), and a chunk closes
  before its conditions name more than MAX_PROPERTIES_PER_RULESET properties;
- the C extension holds the GIL and shares session state: one lock around each query;
- `$nex` misfires when the same ruleset also tests the field (found by our property tests: with
  `$eq f v` beside it, `$nex f` fires although f is present): presence is handed over as a boolean
  fact `px:<field>` and `$ex`/`$nex` are never used;
- errors at assert time (such as 303, more than 64 matching siblings) fall back to the Python
  evaluator for that ruleset.

Why one ruleset per dispatch key rather than several keys packed into one (measured on the bundled
queries): packing cut asserts from 7.4 to 2.6 per query but not durable-rules' time (48 vs 43 us of
C per query), because the cost follows the properties asserted and the rules fired, and all root
children testing one property share a hash start slot, so a packed root is probed linearly; a
ruleset of all 532 word-key branches also took 116 ms to create, too slow for a one-shot command.
Sharing only the branches that are nothing but their key's equality (the registry rules) did not
pay either: 6.0 instead of 7.4 asserts per query, 139 vs 131 us of CPU per query (interleaved).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_string
from typing import Any

import durable_rules_engine as _dre

from .evaluate import Predicate, compile_condition, holds
from .facts import FactValue, vocabulary
from .matching import WORD_KEY_PREFIX, Branch, DispatchIndex, DispatchKey
from .model import All, AnyOf, Condition, Leaf, Not, Rule
from .textmatch import text_search

MAX_BRANCHES_PER_RULESET = 250
MAX_FORWARD_NODES_PER_RULESET = 100  # $or/$nex under one node: the engine fails at 129
MAX_GROUPS_PER_RULE = 15  # each $and/$or takes 2 of 32 expression slots
MAX_PROPERTIES_PER_RULESET = 200  # a fact may hold 252 (error 302 beyond); keep a margin

_ruleset_counter = itertools.count()


class CompileError(Exception):
    """A branch that durable-rules cannot represent; it is evaluated in Python instead."""


@dataclass
class _Compiled:
    expression: dict[str, Any]
    regexes: set[int]
    presence: set[str]
    fields: set[str]  # fact fields the expression compares (besides regex and presence flags)
    forward_nodes: int
    groups: int


def flat_name(name: str) -> str:
    """The durable-rules property of a fact field. Dots would make durable-rules nest objects,
    and every nested object is one more property to store and probe; field names have no ':'."""
    return name.replace(".", ":")


def presence_flag(name: str) -> str:
    return "px:" + flat_name(name)


def regex_flag(regex_id: int) -> str:
    return f"rx{regex_id}"


WORD_FLAG = "tw"  # asserted (true) into a word key's rulesets: the text contains the word


class _RegexTable:
    """Distinct (field, pattern) tests, each handed to durable-rules as the boolean property `rx<N>`.

    One table per process (`_REGEXES`): the same test gets the same id in every matcher, so the
    same branches compile to the same ruleset text whatever order the keys were first used in,
    and `_built_ruleset` can hand every engine the one ruleset built for that text."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], int] = {}
        self.leaves: list[Leaf] = []
        self._lock = threading.Lock()

    def id_for(self, leaf: Leaf) -> int:
        key = (leaf.field, leaf.value)
        found = self.ids.get(key)
        if found is None:
            with self._lock:
                found = self.ids.get(key)
                if found is None:
                    found = self.ids[key] = len(self.leaves)
                    self.leaves.append(leaf)
        return found


_REGEXES = _RegexTable()

# Every durable-rules ruleset this process built, by the sha256 of its definition: (handle, None)
# or (None, why it could not be built). durable-rules never gives a ruleset's memory back in
# full (each regex leaks ~0.8 MB per build), and each Engine.load() used to build its own: 21 MB
# per load, MemoryError after a few hundred loads. Engines with the same rules now share them.
# A shared ruleset has one session, so every query on any of them runs under `_QUERY_LOCK`
# (the C extension holds the GIL anyway: a lock per engine bought no parallelism).
_BUILT: dict[bytes, tuple[int | None, str | None]] = {}
_BUILT_LOCK = threading.Lock()
_QUERY_LOCK = threading.RLock()


def _built_ruleset(definition: str) -> tuple[int | None, str | None]:
    key = hashlib.sha256(definition.encode("utf-8")).digest()
    with _BUILT_LOCK:
        entry = _BUILT.get(key)
        if entry is None:
            try:
                entry = (_dre.create_ruleset(f"mt_{next(_ruleset_counter)}", definition), None)
            except (_dre.error, MemoryError) as exc:
                entry = (None, str(exc))
            _BUILT[key] = entry
        return entry


def _is_text(name: str) -> bool:
    spec = vocabulary().get(name)
    return spec is not None and spec.is_text()


class _Compiler:
    def __init__(self, regexes: _RegexTable) -> None:
        self.regexes = regexes
        self.used: set[int] = set()
        self.presence: set[str] = set()
        self.fields: set[str] = set()
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
            regex_id = self.regexes.id_for(leaf)
            self.used.add(regex_id)
            return {"$eq": {regex_flag(regex_id): not negate}}
        if op == "exists":
            return self._presence(name, bool(value) != negate)
        if _is_text(name):
            raise CompileError(f"{name} is free text; only 'matches' and 'exists' apply")
        self.fields.add(name)
        prop = flat_name(name)
        absent = self._presence(name, False) if negate else {}
        if op == "one_of":
            if negate:
                # Absent, or present and different from every value.
                return self._group("$or", [absent, self._group("$and", [{"$neq": {prop: v}} for v in value])])
            return self._group("$or", [{"$eq": {prop: v}} for v in value])
        if op == "equals":
            return self._group("$or", [absent, {"$neq": {prop: value}}]) if negate else {"$eq": {prop: value}}
        durable_op, inverse = {
            "less_than": ("$lt", "$gte"),
            "at_most": ("$lte", "$gt"),
            "greater_than": ("$gt", "$lte"),
            "at_least": ("$gte", "$lt"),
        }[op]
        if negate:
            return self._group("$or", [absent, {inverse: {prop: value}}])
        return {durable_op: {prop: value}}

    def _presence(self, name: str, present: bool) -> dict[str, Any]:
        self.presence.add(name)
        return {"$eq": {presence_flag(name): present}}


def compile_branch(branch: Branch, key: DispatchKey | None, regexes: _RegexTable) -> _Compiled:
    """The durable-rules expression of one branch, its dispatch key's equality first."""
    compiler = _Compiler(regexes)
    parts: list[dict[str, Any]] = []
    if key is not None and key[0].startswith(WORD_KEY_PREFIX):
        # Asserted only when the word is in the text: the ruleset's shared first condition.
        parts.append({"$eq": {WORD_FLAG: True}})
        rest: tuple[Condition, ...] = branch.rest
    elif key is not None:
        parts.append({"$eq": {flat_name(key[0]): key[1]}})
        compiler.fields.add(key[0])
        rest = branch.rest
    else:
        rest = branch.condition.children if isinstance(branch.condition, All) else (branch.condition,)
    parts.extend(compiler.compile(part) for part in rest)
    expression = compiler._group("$and", parts)
    if compiler.groups > MAX_GROUPS_PER_RULE:
        raise CompileError(f"{compiler.groups} and/or groups (durable-rules allows {MAX_GROUPS_PER_RULE})")
    return _Compiled(expression, compiler.used, compiler.presence, compiler.fields, compiler.forward, compiler.groups)


@dataclass
class _Ruleset:
    """One durable-rules ruleset: a chunk of branches sharing a dispatch key."""

    key: DispatchKey | None
    branches: list[Branch]
    compiled: list[_Compiled]
    regex_ids: set[int] = field(default_factory=set)
    presence: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    handle: int | None = None
    broken: str | None = None  # why durable-rules could not take it; then Python evaluates it
    # Precomputed JSON members, so that a query only picks the ones that apply:
    field_names: tuple[str, ...] = ()
    # (regex id, text field, test, member if true, member if false)
    regex_members: list[tuple[int, str, Callable[[str], bool], str, str]] = field(default_factory=list)
    presence_members: list[tuple[str, str, str]] = field(default_factory=list)  # field, true, false
    constant_members: tuple[str, ...] = ()  # the word flag of a word key's rulesets
    rule_ids: list[str] = field(default_factory=list)  # by branch index, the name of its action
    gates: tuple[tuple[tuple[int, str, Callable[[str], bool]], ...], ...] | None = None

    def add(self, branch: Branch, compiled: _Compiled) -> None:
        self.branches.append(branch)
        self.compiled.append(compiled)
        self.regex_ids |= compiled.regexes
        self.presence |= compiled.presence
        self.fields |= compiled.fields

    def properties_with(self, compiled: _Compiled) -> int:
        """Properties a fact for this ruleset would carry if `compiled` joined it."""
        return (
            len(self.fields | compiled.fields)
            + len(self.regex_ids | compiled.regexes)
            + len(self.presence | compiled.presence)
            + 1  # the word flag
        )

    def definition(self) -> dict[str, Any]:
        return {f"b{i}": {"all": [{"m": c.expression}]} for i, c in enumerate(self.compiled)}

    def prepare_members(self, regexes: _RegexTable) -> None:
        self.rule_ids = [branch.rule_id for branch in self.branches]
        self.field_names = tuple(sorted(self.fields))
        self.regex_members = [
            (i, regexes.leaves[i].field, text_search(regexes.leaves[i].value), f'"{regex_flag(i)}": true', f'"{regex_flag(i)}": false')
            for i in sorted(self.regex_ids)
        ]
        self.presence_members = [
            (name, f'"{presence_flag(name)}": true', f'"{presence_flag(name)}": false') for name in sorted(self.presence)
        ]
        if self.key is not None and self.key[0].startswith(WORD_KEY_PREFIX):
            self.constant_members = (f'"{WORD_FLAG}": true',)
        # Per branch, the text tests it needs to hold (its top-level `matches` conjuncts); None
        # when some branch needs none, so that no text result can rule the whole ruleset out.
        tests = {member[0]: member[:3] for member in self.regex_members}
        gates = []
        for branch in self.branches:
            needed = tuple(
                tests[regexes.ids[(c.field, c.value)]] for c in branch.conjuncts if isinstance(c, Leaf) and c.op == "matches"
            )
            if not needed:
                break
            gates.append(needed)
        else:
            self.gates = tuple(gates)


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

    def __init__(self, rules: Iterable[Rule], chunk_size: int = MAX_BRANCHES_PER_RULESET, *,
                 index: DispatchIndex | None = None) -> None:
        """`index`: the DispatchIndex of exactly these rules, if one is at hand (the cache keeps one)."""
        self.index = index if index is not None else DispatchIndex(rules)
        self.regexes = _REGEXES
        self.chunk_size = chunk_size
        # Branches are compiled per dispatch key on first use of the key (a one-shot CLI query
        # touches a handful of keys out of hundreds); `rulesets[key]` compiles on demand.
        self.rulesets: _RulesetsByKey = _RulesetsByKey(self._compile_key)
        self._python_only: dict[DispatchKey | None, list[tuple[Branch, Predicate, str]]] = {}
        self._lock = _QUERY_LOCK
        self.fallbacks = 0
        self.asserts = 0  # facts asserted, and rulesets skipped because a text test ruled them out
        self.gated = 0

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
            if (
                current is None
                or len(current.branches) >= self.chunk_size
                or forward + compiled.forward_nodes > MAX_FORWARD_NODES_PER_RULESET
                or current.properties_with(compiled) > MAX_PROPERTIES_PER_RULESET
            ):
                current = _Ruleset(key, [], [])
                chunks.append(current)
                forward = 0
            current.add(branch, compiled)
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
        ruleset.prepare_members(self.regexes)
        handle, broken = _built_ruleset(json.dumps(ruleset.definition(), ensure_ascii=False))
        if broken is not None:
            ruleset.broken = broken
        else:
            ruleset.handle = handle

    def match(self, facts: Mapping[str, FactValue], keys: list[DispatchKey | None] | None = None) -> set[str]:
        """Ids of the rules whose condition holds; `keys` is `self.index.keys_for(facts)` if the
        caller has it already."""
        if keys is None:
            keys = self.index.keys_for(facts)
        members = _field_members(facts)
        matched: set[str] = set()
        texts: dict[int, bool] = {}  # regex id -> held, for this query
        with self._lock:
            for key in keys:  # every key of keys_for is in the index
                for ruleset in self.rulesets[key]:
                    if ruleset.handle is None and ruleset.broken is None:
                        self._build(ruleset)
                    if ruleset.broken is not None:
                        matched |= _python_eval(ruleset.branches, facts)
                        continue
                    self._query(ruleset, members, facts, texts, matched)
        for key in keys:
            for branch, test, _reason in self._python_only[key]:
                if test(facts):
                    matched.add(branch.rule_id)
        return matched

    def _query(
        self,
        ruleset: _Ruleset,
        members: dict[str, str],
        facts: Mapping[str, FactValue],
        texts: dict[int, bool],
        matched: set[str],
    ) -> None:
        """Assert the fact into one ruleset and add the ids of the rules that fired to `matched`."""
        assert ruleset.handle is not None
        gates = ruleset.gates
        if gates is not None:
            # Assert only into rulesets that can match: if every branch needs a text test that
            # failed (tests durable-rules could not make itself), nothing here can fire. This is
            # the word dispatch one step on, with the regex results instead of the necessary words.
            for needed in gates:
                for regex_id, text_field, search in needed:
                    held = texts.get(regex_id)
                    if held is None:
                        held = _text_test(regex_id, text_field, search, facts, texts)
                    if not held:
                        break
                else:
                    break  # this branch can still match
            else:
                self.gated += 1
                return
        # The fact carries only what this ruleset's conditions test; fewer properties, cheaper assert.
        parts = [members[name] for name in ruleset.field_names if name in members]
        for regex_id, text_field, search, true, false in ruleset.regex_members:
            held = texts.get(regex_id)
            if held is None:
                held = _text_test(regex_id, text_field, search, facts, texts)
            parts.append(true if held else false)
        for name, true, false in ruleset.presence_members:
            parts.append(true if name in facts else false)
        parts.extend(ruleset.constant_members)
        text = "{" + ", ".join(parts) + "}"
        handle = ruleset.handle
        self.asserts += 1
        try:
            code, offset = _dre.assert_fact(handle, text)
        except _dre.error:
            # e.g. error 303: too many matching siblings for the engine's stack. Python answers instead.
            self.fallbacks += 1
            matched |= _python_eval(ruleset.branches, facts)
            return
        if code != 0 and code != 2:  # nothing matched, nothing stored
            return
        try:
            if code == 0:
                rule_ids = ruleset.rule_ids
                result = _dre.start_action_for_state(handle, offset)
                while result:
                    messages = result[1] if isinstance(result, tuple) else result
                    # One action per fired rule: '{"b<index>":{"m":{...the fact...}}}'. Reading the
                    # name off the front avoids decoding the whole fact again.
                    matched.add(rule_ids[int(messages[3 : messages.index('"', 3)])])
                    result = _dre.complete_and_start_action(handle, offset)
        except _dre.error:
            self.fallbacks += 1
            matched |= _python_eval(ruleset.branches, facts)
        finally:
            # suppress() would cost a context manager per ruleset and query; the fact is gone either way.
            try:  # noqa: SIM105
                _dre.retract_fact(handle, text)
            except _dre.error:
                pass


def _text_test(
    regex_id: int, text_field: str, search: Callable[[str], bool], facts: Mapping[str, FactValue], texts: dict[int, bool]
) -> bool:
    """Run one regex flag's test and remember it in `texts` for this query: the same pattern often
    appears in several rulesets of one query."""
    value = facts.get(text_field)
    held = texts[regex_id] = isinstance(value, str) and search(value)
    return held


def _python_eval(branches: list[Branch], facts: Mapping[str, FactValue]) -> set[str]:
    return {branch.rule_id for branch in branches if holds(branch.condition, facts)}


@functools.cache
def _member_prefixes() -> dict[str, str]:
    """`"smtp:enhanced": ` for every typed (non-free-text) field."""
    return {name: f'"{flat_name(name)}": ' for name, spec in vocabulary().items() if not spec.is_text()}


def _field_members(facts: Mapping[str, FactValue]) -> dict[str, str]:
    """Each typed fact as a JSON object member; free text never reaches durable-rules."""
    prefixes = _member_prefixes()
    members = {}
    for name, value in facts.items():
        prefix = prefixes.get(name)
        if prefix is None:
            continue
        if isinstance(value, bool):
            members[name] = prefix + ("true" if value else "false")
        elif isinstance(value, str):
            members[name] = prefix + _encode_string(value)
        elif isinstance(value, int):
            members[name] = prefix + str(value)
        else:
            members[name] = prefix + json.dumps(value)
    return members
