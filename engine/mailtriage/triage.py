"""One library verb per command: what `diagnose`, `scan` and every other front end (the HTTP
service, Spark, incident reports) call, so that none of them rebuilds the steps by hand.

- `diagnose_facts(facts)`: a fact set to a Diagnosis.
- `diagnose_text(text)`: anything `mailtriage diagnose` accepts as text (a reply, an NDR or DSN
  message, MTA log lines) to one `TextDiagnosis` per record.
- `scan_row(record, engine)`: the contract row of `scan --format jsonl` for one intake record;
  `scan_rows` does the same for a stream of records and skip notes.
- `diagnosis_document(results, lang)`: the JSON of `diagnose --format json` (and of the HTTP
  service's `POST /v1/diagnose`).
- `list_rules(engine, ...)` and `rule_summary(rule)`: `rules list --format json` (and `GET /v1/rules`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .diagnosis import Diagnosis
    from .engine import Engine
    from .intake import IntakeRecord, SkippedInput
    from .model import Rule

__all__ = [
    "SCAN_ROW_FIELDS",
    "TextDiagnosis",
    "default_engine",
    "diagnose_facts",
    "diagnose_text",
    "diagnosis_document",
    "list_rules",
    "rule_summary",
    "scan_row",
    "scan_rows",
]

# The names of `scan --format jsonl` rows; scripts (and the Spark job's columns) depend on them.
SCAN_ROW_FIELDS = (
    "file", "source", "kind", "recipient", "status", "reply_code", "rule", "fallback", "category",
    "action", "outer_status", "domain", "system", "time", "message_id",
)

_default_engine: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """The engine on the bundled rules (plus MAILTRIAGE_RULES), loaded once per process."""
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            from .engine import Engine

            _default_engine = Engine.load()
        return _default_engine


@dataclass
class TextDiagnosis:
    """One record read from the text and its diagnosis."""

    record: IntakeRecord
    diagnosis: Diagnosis

    @property
    def recipient(self) -> str | None:
        return self.record.recipient

    def to_dict(self, lang: str = "en") -> dict[str, Any]:
        return {"recipient": self.record.recipient, "source": self.record.source, "kind": self.record.kind,
                **self.diagnosis.to_dict(lang)}


def diagnose_facts(facts: Mapping[str, Any], engine: Engine | None = None) -> Diagnosis:
    """Diagnose an explicit fact set (field names of rules/schema/facts.schema.json)."""
    return (engine or default_engine()).diagnose(facts)


def diagnose_text(
    text: bytes | str,
    *,
    kind: str = "auto",
    facts: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    source: str = "<input>",
) -> list[TextDiagnosis]:
    """Read `text` (kind "auto", "reply", "ndr" or "log") and diagnose every record in it.

    `facts` are what the caller knows (for example `{"context.system": "exchange-online"}`); they
    override what was read and inferred. Each diagnosis lists the context facts inferred from the
    text (`Diagnosis.inferred`, with their evidence). An empty list means nothing in the text was recognisable. Raises
    InputError for an unknown kind.
    """
    from .intake import parse_input

    engine = engine or default_engine()
    extra = dict(facts or {})
    out = []
    for record in parse_input(text, kind=kind, source=source):
        out.append(diagnose_record(record, extra, engine))
    return out


def diagnose_record(record: IntakeRecord, facts: Mapping[str, Any] | None = None,
                    engine: Engine | None = None) -> TextDiagnosis:
    """Diagnose one intake record; `facts` (the caller's) override what was read and inferred."""
    engine = engine or default_engine()
    extra = dict(facts or {})
    diagnosis = engine.diagnose({**record.facts, **extra})
    # The reader's facts win: what they stated is not "inferred", whatever the text showed.
    diagnosis.inferred = [fact for fact in record.inferred if fact.field not in extra]
    return TextDiagnosis(record, diagnosis)


def diagnosis_document(
    results: Sequence[tuple[str | None, Diagnosis]], lang: str = "en", sources: Sequence[str | None] = (),
) -> dict[str, Any]:
    """One JSON document for the diagnoses of one input: the first record's diagnosis, plus
    `records` (each with its `recipient` and, when known, the `source` it was read from: an mbox
    message, a log line) when the input held more than one."""
    document = results[0][1].to_dict(lang)
    if len(results) > 1:
        padded = list(sources) + [None] * (len(results) - len(sources))
        document["records"] = [
            {"recipient": recipient, "source": source, **d.to_dict(lang)}
            for (recipient, d), source in zip(results, padded, strict=False)
        ]
    return document


def rule_summary(rule: Rule) -> dict[str, Any]:
    """A rule as `rules list --format json` shows it."""
    return {
        "id": rule.id,
        "codes": list(rule.codes),
        "status": rule.status.value,
        "kind": rule.kind.value,
        "family": rule.family,
        "systems": list(rule.systems),
        "title": rule.title,
        "languages": rule.languages(),
    }


def list_rules(
    engine: Engine | None = None,
    *,
    kind: str | None = None,
    family: str | None = None,
    system: str | None = None,
    code: str | None = None,
) -> list[Rule]:
    """The rules, sorted by id, that pass every filter given (code: `4.4.316` or `550`)."""
    selected = []
    for rule in sorted((engine or default_engine()).rules.values(), key=lambda r: r.id):
        if kind and rule.kind.value != kind:
            continue
        if family and rule.family != family:
            continue
        if system and system not in rule.systems:
            continue
        if code and not any(code in c.split() or c.endswith(code) for c in rule.codes):
            continue
        selected.append(rule)
    return selected


def _file_of(source: str) -> str:
    """The file part of a record's source (`box.mbox#3` and `mail.log:120` name a file and a place)."""
    for separator in ("#", ":"):
        head, sep, tail = source.rpartition(separator)
        if sep and tail.isdecimal():
            return head
    return source


def scan_row(record: IntakeRecord, engine: Engine) -> dict[str, Any]:
    """The contract row of one failed recipient (see SCAN_ROW_FIELDS; `error` and `truncated`
    appear only when set)."""
    from .errors import MailtriageError

    facts = record.facts
    rule = category = None
    fallback = False
    error = None
    try:
        diagnosis = engine.diagnose(facts)
    except MailtriageError as exc:
        error = str(exc)
    else:
        top = diagnosis.top_rule  # the row needs no explanation: none is computed
        if top is not None:
            rule, category = top.id, top.family
            fallback = not diagnosis.specific
    row: dict[str, Any] = {
        "file": _file_of(record.source),
        "source": record.source,
        "kind": record.kind,
        "recipient": record.recipient,
        "status": facts.get("smtp.enhanced"),
        "reply_code": facts.get("smtp.reply_code"),
        "rule": rule,
        "fallback": fallback,
        "category": category,
        "action": facts.get("report.action"),
        "outer_status": facts.get("outer.enhanced"),
        "domain": facts.get("context.recipient_domain"),
        "system": facts.get("context.system"),
        # When the failure happened and which message, where the input says (traces, logs, NDRs).
        "time": record.extra.get("time"),
        "message_id": record.extra.get("message_id"),
    }
    if error:
        row["error"] = error
    if record.extra.get("truncated"):
        row["truncated"] = True
    return row


def scan_rows(items: Iterable[IntakeRecord | SkippedInput], engine: Engine | None = None) -> Iterator[dict[str, Any]]:
    """A row per record and a `{"source", "skipped"}` note per skipped input, in input order."""
    from .intake import SkippedInput

    engine = engine or default_engine()
    for item in items:
        if isinstance(item, SkippedInput):
            yield item.to_dict()
        else:
            yield scan_row(item, engine)
