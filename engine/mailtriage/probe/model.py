"""What a probe records: steps with timings, per-host results, and the whole probe's result.

Plain dataclasses with explicit `to_dict`, filled in place while the probe runs so that an
interrupted probe can still report what it collected.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..facts import Facts, FactValue


class StepStatus(enum.Enum):
    OK = "ok"
    WARN = "warn"  # delivery still possible, but something is off (no STARTTLS, implicit MX...)
    FAIL = "fail"
    SKIPPED = "skipped"  # not run: an earlier step failed, or the probe was interrupted


class Verdict(enum.Enum):
    """How a host (or the whole probe) came out; ordered from best to worst."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return {"ok": 0, "warn": 1, "fail": 2}[self.value]


@dataclass
class Step:
    """One network step (a DNS query, the TCP connect, one SMTP command, the TLS handshake)."""

    name: str
    status: StepStatus
    summary: str
    elapsed_ms: float
    detail: dict[str, FactValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class TranscriptLine:
    """One line of the SMTP dialogue; direction as in swaks: -> sent, <- received, ~> / <~ inside
    TLS, == a note from the probe."""

    at_ms: float
    direction: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"at_ms": round(self.at_ms, 1), "dir": self.direction, "text": self.text}


@dataclass(frozen=True)
class InferredFact:
    """A context fact the probe supplies about itself, with the evidence for it (its own mode)."""

    field: str
    value: FactValue
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "evidence": self.evidence}


@dataclass
class HostResult:
    """Everything learnt about one destination host (an MX host, a smart host, or a host:port)."""

    name: str
    port: int
    role: str  # "mx" | "implicit-mx" | "smart-host" | "host"
    preference: int | None = None
    address: str | None = None
    steps: list[Step] = field(default_factory=list)
    facts: Facts = field(default_factory=dict)
    transcript: list[TranscriptLine] = field(default_factory=list)
    finished: bool = False
    in_progress: str | None = None  # the step running now (or when the probe was stopped)

    @property
    def verdict(self) -> Verdict:
        statuses = {step.status for step in self.steps}
        if StepStatus.FAIL in statuses or not self.finished:
            return Verdict.FAIL
        if StepStatus.WARN in statuses:
            return Verdict.WARN
        return Verdict.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "role": self.role,
            "preference": self.preference,
            "address": self.address,
            "port": self.port,
            "verdict": self.verdict.value,
            "finished": self.finished,
            "steps": [step.to_dict() for step in self.steps],
            "facts": dict(self.facts),
            "transcript": [line.to_dict() for line in self.transcript],
        }


@dataclass
class ProbeResult:
    """The whole probe: the target-level steps (MX lookup), every host, and the facts chosen for
    diagnosis (see `choose_host`)."""

    target: str
    mode: str  # "domain" | "host" | "smart-host"
    timeout: float
    deadline: float
    domain_steps: list[Step] = field(default_factory=list)
    domain_facts: Facts = field(default_factory=dict)
    hosts: list[HostResult] = field(default_factory=list)
    chosen_host: str | None = None
    facts: Facts = field(default_factory=dict)
    inferred: list[InferredFact] = field(default_factory=list)  # context facts and why they were set
    interrupted: bool = False
    deadline_reached: bool = False
    elapsed_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """OK or WARN when delivery looks possible through the chosen host, else FAIL."""
        if any(step.status is StepStatus.FAIL for step in self.domain_steps):
            return Verdict.FAIL
        chosen = self.chosen()
        if chosen is None:
            return Verdict.FAIL
        domain_warn = any(step.status is StepStatus.WARN for step in self.domain_steps)
        if chosen.verdict is Verdict.OK and domain_warn:
            return Verdict.WARN
        return chosen.verdict

    def chosen(self) -> HostResult | None:
        for host in self.hosts:
            if host.name == self.chosen_host:
                return host
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `mailtriage probe --format json` (without the diagnosis)."""
        steps: list[dict[str, Any]] = []
        if self.domain_steps:
            steps.append(
                {
                    "host": self.target,
                    "role": "domain",
                    "steps": [step.to_dict() for step in self.domain_steps],
                    "facts": dict(self.domain_facts),
                }
            )
        steps.extend(host.to_dict() for host in self.hosts)
        return {
            "target": self.target,
            "mode": self.mode,
            "verdict": self.verdict.value,
            "chosen_host": self.chosen_host,
            "facts": dict(self.facts),
            "inferred": [fact.to_dict() for fact in self.inferred],
            "steps": steps,
            "interrupted": self.interrupted,
            "deadline_reached": self.deadline_reached,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "timeout": self.timeout,
            "deadline": self.deadline,
            "notes": list(self.notes),
        }


@dataclass
class ProbeOptions:
    """What to probe and how. `ports` and `connector` are seams for tests and port forwards."""

    target: str | None = None
    smart_host: str | None = None
    as_host: bool = False  # TARGET is a host name: no MX lookup
    port: int | None = None  # None: 25, or the port given in TARGET / --smart-host
    nameserver: str | None = None  # "IP[:PORT]"; None: the system's resolvers
    timeout: float = 10.0
    deadline: float = 30.0
    require_tls: bool = False
    tls_name: str | None = None
    ca_file: str | None = None
    trust_system_cas: bool = True
    rcpt: str | None = None
    ehlo_name: str | None = None  # None: this machine's host name
    ports: dict[str, int] = field(default_factory=dict)  # host name -> port, overriding `port`
