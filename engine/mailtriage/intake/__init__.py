"""Symptom intake: turn what users hold (replies, NDRs, log lines) into facts.

`parse_input` is the one entry point the CLI and the scanner use; it recognises the kind of
input unless told, and returns one record per failed recipient or attempt. `iter_path_records`
does the same for files, folders, mbox files and maildirs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import FactError, InputError
from ..facts import FactValue, FieldSpec, InferredFact, coerce_value, schema_regex, vocabulary
from ..textsafe import text_bytes

INPUT_KINDS = ("auto", "reply", "ndr", "log")
# A UTF-8 byte-order mark some editors save before the first line: not text, and it would hide a
# message's first header or an mbox's first From line.
UTF8_BOM = b"\xef\xbb\xbf"

_HEADER_LINE = re.compile(rb"^(?:From |[A-Za-z][A-Za-z0-9\-]{1,60}:[ \t]?)")
# A line that starts with a syslog or ISO timestamp (bytes patterns: ASCII classes; the paste page
# gets them from `export_detection`).
_LOG_LINE = re.compile(
    rb"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d |\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)"
)
# A log line pasted without its syslog prefix: `postfix/smtp[123]: ...`, `sendmail[77]: ...`.
_BARE_LOG_LINE = re.compile(rb"^(?:postfix(?:-[\w.\-]+)?/[\w/\-]+|sendmail|sm-mta)\[\d+\]: ")
# With one log-looking line among the first five, these words in the head make it a log.
_LOG_HINTS = (b"postfix/", b"status=", b"sendmail[")
_DETECT_HEAD_BYTES = 8192
# The patterns the paste page runs, by the name it reads them under (bytes, case-sensitive, matched).
DETECTION_PATTERNS: dict[str, re.Pattern[bytes]] = {"log_line": _LOG_LINE, "bare_log_line": _BARE_LOG_LINE}


@dataclass
class IntakeRecord:
    """The facts read from one input about one failed recipient (or one reply/log line)."""

    facts: dict[str, FactValue]
    kind: str  # "reply" | "ndr" | "log" | "trace"
    source: str = "<input>"
    recipient: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The context facts among `facts` that were worked out from evidence, with that evidence.
    inferred: list[InferredFact] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "recipient": self.recipient,
            "facts": dict(self.facts),
            "inferred": [fact.to_dict() for fact in self.inferred],
            "extra": dict(self.extra),
        }


@dataclass
class SkippedInput:
    """An input that gave no record, and why: not read at all (unreadable, binary, empty, too
    big...; `read` false) or read and found to hold nothing to diagnose (`read` true)."""

    source: str
    reason: str
    read: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "skipped": self.reason, "read": self.read}


_PYTHON_TYPES: dict[str, type] = {"string": str, "integer": int, "boolean": bool, "number": float}


def _already_valid(spec: FieldSpec, value: FactValue) -> bool:
    """Fast path for values the parsers built with the right type (the common case in bulk scans)."""
    if type(value) is not _PYTHON_TYPES[spec.type]:
        return False
    if spec.enum is not None:
        return value in spec.enum
    if spec.pattern is not None:
        return isinstance(value, str) and schema_regex(spec.pattern).search(value) is not None
    if isinstance(value, int) and not isinstance(value, bool):
        return (spec.minimum is None or value >= spec.minimum) and (spec.maximum is None or value <= spec.maximum)
    return True


def clean_facts(raw: dict[str, FactValue], extra: dict[str, Any] | None = None) -> dict[str, FactValue]:
    """Keep the fields that fit the vocabulary, coerced; note any dropped one in `extra`."""
    fields = vocabulary()
    facts: dict[str, FactValue] = {}
    for name, value in raw.items():
        spec = fields.get(name)
        if spec is None:
            if extra is not None:
                extra.setdefault("dropped_facts", []).append(name)
            continue
        if _already_valid(spec, value):
            facts[name] = value
            continue
        try:
            facts[name] = coerce_value(spec, value)
        except FactError:
            if extra is not None:
                extra.setdefault("dropped_facts", []).append(name)
    return facts


def detect_kind(data: bytes) -> str:
    """Guess whether bytes are a message ("ndr"), MTA log lines ("log") or a pasted reply ("reply")."""
    head = data[:_DETECT_HEAD_BYTES].removeprefix(UTF8_BOM).lstrip(b"\r\n\t ")
    lines = [line for line in head.replace(b"\r", b"\n").split(b"\n")[:12] if line.strip()]
    if not lines:
        return "reply"
    log_lines = sum(1 for line in lines[:5] if _LOG_LINE.match(line) or _BARE_LOG_LINE.match(line))
    if log_lines and log_lines >= min(2, len(lines[:5])):
        return "log"
    if log_lines and any(hint in head for hint in _LOG_HINTS):
        return "log"
    header_lines = 0
    for line in lines[:8]:
        if _HEADER_LINE.match(line) or line[:1] in (b" ", b"\t"):
            header_lines += 1
        else:
            break
    if header_lines >= 2 and (b"\n\n" in data[:262144] or b"\r\n\r\n" in data[:262144]):
        return "ndr"
    return "reply"


def export_detection() -> dict[str, Any]:
    """How `detect_kind` tells a log from a reply, for the paste page: its bytes patterns in
    JavaScript's spelling (ASCII classes; the page runs them on the text's UTF-8 bytes)."""
    from ..jsregex import js_pattern

    return {**{name: js_pattern(compiled) for name, compiled in DETECTION_PATTERNS.items()},
            "hints": [hint.decode("ascii") for hint in _LOG_HINTS], "head_bytes": _DETECT_HEAD_BYTES}


def failure_code(facts: dict[str, FactValue]) -> bool:
    """Whether a reply's facts hold a 4xx/5xx reply code or a 4.x.x/5.x.x status code."""
    code = facts.get("smtp.reply_code")
    enhanced = facts.get("smtp.enhanced")
    return (isinstance(code, int) and 400 <= code < 600) or (isinstance(enhanced, str) and enhanced[:1] in ("4", "5"))


