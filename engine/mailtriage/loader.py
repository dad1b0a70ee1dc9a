"""Load a knowledge base from rule folders, collecting every problem instead of stopping at one.

Structure is checked by the JSON Schemas, meaning here: unknown fact fields, values that do not
fit their field, bad regexes, unknown references, duplicate ids, translations. One broken file
never stops the others from loading; each problem carries `file:line:col` and a code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CollectsProblems, FactError, Location, Problem, Severity
from .facts import coerce_value, schema_regex, vocabulary
from .i18n import SOURCE_LANGUAGE, translatable_strings
from .model import LEAF_OPS, Rule, Status, Translation
from .resources import bundled_rules_dir, schema_path
from .textmatch import pattern_problem

if TYPE_CHECKING:
    # Only loading YAML needs PyYAML; the engine imports this module for KnowledgeBase, and a
    # cached knowledge base must not pay for the YAML import (a third of the CLI's start-up).
    from .yamlsource import JsonPath, YamlDocument

_TRANSLATION_NAME = re.compile(r"^(?P<stem>.+)\.(?P<lang>[a-z]{2}(?:-[A-Z]{2})?)\.ya?ml$")
_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
# Nested quantifiers such as (a+)+ or (a*)* can backtrack exponentially.
_ORDERED_OPS = ("less_than", "at_most", "greater_than", "at_least")


@dataclass
class KnowledgeBase(CollectsProblems):
    """Rules that loaded, by id, and every problem found on the way."""

    rules: dict[str, Rule] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # The matching.DispatchIndex of the active rules, built once when the cache is written and
    # read back with it (an Engine builds its own when this is None).
    dispatch_index: Any = field(default=None, compare=False, repr=False)



@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator, ValidationError, validators

    def ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
        # JSON Schema patterns are ECMA-262, where `$` is the very end of the text; Python's `$`
        # also matches before a final newline, which let an id such as "x\n" through.
        if validator.is_type(instance, "string") and not schema_regex(pattern).search(instance):
            yield ValidationError(f"{_short(repr(instance))} does not match {pattern!r}")

    strict = validators.extend(Draft202012Validator, {"pattern": ecma_pattern})  # type: ignore[no-untyped-call]
    with open(schema_path(name), encoding="utf-8") as handle:
        return strict(json.load(handle))


def rule_files(paths: Iterable[Path]) -> Iterator[Path]:
    """YAML files under `paths` (files or folders), skipping the schema folder."""
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            for candidate in sorted(path.rglob("*")):
                if candidate.suffix in (".yaml", ".yml") and "schema" not in candidate.relative_to(path).parts[:-1]:
                    yield candidate


def load_knowledge_base(paths: Iterable[Path], display_root: Path | None = None) -> KnowledgeBase:
    """Load rules and translations from `paths`; later paths override earlier ones by rule id."""
    from .yamlsource import read_yaml

    kb = KnowledgeBase()
    translations: list[tuple[YamlDocument, dict[str, Any]]] = []
    documents: dict[str, YamlDocument] = {}
    origin: dict[str, tuple[int, str]] = {}  # rule id -> (folder index, file) it was last loaded from
    for group_index, group in enumerate(paths):
        seen_here: dict[str, str] = {}
        for file in rule_files([group]):
            shown = _display(file, display_root)
            kb.files.append(shown)
            document, problems = read_yaml(shown if display_root is None else str(file))
            if document is not None:
                document.path = shown
            for problem in problems:
                kb.problems.append(Problem(Location(shown, problem.location.line, problem.location.column), problem.code, problem.message, problem.severity))
            if document is None:
                continue
            if _TRANSLATION_NAME.match(file.name):
                data = _check_schema(document, "translation", kb.problems)
                if data is not None:
                    translations.append((document, data))
                continue
            data = _check_schema(document, "rule", kb.problems)
            if data is None:
                continue
            rule = _build_rule(document, data, kb.problems)
            if rule is None:
                continue
            if rule.id in seen_here:
                kb.problems.append(Problem(document.location(("id",)), "MT004", f"duplicate rule id {rule.id!r} (also in {seen_here[rule.id]})"))
                continue
            seen_here[rule.id] = shown
            rule.source_file = str(file.resolve())
            if group_index > 0 and rule.id in kb.rules:
                # Say whose rule is replaced: the bundled one, or one from an earlier extra folder.
                earlier = origin[rule.id]
                whose = "bundled rule" if earlier[0] == 0 else f"rule from {earlier[1]}:"
                kb.problems.append(Problem(document.location(("id",)), "MT201", f"overrides {whose} {rule.id!r}", Severity.WARNING))
            origin[rule.id] = (group_index, shown)
            kb.rules[rule.id] = rule
            documents[rule.id] = document
    for document, data in translations:
        _attach_translation(kb, document, data)
    _check_references(kb, documents)
    return kb


def _display(file: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(file.relative_to(root))
        except ValueError:
            pass
    return str(file)


@cache
def _glossary() -> dict[str, list[tuple[re.Pattern[str], str]]]:
    """Rejected-term patterns per language from rules/schema/glossary.yaml (see that file)."""
    import yaml

    path = bundled_rules_dir() / "schema" / "glossary.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    out: dict[str, list[tuple[re.Pattern[str], str]]] = {}
    for lang, entries in (data or {}).items() if isinstance(data, dict) else ():
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict) or not isinstance(entry.get("preferred"), str):
                continue
            for term in entry.get("rejected") or ():
                if isinstance(term, str) and term.strip():
                    pattern = re.compile(rf"(?<![\w-]){re.escape(term.strip())}(?![\w-])", re.I)
                    out.setdefault(str(lang), []).append((pattern, entry["preferred"]))
    return out


def glossary_violations(lang: str, text: str) -> list[tuple[str, str]]:
    """(rejected term as written, preferred term) for each glossary term `text` breaks. Code
    spans (`...`) are skipped: commands and quoted UI strings stay as they are."""
    plain = re.sub(r"`[^`]*`", " ", text)
    return [(found.group(0), preferred) for pattern, preferred in _glossary().get(lang, ())
            for found in [pattern.search(plain)] if found]


def _check_schema(document: YamlDocument, schema: str, problems: list[Problem]) -> dict[str, Any] | None:
    from jsonschema.exceptions import best_match

    if not isinstance(document.data, dict):
        # Not a rule at all (a symlink to /etc/passwd, a stray list): say what it is, never echo
        # its content.
        kind = {str: "text", list: "a list", int: "a number", float: "a number", bool: "a boolean"}.get(
            type(document.data), type(document.data).__name__
        )
        problems.append(Problem(document.location(), "MT003", f"not a {schema} file: the document is {kind}, not a mapping of fields"))
        return None

    errors = list(_validator(schema).iter_errors(document.data))
    for error in errors:
        chosen = error
        if error.validator in ("oneOf", "anyOf") and error.context:
            chosen = best_match(error.context)
        json_path = tuple(chosen.absolute_path)
        where = "/".join(str(p) for p in json_path) or "(document)"
        problems.append(Problem(document.location(json_path), "MT003", f"schema: at {where}: {_short(chosen.message)}"))
    if errors or not isinstance(document.data, dict):
        return None
    return document.data


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."


def _build_rule(document: YamlDocument, data: dict[str, Any], problems: list[Problem]) -> Rule | None:
    before = len(problems)
    _check_condition_tree(document, data["match"], ("match",), problems)
    for index, cause in enumerate(data.get("causes") or []):
        for key in ("likely_when", "unlikely_when"):
            if key in cause:
                _check_condition_tree(document, cause[key], ("causes", index, key), problems)
    for kind in ("match", "no_match"):
        for index, example in enumerate((data.get("examples") or {}).get(kind) or []):
            facts = example.get("facts") or {}
            for name, value in facts.items():
                spec = vocabulary().get(name)
                where = document.location(("examples", kind, index, "facts", name))
                if spec is None:
                    problems.append(Problem(where, "MT006", f"example names unknown fact field {name!r}"))
                    continue
                try:
                    coerce_value(spec, value)
                except FactError as exc:
                    problems.append(Problem(where, "MT011", exc.message))
    for index, code in enumerate(data["codes"]):
        parts = code.split()
        if len(parts) == 2 and _ENHANCED.match(parts[1]) and parts[0][0] != parts[1][0]:
            problems.append(Problem(document.location(("codes", index)), "MT005", f"reply code and enhanced code disagree on the class in {code!r}", Severity.WARNING))
    if data["status"] == "deprecated" and "replaced_by" not in data:
        problems.append(Problem(document.location(("status",)), "MT010", "a deprecated rule needs replaced_by"))
    if data["kind"] == "generic" and "generic_level" not in data:
        problems.append(Problem(document.location(("kind",)), "MT003", "a generic rule needs generic_level (class, subject or detail)"))
    cause_ids = [c["id"] for c in data.get("causes") or []]
    for index, cause_id in enumerate(cause_ids):
        if cause_ids.index(cause_id) != index:
            problems.append(Problem(document.location(("causes", index, "id")), "MT004", f"duplicate cause id {cause_id!r}"))
    fix_ids = [f["id"] for f in data.get("fixes") or []]
    for index, fix_id in enumerate(fix_ids):
        if fix_ids.index(fix_id) != index:
            problems.append(Problem(document.location(("fixes", index, "id")), "MT004", f"duplicate fix id {fix_id!r}"))
    for index, fix in enumerate(data.get("fixes") or []):
        for j, target in enumerate(fix.get("addresses") or []):
            if target not in cause_ids:
                problems.append(Problem(document.location(("fixes", index, "addresses", j)), "MT010", f"fix addresses unknown cause {target!r}"))
    for kind in ("match", "no_match"):
        for index, example in enumerate((data.get("examples") or {}).get(kind) or []):
            target = example.get("expect_top_cause")
            if target is not None and target not in cause_ids:
                problems.append(Problem(document.location(("examples", kind, index, "expect_top_cause")), "MT010", f"example expects unknown cause {target!r}"))
    if not data.get("references"):
        problems.append(Problem(document.location(("id",)), "MT103", "rule has no references", Severity.WARNING))
    if data["kind"] == "specific":
        _check_keying(document, data["match"], problems)
        _check_admin_commands(document, data, problems)
    if any(p.severity is Severity.ERROR for p in problems[before:]):
        return None
    normalised = _normalise_values(data)
    return Rule.from_dict(normalised, source_path=document.path)


def _check_condition_tree(document: YamlDocument, node: dict[str, Any], json_path: JsonPath, problems: list[Problem]) -> None:
    for key in ("all", "any"):
        if key in node:
            for index, child in enumerate(node[key]):
                _check_condition_tree(document, child, (*json_path, key, index), problems)
            return
    if "not" in node:
        _check_condition_tree(document, node["not"], (*json_path, "not"), problems)
        return
    name = node["field"]
    spec = vocabulary().get(name)
    op = next(k for k in LEAF_OPS if k in node)
    where = document.location((*json_path, op))
    if spec is None:
        problems.append(Problem(document.location((*json_path, "field")), "MT006", f"unknown fact field {name!r} (see rules/schema/facts.schema.json)"))
        return
    value = node[op]
    if op == "matches":
        if spec.type != "string":
            problems.append(Problem(where, "MT011", f"'matches' needs a text field; {name} is {spec.type}"))
            return
        # Patterns run on RE2 (linear time whatever the pattern), so RE2 decides what compiles.
        why = pattern_problem(value)
        if why is not None:
            problems.append(Problem(where, "MT007", f"regex does not compile with RE2 (no look-around or back-references): {why}"))
        return
    if op == "exists":
        return
    if spec.is_text():
        problems.append(Problem(where, "MT011", f"{name} is free text: test it with 'matches', not {op!r}"))
        return
    if op in _ORDERED_OPS:
        if spec.type not in ("integer", "number"):
            problems.append(Problem(where, "MT011", f"{op!r} needs a numeric field; {name} is {spec.type}"))
        return
    for candidate in value if op == "one_of" else [value]:
        try:
            coerced = coerce_value(spec, candidate)
        except FactError as exc:
            code = "MT005" if name.endswith(("enhanced", "reply_code", "banner_code")) else "MT011"
            problems.append(Problem(where, code, exc.message))
            continue
        if spec.type == "string" and coerced != candidate:
            problems.append(Problem(where, "MT011", f"write {candidate!r} as {coerced!r} (facts are normalised that way)"))


_KEY_FIELDS = {"context.system", "context.remote_provider", "context.direction"}
_CODE_FIELDS = {"smtp.enhanced", "smtp.enhanced_generic", "outer.enhanced"}


def _check_keying(document: YamlDocument, match: dict[str, Any], problems: list[Problem]) -> None:
    """Warn when a branch of a specific rule keys on an enhanced code and nothing else."""
    branches = match.get("any", [match])
    for index, branch in enumerate(branches):
        leaves = branch.get("all", [branch])
        fields = {leaf.get("field") for leaf in leaves if isinstance(leaf, dict)}
        has_text = any(isinstance(leaf, dict) and "matches" in leaf for leaf in leaves)
        if fields & _CODE_FIELDS and not (fields & _KEY_FIELDS) and not has_text:
            json_path: JsonPath = ("match", "any", index) if "any" in match else ("match",)
            problems.append(
                Problem(
                    document.location(json_path),
                    "MT105",
                    "branch keys on an enhanced code alone; add who reported it (context.system or context.remote_provider) or the text",
                    Severity.WARNING,
                )
            )


# The shell an admin of each reporting system runs its fixes in; a rule of that system alone
# must give at least one command in it (issue: fixes an admin can execute). Postfix and Exim
# rules are held to the same by a test on the bundled rules, not by lint: a contributor's
# Postfix rule may fairly explain a failure whose fix is someone else's.
_ADMIN_SHELL = {"exchange-online": "powershell"}


def _check_admin_commands(document: YamlDocument, data: dict[str, Any], problems: list[Problem]) -> None:
    """Warn when an Exchange Online rule has no fix with an Exchange Online PowerShell command:
    the admin would have to work out the cmdlet themselves."""
    systems = data.get("systems") or []
    if len(systems) != 1 or systems[0] not in _ADMIN_SHELL or data.get("status") == "deprecated":
        return
    shell = _ADMIN_SHELL[systems[0]]
    if any(command.get("shell") == shell for fix in data.get("fixes") or [] for command in fix.get("commands") or []):
        return
    where = document.location(("fixes",)) if data.get("fixes") else document.location(("id",))
    problems.append(Problem(where, "MT107", f"{systems[0]} rule without a PowerShell command in any fix (add `commands:` with shell: {shell})", Severity.WARNING))


def _normalise_values(data: dict[str, Any]) -> dict[str, Any]:
    """Coerce condition values to their fields' types, so both evaluators compare like with like."""

    def fix(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "all" in node or "any" in node:
            key = "all" if "all" in node else "any"
            return {key: [fix(child) for child in node[key]]}
        if "not" in node:
            return {"not": fix(node["not"])}
        spec = vocabulary()[node["field"]]
        op = next(k for k in LEAF_OPS if k in node)
        if op in ("equals", "one_of"):
            values = node[op] if op == "one_of" else [node[op]]
            coerced = [coerce_value(spec, v) for v in values]
            return {"field": node["field"], op: coerced if op == "one_of" else coerced[0]}
        return dict(node)

    result = dict(data)
    result["match"] = fix(data["match"])
    causes = []
    for cause in data.get("causes") or []:
        cause = dict(cause)
        for key in ("likely_when", "unlikely_when"):
            if key in cause:
                cause[key] = fix(cause[key])
        causes.append(cause)
    if "causes" in data:
        result["causes"] = causes
    return result


def _attach_translation(kb: KnowledgeBase, document: YamlDocument, data: dict[str, Any]) -> None:
    rule = kb.rules.get(data["rule"])
    if rule is None:
        kb.problems.append(Problem(document.location(("rule",)), "MT010", f"translation for unknown rule {data['rule']!r}"))
        return
    lang = data["lang"]
    match = _TRANSLATION_NAME.match(Path(document.path).name)
    if match and match.group("lang") != lang:
        kb.problems.append(Problem(document.location(("lang",)), "MT104", f"file name says {match.group('lang')!r} but lang is {lang!r}", Severity.WARNING))
    if lang == SOURCE_LANGUAGE:
        kb.problems.append(Problem(document.location(("lang",)), "MT104", "English is the source language; it needs no translation file", Severity.WARNING))
        return
    english = translatable_strings(rule.raw)
    strings: dict[str, tuple[str, str]] = {}
    for key, entry in data["strings"].items():
        if key not in english:
            kb.problems.append(Problem(document.location(("strings", key)), "MT104", f"translation key {key!r} is not a string of rule {rule.id}", Severity.WARNING))
            continue
        if entry["text"].startswith("TODO"):
            kb.problems.append(Problem(document.location(("strings", key, "text")), "MT101", f"{lang} translation of {key!r} is still TODO", Severity.WARNING))
            continue
        strings[key] = (entry["text"], entry["source"])
    rule.translations[lang] = Translation(lang=lang, path=document.path, strings=strings)
    for key, (text, _) in strings.items():
        for found, preferred in glossary_violations(lang, text):
            kb.problems.append(Problem(document.location(("strings", key, "text")), "MT106",
                                       f"{lang} glossary: {found!r} in {key!r}; write {preferred!r}", Severity.WARNING))
    missing, stale = rule.translation_state(lang)
    for key in missing:
        kb.problems.append(Problem(document.location(("strings",)), "MT101", f"{lang} translation of rule {rule.id} lacks {key!r}", Severity.WARNING))
    for key in stale:
        kb.problems.append(
            Problem(document.location(("strings", key, "source")), "MT102", f"{lang} translation of {key!r} is stale: the English text changed since it was translated", Severity.WARNING)
        )


def _check_references(kb: KnowledgeBase, documents: dict[str, YamlDocument]) -> None:
    for rule in kb.rules.values():
        document = documents[rule.id]
        targets: list[tuple[JsonPath, str]] = [(("see_also", i), t) for i, t in enumerate(rule.see_also)]
        if rule.replaced_by:
            targets.append((("replaced_by",), rule.replaced_by))
        for json_path, target in targets:
            if target not in kb.rules:
                kb.problems.append(Problem(document.location(json_path), "MT010", f"reference to unknown rule id {target!r}"))
        replacement = kb.rules.get(rule.replaced_by) if rule.replaced_by else None
        if rule.status is Status.DEPRECATED and replacement is not None and replacement.status is Status.DEPRECATED:
                kb.problems.append(Problem(document.location(("replaced_by",)), "MT010", f"replaced_by points at deprecated rule {rule.replaced_by!r}", Severity.WARNING))
        for lang in ("pt-BR",):
            if lang not in rule.translations:
                kb.problems.append(Problem(document.location(("id",)), "MT101", f"rule {rule.id} has no {lang} translation", Severity.WARNING))
