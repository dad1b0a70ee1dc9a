"""Context from evidence: who reported a failure, whose server answered, and which way the mail
was going, worked out from what the input shows.

Every parser (reply, NDR, log line) hands this step the facts it read and the texts it saw, by
source: the error text, the log line's program tag, the DSN's Reporting-MTA / Remote-MTA /
Received-From-MTA, the report's headers... `infer_context` fills `context.system` (the system
that wrote the report or log line), `context.remote_provider` (the provider whose server
answered), `context.direction` and `context.destination`, each with the text that showed it.
What the parser already knows is never overridden, and facts the reader states win over all of
this (`triage.diagnose_text` drops an inferred fact the reader gave).

The markers are data (`MARKERS`, `DERIVED`): the paste page gets the ones that apply to a pasted
text from `site_export`, so the browser and Python infer the same thing from the same table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from ..facts import Facts, InferredFact

# Where evidence comes from, in words the report prints ("from log tag postfix/smtp").
SOURCES: dict[str, str] = {
    "text": "error text",
    "remote-host": "answering server",
    "log-tag": "log tag",
    "reporting-mta": "Reporting-MTA",
    "remote-mta": "Remote-MTA",
    "received-from-mta": "Received-From-MTA",
    "from": "From header",
    "received": "Received header",
    "message-id": "Message-ID header",
    "x-mailer": "X-Mailer header",
    "headers": "X-MS-Exchange header",
    "notice": "report text",
    "dsn-fields": "DSN field",
    "failed-recipients-notice": "report text (with X-Failed-Recipients)",
    "fact": "inferred fact",
}
# The same places in Brazilian Portuguese (header and field names stay as the standards spell them).
SOURCES_PT_BR: dict[str, str] = {
    "text": "texto do erro",
    "remote-host": "servidor que respondeu",
    "log-tag": "identificador do log",
    "reporting-mta": "Reporting-MTA",
    "remote-mta": "Remote-MTA",
    "received-from-mta": "Received-From-MTA",
    "from": "cabeçalho From",
    "received": "cabeçalho Received",
    "message-id": "cabeçalho Message-ID",
    "x-mailer": "cabeçalho X-Mailer",
    "headers": "cabeçalho X-MS-Exchange",
    "notice": "texto do relatório",
    "dsn-fields": "campo do DSN",
    "failed-recipients-notice": "texto do relatório (com X-Failed-Recipients)",
    "fact": "fato inferido",
}
SOURCE_LABELS: dict[str, dict[str, str]] = {"en": SOURCES, "pt-BR": SOURCES_PT_BR}
# The sources a pasted text has, read as a reply or as a log line (the paste page exports the
# markers that use them).
TEXT_SOURCES = ("text", "remote-host", "log-tag")
MAX_EVIDENCE_CHARS = 120
MAX_SOURCE_CHARS = 20_000


@dataclass(frozen=True)
class ContextMarker:
    """`field` is `value` when `pattern` (Python `re`, case-insensitive, searched) is found in one
    of `sources`; with `also`, a second pattern must be found in another source too."""

    field: str
    value: str
    pattern: str
    sources: tuple[str, ...]
    also: tuple[str, str] | None = None
    # Lower-case ASCII words of which every match contains at least one (in the text folded as
    # `re.IGNORECASE` folds it): the regex runs only on texts that hold one (scans call this for
    # every record; tests/test_context.py checks the words against the patterns). Empty: always run.
    needles: tuple[str, ...] = ()


@dataclass(frozen=True)
class DerivedContext:
    """`field` is `value` when the fact `when_field` has one of `when_values` (known or inferred),
    unless `context.system` is `when_field`'s value (a provider reporting about its own server)."""

    field: str
    value: str
    when_field: str
    when_values: tuple[str, ...]


_EXO_STAMP = r"\[[A-Z0-9]{6,}(?:\.[A-Z0-9-]+)?\.prod\.(?:protection\.)?outlook\.com(?![A-Za-z0-9_])"