def parse_input(data: bytes | str, kind: str = "auto", source: str = "<input>") -> list[IntakeRecord]:
    """Read facts from pasted text, a message or log lines. An empty list means nothing recognised.

    Raises InputError for an unknown `kind`.
    """
    if kind not in INPUT_KINDS:
        raise InputError(f"unknown input kind {kind!r}; use one of: {', '.join(INPUT_KINDS)}")
    raw = text_bytes(data) if isinstance(data, str) else data
    detected = kind == "auto"
    if detected:
        kind = detect_kind(raw)
    if kind == "ndr":
        from .ndr import parse_message

        return parse_message(raw, source=source)
    if kind == "log":
        from .logs import parse_log_lines

        text = raw.decode("utf-8", "replace")
        records = list(parse_log_lines(text.splitlines(), source=source))
        if records or not detected:
            return records
    from .reply import read_reply

    text = raw.decode("utf-8", "replace")
    facts, inferred = read_reply(text)
    if kind == "log" and not failure_code(facts):
        # Timestamped lines no log reader knows (Exchange's tracking and protocol logs, an
        # application's log) are read as a reply when they hold an error code; other lines (a
        # delivery, a connection) are no failure.
        return []
    if not facts:
        # No reply code: it may be a log line pasted without its timestamp (Exim's "** addr: ...").
        from .logs import parse_log_lines

        return list(parse_log_lines(text.splitlines()[:1000], source=source))
    facts.setdefault("input.kind", "reply")
    extra: dict[str, Any] = {}
    return [IntakeRecord(facts=clean_facts(facts, extra), kind="reply", source=source, extra=extra, inferred=inferred)]


def iter_path_records(paths: Iterable[str]) -> Iterator[IntakeRecord | SkippedInput]:
    """Records from files, folders, mbox files, maildirs and log files; unreadable inputs are skipped
    with a reason, never raised."""
    from .paths import iter_path_records as _iter

    return _iter(paths)
