"""Read MTA log lines (Postfix, Exim, Sendmail): one record per delivery-failure line, all other
lines skipped.

Speed matters (logs run to millions of lines), so every line first passes a few substring tests
and only failure lines reach the regexes; the error texts themselves repeat a lot and their
parse is cached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

from ..facts import Facts, FactValue
from . import IntakeRecord, clean_facts
from .context import infer_context
from .reply import clean_text, parse_reply

MAX_LINE_CHARS = 8_000

# A key starts where a word starts (no rescanning of a long word from each of its letters; a
# word not followed by `=` costs its length once, so no possessive is needed, and JavaScript has none).
_KEY = re.compile(r"(?<!\w)(\w+)=")
_STATUS_CODE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_RELAY = re.compile(r"^\[?(?P<host>[^\[\]:\s]+?)\.?\]?(?:\s*\[(?P<ip>[0-9a-fA-F:.]+)\])?(?::(?P<port>\d+))?$")
_EXIM_LINE = re.compile(
    r"^(?:(?:\S+ \S+ )?(?:\[\d+\] )?(?:\S+ )?(?P<id>[\w]{6}-[\w]{6,11}-[\w]{2,4}) )?(?P<flag>\*\*|==) "
    r"(?P<rcpt>\S+?)(?: <(?P<orig>[^>]*)>)?(?::| (?P<rest>.*?)(?::|$)) ?(?P<text>.*)$"
)
_EXIM_HOST = re.compile(r"\bH=(?P<host>[^\s\[]+)(?: \[(?P<ip>[0-9a-fA-F:.]+)\])?")
_EXIM_ERRNO = re.compile(r"defer \((-?\d+)\)")
# Linux errno values Exim prints in "defer (111): Connection refused".
_ERRNO_TCP = {111: "refused", 110: "timeout", 113: "unreachable", 101: "unreachable", 104: "reset"}
_POSTFIX_ATTEMPT = re.compile(r"postfix(?:/[\w\-]+)*/(?:smtp|lmtp)\[\d+\]: (?:[0-9A-Za-z]+: )?(?P<text>.*)$")

_POSTFIX_TAG = re.compile(r"postfix(?:-[\w.\-]+)?/[\w/\-]+(?=\[\d+\])")
_SENDMAIL_TAG = re.compile(r"(?:sendmail|sm-mta)(?=\[\d+\])")

_POSTFIX_STATUS_ACTION = {"bounced": "failed", "deferred": "delayed", "expired": "failed", "undeliverable": "failed"}
# Postfix statuses of a delivery that worked (the line is skipped).
_POSTFIX_DELIVERED = ("status=sent", "status=deliverable")
# Sendmail's stat= words of a delivery that worked or is merely queued (lower case).
_SENDMAIL_DELIVERED = ("sent", "queued")
# What makes a Postfix line without status= worth reading: a failed connection attempt or TLS.
_POSTFIX_ATTEMPT_WORDS = ("connect to ", "lost connection", "TLS", "SSL", "timed out")
# Attempt texts read from after the `warning: ` Postfix puts before them.
_POSTFIX_ATTEMPT_WARNINGS = ("warning: ", "SSL_connect error", "Untrusted TLS", "Cannot start TLS")
# An attempt line is a record only when its text showed one of these.
_POSTFIX_ATTEMPT_FACTS = ("tcp.state", "tls.error", "smtp.closed_abruptly", "dns.result", "smtp.reply_code")


# Error texts differ mostly in addresses and host names; parsing a template with those replaced by
# numbered stand-ins lets thousands of lines share one cached parse.
_VARIABLE = re.compile(
    r"<[^<>\s@]+@[^<>\s]+>"  # <user@domain>
    r"|(?<![\w.\-])[A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)+(?=\[)"  # host name before [ip]
    r"|(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.]*\d)"  # IPv4 address
)
_STAND_IN = re.compile(r"<zz(\d+)@zz\.invalid>|zz(\d+)\.invalid|0\.0\.0\.(\d+)")


def _template(text: str) -> tuple[str, list[str]]:
    originals: list[str] = []

    def stand_in(found: re.Match[str]) -> str:
        token = found.group(0)
        index = len(originals)
        originals.append(token)
        if token.startswith("<"):
            return f"<zz{index}@zz.invalid>"
        if token[0].isdecimal() and token.replace(".", "").isdecimal():
            return f"0.0.0.{index}"
        return f"zz{index}.invalid"

    return _VARIABLE.sub(stand_in, text), originals


@lru_cache(maxsize=8192)
def _parse_template(template: str) -> tuple[tuple[str, FactValue], ...]:
    # Cleaned once per template; restoring stand-ins only touches free-text and host fields.
    return tuple(clean_facts(parse_reply(template)).items())


def _parse_text(text: str) -> list[tuple[str, FactValue]]:
    """parse_reply(text), through the template cache."""
    template, originals = _template(text)
    if not originals:
        return list(_parse_template(text))

    def restore(found: re.Match[str]) -> str:
        index = int(next(group for group in found.groups() if group is not None))
        return originals[index] if index < len(originals) else found.group(0)

    return [
        (key, _STAND_IN.sub(restore, value) if isinstance(value, str) and ("zz" in value or "0.0.0." in value)
         else value)
        for key, value in _parse_template(template)
    ]


def _relay_facts(relay: str, facts: Facts) -> None:
    relay = relay.strip()
    if not relay or relay in ("none", "local") or "/" in relay:
        return
    found = _RELAY.match(relay)
    if not found:
        return
    host = found.group("host")
    if host.replace(".", "").isdecimal():
        facts.setdefault("smtp.remote_ip", host)
    else:
        facts.setdefault("smtp.remote_host", host.rstrip("."))
    if found.group("ip"):
        facts.setdefault("smtp.remote_ip", found.group("ip"))
    if found.group("port"):
        port = int(found.group("port"))
        if 0 < port < 65536:
            facts.setdefault("smtp.remote_port", port)


def _domain(recipient: str | None) -> str | None:
    if recipient and "@" in recipient:
        return recipient.rsplit("@", 1)[1].strip("<> ").lower().rstrip(".") or None
    return None


def _record(
    facts: Facts, text: str, recipient: str | None, action: str, tag: str, status: str | None,
    source: str, number: int,
) -> IntakeRecord:
    """`tag` is what names the program that wrote the line (`postfix/smtp`, `sendmail`, Exim's
    message id and flag): the evidence for who reported the failure."""
    if text:
        for key, value in _parse_text(text):
            facts.setdefault(key, value)
        if "smtp.text" not in facts:
            facts["smtp.text"] = clean_text(text)
    if status and _STATUS_CODE.match(status):
        said = facts.get("smtp.enhanced")
        if not isinstance(said, str) or (said.endswith(".0.0") and not status.endswith(".0.0")):
            facts["smtp.enhanced"] = status
    facts["input.kind"] = "log"
    facts["report.action"] = action
    domain = _domain(recipient)
    if domain:
        facts["context.recipient_domain"] = domain
    _, inferred = infer_context(facts, {"log-tag": tag, "text": text})
    extra: dict[str, object] = {"line": number, "report_status": status}
    # Every value is typed and checked where it is read (template facts were cleaned once).
    return IntakeRecord(facts=facts, kind="log", source=f"{source}:{number}", recipient=recipient, extra=extra,
                        inferred=inferred)


def _after_paren(line: str, start: int) -> str:
    """The text inside the parentheses that follow `status=...`, keeping nested parentheses."""
    open_at = line.find("(", start)
    if open_at < 0:
        return ""
    close_at = line.rfind(")")
    return line[open_at + 1 : close_at if close_at > open_at else len(line)]


def _postfix(line: str, source: str, number: int) -> IntakeRecord | None:
    at = line.find(" status=")
    status_word = line[at + 8 :].split(" ", 1)[0].rstrip(",")
    action = _POSTFIX_STATUS_ACTION.get(status_word)
    if action is None:
        return None
    head = line[:at]
    recipient = _field(head, " to=<", ">") or None
    facts: Facts = {}
    _relay_facts(_field(head, " relay=", ","), facts)
    text = _after_paren(line, at)
    if status_word == "expired":
        facts["outer.expired"] = True
    tag = _POSTFIX_TAG.search(head)
    return _record(facts, text, recipient, action, tag.group(0) if tag else f"status={status_word}",
                   _field(head, " dsn=", ",") or None, source, number)


def _field(text: str, start: str, end: str) -> str:
    """The value between `start` and `end` in a Postfix `key=value, ` list ('' when absent)."""
    at = text.find(start)
    if at < 0:
        return ""
    at += len(start)
    stop = text.find(end, at)
    return text[at:] if stop < 0 else text[at:stop]


def _kv_fields(text: str) -> dict[str, str]:
    """Sendmail's `key=value, key=<a,b>, ...` as `dict(re.findall(r"(\\w+)=(<[^>]*>|[^,]*)", text))`
    would read it, in time linear in the text (that regex rescans to the end from every `<`)."""
    fields: dict[str, str] = {}
    position = 0
    no_closing_after = len(text) + 1  # a `>` search that failed from here on fails for all later ones
    while True:
        found = _KEY.search(text, position)
        if found is None:
            return fields
        start = found.end()
        end = -1
        if text.startswith("<", start) and start < no_closing_after:
            close = text.find(">", start)
            if close < 0:
                no_closing_after = start
            else:
                end = close + 1
        if end < 0:
            comma = text.find(",", start)
            end = len(text) if comma < 0 else comma
        fields[found.group(1)] = text[start:end]
        position = end


def _sendmail(line: str, source: str, number: int) -> IntakeRecord | None:
    at = line.find(" stat=")
    text = line[at + 6 :].strip()
    lower = text.lower()
    if lower.startswith(_SENDMAIL_DELIVERED):
        return None
    fields = _kv_fields(line[:at])
    dsn = fields.get("dsn", "")
    if dsn.startswith("2"):
        return None
    action = "delayed" if lower.startswith("deferred") or dsn.startswith("4") else "failed"
    recipient = fields.get("to", "").split(",")[0].strip("<>") or None
    facts: Facts = {}
    _relay_facts(fields.get("relay", ""), facts)
    if lower.startswith("deferred:"):
        text = text[9:].strip()
    tag = _SENDMAIL_TAG.search(line, 0, at)
    return _record(facts, text, recipient, action, tag.group(0) if tag else "stat=", dsn or None, source, number)


def _exim(line: str, source: str, number: int) -> IntakeRecord | None:
    found = _EXIM_LINE.match(line)
    if not found:
        return None
    action = "failed" if found.group("flag") == "**" else "delayed"
    recipient = found.group("rcpt").rstrip(":")
    if found.group("id") is None and "@" not in recipient:
        return None  # without the message id, only an address makes it an Exim delivery line
    text = found.group("text")
    rest = found.group("rest") or ""
    facts: Facts = {}
    host = _EXIM_HOST.search(line)
    if host:
        facts["smtp.remote_host"] = host.group("host").rstrip(".")
        if host.group("ip"):
            facts["smtp.remote_ip"] = host.group("ip")
    errno = _EXIM_ERRNO.search(line)
    if errno and int(errno.group(1)) in _ERRNO_TCP:
        facts["tcp.state"] = _ERRNO_TCP[int(errno.group(1))]
        facts["smtp.stage"] = "connect"
    if not text and rest:
        text = rest
    if found.group("id") is not None:
        tag = f"{found.group('id')} {found.group('flag')}"
    else:  # pasted without timestamp and id: Exim's router or transport (R=dnslookup) names it
        router = (rest.split() or [""])[0].rstrip(":")
        tag = f"{found.group('flag')} {router}" if router[:2] in ("R=", "T=") else found.group("flag")
    return _record(facts, text, recipient, action, tag, None, source, number)


def _postfix_attempt(line: str, source: str, number: int) -> IntakeRecord | None:
    """Postfix lines about one failed connection attempt, logged without a status= field."""
    found = _POSTFIX_ATTEMPT.search(line)
    if not found:
        return None
    text = found.group("text")
    if text.startswith(_POSTFIX_ATTEMPT_WARNINGS):
        text = text.removeprefix("warning: ")
    facts: Facts = {}
    tag = _POSTFIX_TAG.search(line)
    record = _record(facts, text, None, "delayed", tag.group(0) if tag else "postfix", None, source, number)
    return record if any(key in record.facts for key in _POSTFIX_ATTEMPT_FACTS) else None


def parse_log_line(line: str, source: str = "<log>", number: int = 1) -> IntakeRecord | None:
    """A record for one delivery-failure line, or None for every other line."""
    if len(line) > MAX_LINE_CHARS:
        line = line[:MAX_LINE_CHARS]
    if " status=" in line:
        if any(word in line for word in _POSTFIX_DELIVERED):
            return None
        return _postfix(line, source, number)
    if " stat=" in line:
        return _sendmail(line, source, number)
    if " ** " in line or " == " in line or line.startswith(("** ", "== ")):
        return _exim(line, source, number)
    if "postfix/" in line and any(word in line for word in _POSTFIX_ATTEMPT_WORDS):
        return _postfix_attempt(line, source, number)
    return None


def parse_log_lines(lines: Iterable[str], source: str = "<log>", year: int | None = None) -> Iterator[IntakeRecord]:
    """Records for the delivery-failure lines among `lines` (numbered from 1). Each record's
    `extra["time"]` is the line's timestamp in UTC ISO form when it has one; syslog's lack a year,
    taken from `year` (default: the current one)."""
    for number, line in enumerate(lines, 1):
        record = parse_log_line(line, source, number)
        if record is not None:
            when = log_time(line, year)
            if when is not None:
                record.extra["time"] = when
            yield record


_SYSLOG_TIME = re.compile(r"([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) ")
_ISO_TIME = re.compile(r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:?\d\d)?")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def log_time(line: str, year: int | None = None) -> str | None:
    """The timestamp at the start of a log line as `YYYY-MM-DDTHH:MM:SSZ` (UTC), or None."""
    from datetime import UTC, datetime

    head = line[:40]
    iso = _ISO_TIME.match(head)
    if iso:
        zone = iso.group(3) or "+00:00"
        if zone == "Z":
            zone = "+00:00"
        elif ":" not in zone:
            zone = zone[:3] + ":" + zone[3:]
        try:
            when = datetime.fromisoformat(f"{iso.group(1)}T{iso.group(2)}{zone}")
        except ValueError:
            return None
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    syslog = _SYSLOG_TIME.match(head)
    if syslog and syslog.group(1) in _MONTHS:
        try:
            when = datetime(year or datetime.now(UTC).year, _MONTHS[syslog.group(1)], int(syslog.group(2)),
                            int(syslog.group(3)), int(syslog.group(4)), int(syslog.group(5)), tzinfo=UTC)
        except ValueError:
            return None
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


# The patterns the paste page runs, by the name paste.js reads them under (case-sensitive, searched).
EXPORTED_PATTERNS: dict[str, re.Pattern[str]] = {
    "key": _KEY, "status_code": _STATUS_CODE, "relay": _RELAY, "exim_line": _EXIM_LINE, "exim_host": _EXIM_HOST,
    "exim_errno": _EXIM_ERRNO, "postfix_attempt": _POSTFIX_ATTEMPT, "postfix_tag": _POSTFIX_TAG,
    "sendmail_tag": _SENDMAIL_TAG,
}


def export_log_reading() -> dict[str, object]:
    """What the paste page needs to read a pasted log line as `parse_log_line` does: its patterns
    in JavaScript's spelling (see jsregex) and its tables. paste.js ports the steps between them."""
    from ..jsregex import js_pattern

    return {
        "max_line_chars": MAX_LINE_CHARS,
        "patterns": {name: js_pattern(compiled) for name, compiled in EXPORTED_PATTERNS.items()},
        "errno_tcp": {str(number): state for number, state in _ERRNO_TCP.items()},
        "postfix_status_action": dict(_POSTFIX_STATUS_ACTION),
        "postfix_delivered": list(_POSTFIX_DELIVERED),
        "sendmail_delivered": list(_SENDMAIL_DELIVERED),
        "postfix_attempt_words": list(_POSTFIX_ATTEMPT_WORDS),
        "postfix_attempt_warnings": list(_POSTFIX_ATTEMPT_WARNINGS),
        "postfix_attempt_facts": list(_POSTFIX_ATTEMPT_FACTS),
    }