# Order matters: for each field the first marker found wins, so stronger and more specific
# evidence comes first (the report's generator before the text it quotes; Outlook.com's own
# links before the Exchange Online server stamp both of them print).
MARKERS: tuple[ContextMarker, ...] = (
    # --- who reported it: MTA log tags -------------------------------------------------------
    ContextMarker("context.system", "postfix", r"^postfix(?:-[\w.-]+)?/|^status=(?:deferred|bounced|expired)", ("log-tag",)),
    ContextMarker("context.system", "sendmail", r"^sendmail\b|^sm-mta\b|^stat=", ("log-tag",)),
    ContextMarker("context.system", "exim", r"^exim\b|^\w{6}-\w{6,11}-\w{2,4} (?:\*\*|==)|^(?:\*\*|==) [RT]=\w", ("log-tag",)),
    ContextMarker("context.system", "qmail", r"^qmail", ("log-tag",)),
    # --- who reported it: the bounce message's headers and layout ----------------------------
    ContextMarker("context.system", "outlook-com", r"x-ms-exchange", ("headers",),
                  also=("from", r"(?:hotmail|outlook)\.com"), needles=("x-ms-exchange",)),
    ContextMarker("context.system", "exchange-online", r"x-ms-exchange", ("headers",),
                  also=("clues", r"outlook\.com|office365"), needles=("x-ms-exchange",)),
    ContextMarker("context.system", "exchange-online", r"\.prod\.outlook\.com|protection\.outlook\.com|outlook\.office365\.com",
                  ("reporting-mta", "received", "message-id", "from", "notice"), needles=("outlook.",)),
    ContextMarker("context.system", "exchange-server", r"microsoft exchange|x-ms-exchange|msexchange",
                  ("headers", "x-mailer", "received", "message-id", "from", "notice"), needles=("exchange",)),
    ContextMarker("context.system", "gmail", r"googlemail\.com", ("from",), needles=("googlemail.com",)),
    ContextMarker("context.system", "gmail", r"mx\.google\.com", ("message-id", "reporting-mta", "notice"), needles=("mx.google.com",)),
    ContextMarker("context.system", "gmail", r"gmail\.com|google\.com", ("reporting-mta",), needles=("gmail.com", "google.com")),
    ContextMarker("context.system", "yahoo", r"yahoo", ("from", "reporting-mta"), needles=("yahoo",)),
    ContextMarker("context.system", "postfix", r"\(postfix\)|this is the mail system at host",
                  ("received", "notice", "from", "x-mailer", "message-id"),
                  needles=("(postfix)", "this is the mail system at host")),
    ContextMarker("context.system", "postfix", r"x-postfix", ("dsn-fields",), needles=("x-postfix",)),
    ContextMarker("context.system", "qmail", r"qmail-send program|\(qmail ", ("notice", "received", "from"), needles=("qmail",)),
    ContextMarker("context.system", "exim", r"exim", ("received", "x-mailer", "message-id", "notice", "from"), needles=("exim",)),
    ContextMarker("context.system", "exim", r"mail delivery software", ("failed-recipients-notice",), needles=("mail delivery software",)),
    ContextMarker("context.system", "sendmail", r"sendmail|\(8\.\d+\.\d+/8\.\d+\.\d+\)",
                  ("received", "x-mailer", "message-id", "notice", "from"), needles=("sendmail", "(8.")),
    # --- who reported it: the error text itself ----------------------------------------------
    # A log line pasted as text (the paste page reads everything as text).
    ContextMarker("context.system", "postfix", r"(?<![A-Za-z0-9_/])postfix(?:-[A-Za-z0-9_.-]+)?/[a-z]+\[[0-9]+\]:", ("text",), needles=("postfix",)),
    ContextMarker("context.system", "sendmail", r"(?<![A-Za-z0-9_/])(?:sendmail|sm-mta)\[[0-9]+\]:", ("text",), needles=("sendmail[", "sm-mta[")),
    ContextMarker("context.system", "exchange-online",
                  r"\[(?:LastAttemptedServerName|LastAttemptedIP|Hostname)=|SuspiciousRemoteServerError", ("text",), needles=("lastattempted", "hostname=", "suspiciousremote")),
    ContextMarker("context.system", "exchange-online", r"(?<![0-9.])5\.4\.3[0-9]{2}[ '\"]+message expired", ("text",), needles=("message expired",)),
    ContextMarker("context.system", "exchange-online",
                  r"generating server: ?[A-Za-z0-9_.-]+\.(?:prod\.outlook\.com|outlook\.office365\.com)", ("text", "notice"), needles=("generating server",)),
    # --- who answered: the remote server's name ----------------------------------------------
    ContextMarker("context.remote_provider", "outlook-com",
                  r"(?:^|\.)(?:hotmail|live|msn)\.com$|\.olc\.protection\.outlook\.com$", ("remote-mta", "remote-host"),
                  needles=("hotmail.com", "live.com", "msn.com", ".olc.protection.outlook.com")),
    ContextMarker("context.remote_provider", "exchange-online",
                  r"\.protection\.outlook\.com$|\.prod\.outlook\.com$|\.outlook\.office365\.com$|^smtp\.office365\.com$",
                  ("remote-mta", "remote-host"), needles=("outlook.com", "office365.com")),
    ContextMarker("context.remote_provider", "gmail", r"(?:^|\.)(?:google|googlemail|gmail)\.com$", ("remote-mta", "remote-host"),
                  needles=("google.com", "googlemail.com", "gmail.com")),
    ContextMarker("context.remote_provider", "yahoo", r"yahoo|\.yahoodns\.net$|(?:^|\.)aol\.com$", ("remote-mta", "remote-host"),
                  needles=("yahoo", "aol.com")),
    # --- who answered: what the quoted reply says about its writer ---------------------------
    ContextMarker("context.remote_provider", "gmail", r"(?<![A-Za-z0-9_])gsmtp(?![A-Za-z0-9_])|support\.google\.com/mail", ("text",), needles=("gsmtp", "support.google.com")),
    ContextMarker("context.remote_provider", "yahoo", r"postmaster\.yahoo|senders\.yahooinc|yahoodns\.net", ("text",), needles=("yahoo",)),
    ContextMarker("context.remote_provider", "outlook-com",
                  r"postmaster\.live\.com|mail\.live\.com/mail/troubleshooting|sendersupport\.olc\.protection\.outlook\.com",
                  ("text",), needles=("live.com", "sendersupport")),
    ContextMarker("context.remote_provider", "exchange-online", _EXO_STAMP, ("text",), needles=("outlook.com",)),
    ContextMarker("context.remote_provider", "exchange-online",
                  r"\(AS[0-9]{3,5}\)|(?<![A-Za-z0-9_])AS\([0-9]{3,5}\)|sender\.office\.com|smtp\.office365\.com", ("text",), needles=("(as", "as(", "sender.office.com", "smtp.office365.com")),
    ContextMarker("context.remote_provider", "exchange-online", r"\.prod\.outlook\.com|\.protection\.outlook\.com", ("remote-mta",),
                  needles=(".prod.outlook.com", ".protection.outlook.com")),
    # --- which way: the words of the report --------------------------------------------------
    ContextMarker("context.direction", "outbound-connector", r"(?<![A-Za-z0-9_])outbound ?connector(?![A-Za-z0-9_])", ("text", "notice"), needles=("connector",)),
)

