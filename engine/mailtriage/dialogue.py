"""A guided troubleshooting dialogue: ask the next checks one at a time, re-rank after each answer,
end with the fix plan for the cause that remains.

The front end (the CLI's `diagnose --interactive`, or any other) asks `question()`, passes the
reader's answer to `answer()` (or `skip()`), and shows `diagnosis` and `plan()`. Fields a probe can
settle (`can_probe`) may be answered by `probe_answers()` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import FactError
from .facts import FieldSpec, coerce_value, vocabulary

if TYPE_CHECKING:
    from .diagnosis import CauseAssessment, Diagnosis, NextCheck
    from .engine import Engine

# Facts a live probe of the destination observes (see probe/): "probe it for me" can answer them.
PROBE_FIELDS = frozenset({
    "dns.result", "tcp.state", "tls.error", "smtp.starttls_offered", "smtp.banner_code", "smtp.closed_abruptly",
    "smtp.timed_out",
})
YES = {"y", "yes", "s", "sim", "true", "1"}
NO = {"n", "no", "não", "nao", "false", "0"}


@dataclass
class FixPlan:
    """The fixes of the best match that address its leading cause (all its fixes if none do)."""

    rule_id: str
    rule_title: str
    cause_id: str | None
    cause_title: str | None
    likelihood: str | None
    fixes: list[dict[str, Any]]


@dataclass
class Dialogue:
    engine: Engine
    facts: dict[str, Any]
    lang: str = "en"
    skipped: set[str] = field(default_factory=set)
    answered: list[tuple[str, Any]] = field(default_factory=list)
    diagnosis: Diagnosis = field(init=False)

    def __post_init__(self) -> None:
        self.diagnosis = self.engine.diagnose(self.facts)

    def question(self) -> NextCheck | None:
        """The next check worth asking (not yet answered or skipped), or None when none is left."""
        for check in self.diagnosis.next_checks:
            if check.field not in self.skipped and check.field not in self.facts:
                return check
        return None

    @staticmethod
    def spec(name: str) -> FieldSpec:
        return vocabulary()[name]

    def choices(self, name: str) -> list[str]:
        spec = self.spec(name)
        if spec.type == "boolean":
            return ["yes", "no"]
        return [str(value) for value in spec.enum] if spec.enum else []

    def parse(self, name: str, text: str) -> Any:
        """The reader's answer as a fact value; raises FactError with a message to show."""
        spec = self.spec(name)
        value = text.strip()
        if spec.type == "boolean":
            if value.lower() in YES:
                return True
            if value.lower() in NO:
                return False
            raise FactError(f"{name}: answer yes or no")
        if spec.enum:
            options = [str(v) for v in spec.enum]
            if value.isdecimal() and 1 <= int(value) <= len(options):
                value = options[int(value) - 1]
        return coerce_value(spec, value)

    def answer(self, name: str, value: Any) -> Diagnosis:
        self.facts[name] = value
        self.answered.append((name, value))
        self.diagnosis = self.engine.diagnose(self.facts)
        return self.diagnosis

    def skip(self, name: str) -> None:
        self.skipped.add(name)

    @staticmethod
    def can_probe(name: str) -> bool:
        return name in PROBE_FIELDS

    def probe_target(self) -> str | None:
        host = self.facts.get("smtp.remote_host")
        return host if isinstance(host, str) and host else None

    def probe_answers(self, probe_facts: Mapping[str, Any]) -> Diagnosis:
        """Merge what a probe observed (the reader's own answers win) and re-rank."""
        for name, value in probe_facts.items():
            if name in PROBE_FIELDS and name not in self.facts:
                self.facts[name] = value
                self.answered.append((name, value))
        self.diagnosis = self.engine.diagnose(self.facts)
        return self.diagnosis

    def ranked_causes(self) -> list[CauseAssessment]:
        top = self.diagnosis.top
        return list(top.causes) if top else []

    def plan(self) -> FixPlan | None:
        top = self.diagnosis.top
        if top is None:
            return None
        rule = top.rule
        leading = next((c for c in top.causes if c.likelihood.value != "unlikely"), None)
        fixes = [f for f in top.fixes if leading is not None and leading.cause.id in f.addresses] or list(top.fixes)
        return FixPlan(
            rule.id, rule.text("title", self.lang),
            leading.cause.id if leading else None,
            rule.text(f"causes.{leading.cause.id}.title", self.lang) if leading else None,
            leading.likelihood.value if leading else None,
            [rule.fix_dict(fix, self.lang) for fix in fixes],
        )


__all__ = ["PROBE_FIELDS", "Dialogue", "FactError", "FixPlan"]
