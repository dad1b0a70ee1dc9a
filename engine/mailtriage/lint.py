"""The linter: everything the loader finds, plus each rule's own examples run through the engine."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CollectsProblems, FactError, Location, Problem
from .facts import normalize_facts
from .loader import KnowledgeBase, load_knowledge_base
from .model import Example, Rule


@dataclass
class LintReport(CollectsProblems):
    kb: KnowledgeBase
    problems: list[Problem] = field(default_factory=list)


    def failed(self, strict: bool = False) -> bool:
        return bool(self.errors or (strict and self.warnings))


# Rule file and folder names end up in URLs and pages of the site: letters, digits, `.`, `_`, `-`
# only, starting with a letter or digit (`no-such-user.pt-BR.yaml`).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def file_name_problems(paths: Iterable[Path], display_root: Path | None = None) -> list[Problem]:
    """MT014 for each rule file whose name, or a folder name below the linted path, is not safe."""
    from .loader import _display, rule_files

    problems: list[Problem] = []
    for path in paths:
        for file in rule_files([path]):
            parts = file.relative_to(path).parts if path.is_dir() else (file.name,)
            bad = [part for part in parts if not SAFE_NAME.fullmatch(part)]
            if bad:
                shown = ", ".join(repr(part) for part in bad)
                problems.append(Problem(Location(_display(file, display_root)), "MT014", f"unsafe file or folder name {shown}: use letters, digits, '.', '_' and '-' only, starting with a letter or digit"))
    return problems


def example_facts(example: Example) -> dict[str, object]:
    """The facts an example stands for: its reply line read as `diagnose` reads it (the context
    its words show included), with its explicit facts on top and never inferred over."""
    from .intake.reply import read_reply

    facts: dict[str, object] = {}
    if example.reply is not None:
        parsed, _ = read_reply(example.reply, known=dict(example.facts))
        facts.update(parsed)
    facts.update(example.facts)
    return facts


def lint_paths(paths: Iterable[Path], base: Iterable[Path] = (), display_root: Path | None = None) -> LintReport:
    """Lint the rules under `paths`. `base` folders (e.g. the bundled rules) load first, so that
    rules in `paths` may refer to them; only problems in `paths` are reported."""
    base = list(base)
    paths = list(paths)
    kb = load_knowledge_base([*base, *paths], display_root=display_root)
    base_files = {str(f) for f in _files(base, display_root)}
    report = LintReport(kb)
    report.problems.extend(p for p in kb.problems if p.location.path not in base_files)
    report.problems.extend(p for p in check_examples(kb) if p.location.path not in base_files)
    report.problems.extend(file_name_problems(paths, display_root))
    report.problems.sort(key=lambda p: (p.location.path, p.location.line or 0, p.location.column or 0, p.code))
    return report


def _files(dirs: list[Path], root: Path | None) -> list[str]:
    from .loader import _display, rule_files

    return [_display(f, root) for f in rule_files(dirs)]


def check_examples(kb: KnowledgeBase) -> list[Problem]:
    """Run every example of every rule through both matchers and the cause ranking."""
    from .durable import DurableMatcher
    from .engine import Engine
    from .matching import PythonMatcher

    problems: list[Problem] = []
    if kb.errors:
        # Rules that failed to load are reported already; check the rest on their own.
        kb = KnowledgeBase(rules=kb.rules, problems=[], files=kb.files)
    engine = Engine(kb, backend="python")
    durable = DurableMatcher(kb.rules.values())
    python = PythonMatcher(kb.rules.values())
    for rule in kb.rules.values():
        for kind, examples in (("match", rule.examples_match), ("no_match", rule.examples_no_match)):
            for index, example in enumerate(examples):
                where = _example_location(rule, kind, index)
                try:
                    facts = normalize_facts(example_facts(example))
                except FactError as exc:
                    problems.append(Problem(where, "MT011", f"example {kind}[{index}]: {exc.message}"))
                    continue
                by_python = rule.id in python.match(facts)
                by_durable = rule.id in durable.match(facts)
                if by_python != by_durable:
                    problems.append(Problem(where, "MT013", f"example {kind}[{index}]: durable-rules and Python disagree ({by_durable} vs {by_python})"))
                if kind == "match" and not by_python:
                    problems.append(Problem(where, "MT009", f"example match[{index}] does not match the rule: {_describe(facts)}"))
                elif kind == "no_match" and by_python:
                    problems.append(Problem(where, "MT009", f"example no_match[{index}] matches the rule: {_describe(facts)}"))
                if kind == "match" and by_python and example.expect_top_cause:
                    diagnosis = engine.diagnose(facts)
                    found = next((m for m in diagnosis.matches if m.rule.id == rule.id), None)
                    top = found.causes[0].cause.id if found and found.causes else None
                    if top != example.expect_top_cause:
                        problems.append(Problem(where, "MT009", f"example match[{index}] expects top cause {example.expect_top_cause!r}, got {top!r}"))
    return problems


def _example_location(rule: Rule, kind: str, index: int) -> Location:
    from .yamlsource import read_yaml

    document, _ = read_yaml(rule.source_file or rule.source_path)
    if document is None:
        return Location(rule.source_path)
    document.path = rule.source_path
    return document.location(("examples", kind, index))


def _describe(facts: Mapping[str, object]) -> str:
    shown = {k: v for k, v in facts.items() if not k.startswith("smtp.enhanced_")}
    text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    return text if len(text) < 160 else text[:157] + "..."
