"""Group diagnosed records into incidents, with memory bounded by the number of incidents.

An incident is one destination (the connector, else the remote server, else the recipient's
domain) failing with one diagnosis (the top rule, else the status code). Each keeps first and last
seen, records, messages and recipients affected (exact up to `DistinctCounter.EXACT_LIMIT`, then a
k-minimum-values estimate, flagged as approximate), failures per hour, and whether the messages
are still being retried or have expired: Microsoft 365 and most MTAs retry for about 24 hours
(`RETRY_HOURS`) before they give up and send the non-delivery report.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..textsafe import text_bytes

if TYPE_CHECKING:
    from ..engine import Engine
    from ..intake import IntakeRecord

RETRY_HOURS = 24
MAX_DIAGNOSIS_CACHE = 4096


class DistinctCounter:
    """Distinct values: exact up to EXACT_LIMIT, then a k-minimum-values sketch (about 6% error
    at k=256), so memory per incident stays fixed however many rows there are."""

    EXACT_LIMIT = 1024
    K = 256
    _SPACE = float(2**64)

    def __init__(self) -> None:
        self._exact: set[str] | None = set()
        self._heap: list[int] = []  # negated: the K smallest hashes, largest on top
        self._members: set[int] = set()

    @staticmethod
    def _hash(value: str) -> int:
        return int.from_bytes(hashlib.blake2b(text_bytes(value), digest_size=8).digest(), "big")

    def add(self, value: str) -> None:
        if self._exact is not None:
            self._exact.add(value)
            if len(self._exact) > self.EXACT_LIMIT:
                for item in self._exact:
                    self._add_hash(self._hash(item))
                self._exact = None
            return
        self._add_hash(self._hash(value))

    def _add_hash(self, value: int) -> None:
        if value in self._members:
            return
        if len(self._heap) < self.K:
            heapq.heappush(self._heap, -value)
            self._members.add(value)
        elif value < -self._heap[0]:
            removed = -heapq.heapreplace(self._heap, -value)
            self._members.discard(removed)
            self._members.add(value)

    @property
    def approximate(self) -> bool:
        return self._exact is None

    def count(self) -> int:
        if self._exact is not None:
            return len(self._exact)
        kth = -self._heap[0]
        return round((self.K - 1) * self._SPACE / (kth + 1))


@dataclass
class Incident:
    """One destination failing with one diagnosis, over time."""

    destination: str
    rule: str | None
    status: str | None
    title: str
    first_fix: str | None
    first_fix_steps: list[str]
    specific: bool
    system: str | None = None
    connector: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    records: int = 0
    failed: int = 0
    delayed: int = 0
    messages: DistinctCounter = field(default_factory=DistinctCounter)
    recipients: DistinctCounter = field(default_factory=DistinctCounter)
    per_hour: Counter[str] = field(default_factory=Counter)
    example_reply: str | None = None

    @property
    def key(self) -> str:
        return f"{self.destination}|{self.rule or self.status or '?'}"

    def add(self, when: datetime | None, action: str, message: str | None, recipient: str | None) -> None:
        self.records += 1
        if action == "delayed":
            self.delayed += 1
        else:
            self.failed += 1
        if when is not None:
            if self.first_seen is None or when < self.first_seen:
                self.first_seen = when
            if self.last_seen is None or when > self.last_seen:
                self.last_seen = when
            self.per_hour[when.strftime("%Y-%m-%dT%H:00Z")] += 1
        if message:
            self.messages.add(message)
        if recipient:
            self.recipients.add(recipient.lower())

    def state(self, now: datetime | None) -> str:
        """"failed" (rejected outright), "expired" (retried, then given up: deferrals that ended
        in a failure or are older than the retry window) or "retrying"."""
        if self.delayed == 0:
            return "failed"
        if self.failed:
            return "expired"
        if now is not None and self.first_seen is not None and now - self.first_seen >= timedelta(hours=RETRY_HOURS):
            return "expired"
        return "retrying"

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "key": self.key,
            "destination": self.destination,
            "connector": self.connector,
            "system": self.system,
            "rule": self.rule,
            "status": self.status,
            "title": self.title,
            "specific": self.specific,
            "state": self.state(now),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "records": self.records,
            "failed": self.failed,
            "delayed": self.delayed,
            "messages": self.messages.count(),
            "messages_approximate": self.messages.approximate,
            "recipients": self.recipients.count(),
            "recipients_approximate": self.recipients.approximate,
            "first_fix": self.first_fix,
            "first_fix_steps": list(self.first_fix_steps),
            "example_reply": self.example_reply,
            "per_hour": dict(sorted(self.per_hour.items())),
        }


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def destination_of(record: IntakeRecord) -> str:
    """The connector, else the server that answered, else the recipient's domain."""
    connector = record.extra.get("connector")
    if isinstance(connector, str) and connector:
        return f"connector:{connector}"
    host = record.facts.get("smtp.remote_host")
    if isinstance(host, str) and host:
        return host.lower().rstrip(".")
    domain = record.facts.get("context.recipient_domain")
    if isinstance(domain, str) and domain:
        return domain
    return "(unknown destination)"


@dataclass
class _Verdict:
    rule: str | None
    title: str
    first_fix: str | None
    first_fix_steps: list[str]
    specific: bool