# A public provider's server answered: the mail was going out to the internet, to a destination
# nobody in the sender's organisation runs.
_PUBLIC = ("gmail", "yahoo", "outlook-com")
DERIVED: tuple[DerivedContext, ...] = (
    DerivedContext("context.direction", "outbound-internet", "context.remote_provider", _PUBLIC),
    DerivedContext("context.destination", "internet", "context.remote_provider", _PUBLIC),
)


def needle_text(text: str) -> str:
    """`text` lower-cased so that a lower-case ASCII word `re.search(word, text, re.I)` finds is a
    substring of it: `lower()`, plus the three characters `re.IGNORECASE` equates with an ASCII
    letter that `lower()` leaves apart (the Kelvin sign lowers to k). Positions are not kept: only
    membership is asked. Far faster than a per-character translation of non-ASCII text."""
    if text.isascii():
        return text.lower()
    return text.replace("\u0130", "i").lower().replace("\u0131", "i").replace("\u017f", "s")


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


def _snippet(source_text: str, found: re.Match[str]) -> str:
    """The matched text, widened to the word it sits in for a stamp or host (at most 120 chars)."""
    start, end = found.start(), found.end()
    # Widen to whole words: `postfix/` is shown as `postfix/smtp`, a stamp with its full name.
    limit = max(0, start - 40)
    while start > limit and not source_text[start - 1].isspace() and source_text[start - 1] not in "[(<'\"":
        start -= 1
    limit = min(len(source_text), end + 60)
    while end < limit and not source_text[end].isspace() and source_text[end] not in "])>'\",;":
        end += 1
    text = " ".join(source_text[start:end].split())[:MAX_EVIDENCE_CHARS]
    # Evidence is printed to terminals and pages: no control characters or escape sequences.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _search(marker: ContextMarker, evidence: Mapping[str, str], folded: dict[str, str]) -> tuple[str, str] | None:
    for source in marker.sources:
        text = evidence.get(source)
        if not text:
            continue
        capped = text[:MAX_SOURCE_CHARS]
        if marker.needles:
            # Each source is folded once per record; most markers stop at this substring test.
            fold = folded.get(source)
            if fold is None:
                fold = folded[source] = needle_text(capped)
            if not any(needle in fold for needle in marker.needles):
                continue
        if len(text) <= 100:
            # Short sources (log tags, host names, DSN fields) repeat across a log or a mailbox.
            snippet = _search_short(marker.pattern, text)
            if snippet is not None:
                return source, snippet
            continue
        found = _compiled(marker.pattern).search(capped)
        if found:
            return source, _snippet(capped, found)
    return None


@lru_cache(maxsize=16384)
def _search_short(pattern: str, text: str) -> str | None:
    found = _compiled(pattern).search(text)
    return _snippet(text, found) if found else None


def _also_holds(marker: ContextMarker, evidence: Mapping[str, str]) -> bool:
    if marker.also is None:
        return True
    source, pattern = marker.also
    text = evidence.get(source) or ""
    return _compiled(pattern).search(text[:MAX_SOURCE_CHARS]) is not None


def infer(facts: Mapping[str, object], evidence: Mapping[str, str]) -> list[InferredFact]:
    """The context facts `evidence` shows that `facts` does not already hold, with their evidence."""
    inferred: list[InferredFact] = []
    known = set(facts)
    folded: dict[str, str] = {}
    for marker in MARKERS:
        if marker.field in known:
            continue
        hit = _search(marker, evidence, folded)
        if hit is None or not _also_holds(marker, evidence):
            continue
        known.add(marker.field)
        inferred.append(InferredFact(marker.field, marker.value, hit[1], hit[0]))
    values = {**{f.field: f.value for f in inferred}, **dict(facts)}
    for rule in DERIVED:
        if rule.field in values:
            continue
        cause = values.get(rule.when_field)
        if cause in rule.when_values and values.get("context.system") != cause:
            values[rule.field] = rule.value
            inferred.append(InferredFact(rule.field, rule.value, f"{rule.when_field}={cause}", "fact"))
    return inferred


def infer_context(facts: Facts, evidence: Mapping[str, str]) -> tuple[Facts, list[InferredFact]]:
    """Add to `facts` (in place, and returned) the context the evidence shows; also return what was
    added, with its evidence. The answering server's name (`smtp.remote_host`) is evidence too."""
    host = facts.get("smtp.remote_host")
    if isinstance(host, str) and "remote-host" not in evidence:
        evidence = {**evidence, "remote-host": host}
    inferred = infer(facts, evidence)
    for fact in inferred:
        facts[fact.field] = fact.value
    return facts, inferred


def describe(fact: InferredFact, from_word: str = "from", lang: str = "en") -> str:
    """`context.system=postfix (from log tag postfix/smtp)`, as the reports print it, with the
    place named in `lang` (`from_word` is the report's own word for "from")."""
    where = SOURCE_LABELS.get(lang, SOURCES).get(fact.source, fact.source)
    return f"{fact.field}={fact.value} ({from_word} {where} {fact.evidence})"


def export_markers() -> dict[str, object]:
    """The markers that apply to a pasted text, and the derived rules, for the paste page; each
    pattern in JavaScript's spelling (a marker JavaScript cannot express is left out and named)."""
    from ..jsregex import UnsupportedPattern, js_regex

    markers: list[dict[str, object]] = []
    skipped: list[str] = []
    for marker in MARKERS:
        sources = [s for s in marker.sources if s in TEXT_SOURCES]
        if not sources or marker.also is not None:
            continue
        try:
            source, flags = js_regex(marker.pattern)
        except UnsupportedPattern as exc:
            skipped.append(f"{marker.field}={marker.value}: {exc}")
            continue
        markers.append({"field": marker.field, "value": marker.value, "pattern": source, "flags": "i" + flags,
                        "sources": sources})
    derived = [{"field": d.field, "value": d.value, "when_field": d.when_field, "when_values": list(d.when_values)}
               for d in DERIVED]
    return {"markers": markers, "derived": derived, "source_labels": {k: {lang: labels[k] for lang, labels in SOURCE_LABELS.items()}
                                                               for k in (*TEXT_SOURCES, "fact")},
            "skipped": skipped}