class IncidentGrouper:
    """Feed records (`add`); read incidents (`incidents`). Diagnoses are cached by the exact fact
    set, so a million rows of the same few errors cost a few diagnoses."""

    def __init__(self, engine: Engine, lang: str = "en") -> None:
        self.engine = engine
        self.lang = lang
        self._incidents: dict[tuple[str, str], Incident] = {}
        self._verdicts: dict[tuple[tuple[str, Any], ...], _Verdict] = {}
        self._tested = tested_fields(engine)
        self.records = 0
        self.latest: datetime | None = None

    def _signature(self, facts: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """What a verdict depends on: the facts some rule tests, with the volatile parts of text
        (addresses, times, queue and server ids) blanked, so retries of one error share it."""
        tested = self._tested
        return tuple(sorted(
            (name, _VOLATILE.sub("#", value) if isinstance(value, str) and name.endswith(".text") else value)
            for name, value in facts.items() if name in tested
        ))

    def _verdict(self, facts: Mapping[str, Any]) -> _Verdict:
        key = self._signature(facts)
        verdict = self._verdicts.get(key)
        if verdict is not None:
            return verdict
        diagnosis = self.engine.diagnose(facts)
        top = diagnosis.top
        if top is None:
            verdict = _Verdict(None, "", None, [], False)
        else:
            fix = top.fixes[0] if top.fixes else None
            fix_dict = top.rule.fix_dict(fix, self.lang) if fix is not None else None
            verdict = _Verdict(
                top.rule.id, top.rule.text("title", self.lang),
                fix_dict["title"] if fix_dict else None, list(fix_dict["steps"]) if fix_dict else [],
                diagnosis.specific,
            )
        if len(self._verdicts) >= MAX_DIAGNOSIS_CACHE:
            self._verdicts.pop(next(iter(self._verdicts)))
        self._verdicts[key] = verdict
        return verdict

    def add(self, record: IntakeRecord) -> Incident:
        self.records += 1
        facts = record.facts
        verdict = self._verdict(facts)
        destination = destination_of(record)
        status = facts.get("smtp.enhanced") or (str(facts["smtp.reply_code"]) if "smtp.reply_code" in facts else None)
        key = (destination, verdict.rule or str(status or "?"))
        incident = self._incidents.get(key)
        if incident is None:
            connector = record.extra.get("connector")
            text = facts.get("smtp.text")
            incident = Incident(
                destination=destination, rule=verdict.rule, status=str(status) if status else None,
                title=verdict.title or (f"Unexplained failure {status}" if status else "Unexplained failure"),
                first_fix=verdict.first_fix, first_fix_steps=verdict.first_fix_steps, specific=verdict.specific,
                system=str(facts.get("context.system")) if facts.get("context.system") else None,
                connector=connector if isinstance(connector, str) else None,
                example_reply=_reply_line(facts) if text or status else None,
            )
            self._incidents[key] = incident
        when = parse_iso(record.extra.get("time"))
        if when is not None and (self.latest is None or when > self.latest):
            self.latest = when
        action = "delayed" if facts.get("report.action") == "delayed" else "failed"
        if facts.get("outer.expired") is True:
            action = "failed"
        message = record.extra.get("message_id") or record.extra.get("trace_id")
        incident.add(when, action, message if isinstance(message, str) else None, record.recipient)
        return incident

    def incidents(self) -> list[Incident]:
        """Biggest first (messages affected, then records), then most recent."""
        return sorted(self._incidents.values(),
                      key=lambda i: (-i.messages.count(), -i.records, -(i.last_seen.timestamp() if i.last_seen else 0), i.key))


# IPv4/IPv6 addresses, ISO times, and long ids (EOP server stamps, queue ids) in reply text.
_VOLATILE = re.compile(
    r"\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?|[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}"
    r"|\d{4}-\d\d-\d\dT[\d:.]+Z?|\b(?=[A-Z0-9]*\d)[A-Z0-9]{6,}\b"
)


def tested_fields(engine: Engine) -> frozenset[str]:
    """Every fact field a rule's match or a cause's condition tests."""
    from ..model import iter_leaves

    fields: set[str] = set()
    for rule in engine.rules.values():
        conditions = [rule.match] + [c for cause in rule.causes for c in (cause.likely_when, cause.unlikely_when) if c]
        for condition in conditions:
            fields.update(leaf.field for leaf in iter_leaves(condition))
    return frozenset(fields)


def _reply_line(facts: Mapping[str, Any]) -> str:
    parts = [str(facts[name]) for name in ("smtp.reply_code", "smtp.enhanced") if name in facts]
    text = facts.get("smtp.text")
    if isinstance(text, str):
        parts.append(text[:200])
    return " ".join(parts)


@dataclass
class Report:
    """Incidents over some inputs, as of `now` (the latest event seen unless given)."""

    incidents: list[Incident]
    now: datetime | None
    records: int
    skipped: Counter[str]
    inputs: list[str]

    def to_dict(self) -> dict[str, Any]:
        approximate = any(i.messages.approximate or i.recipients.approximate for i in self.incidents)
        return {
            "as_of": _iso(self.now),
            "inputs": list(self.inputs),
            "records": self.records,
            "incidents": [i.to_dict(self.now) for i in self.incidents],
            "skipped": dict(self.skipped.most_common()),
            "counts_approximate": approximate,
            "retry_hours": RETRY_HOURS,
        }


def build_report(
    paths: Iterable[str], engine: Engine | None = None, *, now: datetime | None = None, lang: str = "en",
) -> Report:
    """Read traces, NDRs and MTA logs under `paths` and group their failures into incidents."""
    from ..intake import SkippedInput, iter_path_records
    from ..triage import default_engine

    names = list(paths)
    grouper = IncidentGrouper(engine or default_engine(), lang=lang)
    skipped: Counter[str] = Counter()
    for item in iter_path_records(names):
        if isinstance(item, SkippedInput):
            skipped[item.reason] += 1
            continue
        grouper.add(item)
    return Report(grouper.incidents(), now or grouper.latest, grouper.records, skipped, names)
