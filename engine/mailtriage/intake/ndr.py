"""Read non-delivery reports and delay notices (RFC 3464 DSNs, Exchange/Office 365 NDRs and the
plain-text bounces of Postfix, Sendmail, Exim, qmail and others): one record per failed or delayed
recipient, and nothing at all for messages that are not bounces.

The approach is generic rather than one parser per MTA: take the machine-readable DSN fields when
there are any, and otherwise find the recipients where bounce layouts put them (an address on a
line of its own, after "delivered to", in X-Failed-Recipients) and read the error text that
follows each one with the reply parser.
"""

from __future__ import annotations

import codecs
import email
import json
import re
from collections.abc import Iterator
from email.header import Header, decode_header, make_header
from email.message import Message
from email.policy import compat32
from typing import Any

from ..errors import InputError
from ..facts import Facts, InferredFact
from ..textsafe import text_bytes
from . import UTF8_BOM, IntakeRecord, clean_facts
from .context import infer_context
from .reply import RETURNED_MESSAGE, clean_text, find_candidates, parse_reply

# A bigger message is cut: bounce notices are small, whatever they quote is not needed.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_NOTICE_CHARS = 60_000
MAX_PART_DEPTH = 12
MAX_BOUNDARIES = 200
_BOUNDARY = re.compile(rb"boundary\s*=", re.IGNORECASE)

# Linear on any text (a 200 kB header must not take minutes): a match starts only where a run of
# local-part characters starts (the lookbehind), and the possessive quantifiers never give back
# what they took ('@' and '.' are outside the classes they follow, so nothing is lost by that).
_LOCAL = r"\w.!#$%&'*+/=?^`{|}~\-"
_ADDRESS = rf"(?<![{_LOCAL}])[{_LOCAL}]++@[A-Za-z0-9\-]++(?:\.[A-Za-z0-9\-]++)++(?![A-Za-z0-9\-]|\.[A-Za-z0-9])"
_ADDRESS_RE = re.compile(_ADDRESS)
# An address at the start of a line, where Postfix, qmail, Exim, Sendmail and Exchange list them.
_LINE_RECIPIENT = re.compile(
    rf"^[ \t]*+(?:>++[ \t]*+|[*\-\u2022]{{1,2}}+[ \t]*+)?+"
    r"(?:RCPT To:|Recipient address:|Original-Recipient:|Recipient:|Delivery failed:|Failed:|Address:|To:)?+"
    rf"[ \t]*+[<\"']?(?P<addr>{_ADDRESS})[>\"']?",
    re.M | re.I,
)


def _phrases_then(phrases: tuple[str, ...], tail: str) -> re.Pattern[str]:
    """`(?:phrase|phrase...)tail`, case-insensitive, spelt so that the regex engine skips in C to the
    next letter that starts a phrase: the first letter is matched by a case-sensitive class and each
    phrase re-checks it with a lookbehind. Same matches as `re.compile("(?:" + "|".join(phrases) +
    ")" + tail, re.I)` (tests/test_intake_ndr.py), several times faster on a notice: Python's `re`
    tries every alternative at every position of a case-insensitive alternation. Each phrase starts
    with an ASCII letter; the class holds every character `re.IGNORECASE` equates with it."""
    firsts = "".join(sorted({phrase[0].lower() for phrase in phrases}))
    assert firsts.isalpha() and firsts.isascii(), firsts
    others = "".join(_OTHER_CASES.get(letter, "") for letter in firsts)
    alternatives = "|".join(f"(?<={phrase[0]}){phrase[1:]}" for phrase in phrases)
    return re.compile(f"[{firsts}{firsts.upper()}{others}](?i:(?:{alternatives}){tail})")


# Characters besides the two ASCII cases that `re.IGNORECASE` matches with an ASCII letter.
_OTHER_CASES = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


# An address inside a sentence that names it as the failed recipient.
PHRASE_RECIPIENT_PHRASES = (
    "rcpt to:", "delivered to", "delivering your (?:mail|message) to", "delivery to", "could not be delivered to",
    "failed recipient:?", "following recipients?:", "following addresses:", "not be delivered to",
    "unable to deliver (?:your )?message to", "undeliverable to", "recipient", "address",
    "duplicated message-id in",  # a mailing list manager's loop alert names the list
    "member of this mailing list")  # ... and so does its refusal of a non-member's post
PHRASE_RECIPIENT_TAIL = r"\s*+(?:<|\")?(?P<addr>" + _ADDRESS + r")"
_PHRASE_RECIPIENT = _phrases_then(PHRASE_RECIPIENT_PHRASES, PHRASE_RECIPIENT_TAIL)
# "Unknown user: a@b", "Could not be delivered to: <a@b>" (IMail, KDDI, MailFoundry and others).
COLON_RECIPIENT_PHRASES = (
    r"unknown[\w ]{0,30}?(?:user|userid|recipient|address)", r"invalid[\w ]{0,30}?(?:user|userid|recipient|address)",
    "user unknown", "could not be delivered to", "unable to deliver (?:your )?(?:message|mail) to",
    "undeliverable to", "delivery failed for", "failed recipient", "invalid recipient", "bad recipient")
COLON_RECIPIENT_TAIL = r"\s*:\s*[<\"]?(?P<addr>" + _ADDRESS + r")"
_COLON_RECIPIENT = _phrases_then(COLON_RECIPIENT_PHRASES, COLON_RECIPIENT_TAIL)
# "User mailbox exceeds allowed size: a@b", "Delivery failed 20 attempts: a@b" (IMail and other
# notices that state the reason, a colon, and the address that ends the line). The reason holds
# no colon and is taken possessively, so each line is tried once, in linear time.
_REASON_THEN_ADDRESS = re.compile(
    rf"^[ \t]*+(?P<reason>[A-Za-z][^\n:<>@\"]{{4,100}}+):[ \t]*+[<\"]?(?P<addr>{_ADDRESS})[>\"]?[ \t.]*$",
    re.M,
)
# The words that make the text before the colon a reason rather than a label ("Sent by:", "Reply to:").
_REASON_WORDS = re.compile(
    r"fail|error|unknown|invalid|illegal|exceed|full|quota|reject|refus|denied|not |no such|undeliver|unable|"
    r"cannot|can't|could not|disabled|expired|blocked|bad |problem|attempt|unreachable|timed? ?out",
    re.I,
)
_CUT_MARKERS = RETURNED_MESSAGE  # one list for pasted replies and whole messages
_QUOTED_TO = re.compile(r"^[ \t]*To:[ \t]*(.+)$", re.M | re.I)
_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")

_BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "mail delivery", "mail.delivery", "mdaemon", "bounce",
                   "mailerdaemon", "microsoftexchange", "noreply-dmarc")
_BOUNCE_SUBJECTS = (
    "undeliver", "delivery status notification", "failure notice", "returned mail", "delivery fail",
    "mail delivery", "non-delivery", "nondelivery", "delivery notification", "could not be delivered",
    "not delivered", "delivery problem", "delayed mail", "delivery delayed", "warning: message",
    "message delayed", "delivery report", "rejected", "bounce", "mail system error", "unzustellbar",
    "non remis", "error sending", "returned to sender", "not be delivered", "delivery has failed",
    "undelivered", "failed delivery", "permanent error", "temporary error", "delivery error",
    "error notification", "loop alert", "not member", "\u30a8\u30e9\u30fc",  # Japanese "error" (KDDI and other carriers)
)
# Layouts of known bounce generators: without a status code, only these are trusted.
_LAYOUT_PHRASES = (
    "the mail system", "this is the qmail-send program", "following address(es) failed",
    "following addresses had permanent fatal errors", "following addresses had transient",
    "delivery has failed to these recipients", "did not reach the following recipient",
    "could not be delivered to one or more recipients", "delivery to the following recipient",
    "there was an error delivering your mail", "your message wasn't delivered", "could not be reached",
    "i'm afraid i wasn't able to deliver", "unable to deliver message to the following",
    "message could not be delivered", "following recipients failed", "delivery failed",
    "not be delivered to", "was not delivered to", "has not yet been delivered", "permanent error",
    "transcript of session follows", "diagnostic information for administrators",
    "your message did not reach", "undeliverable", "delivery to the following recipients failed",
    "returned to sender", "user unknown", "no such user", "mailbox unavailable",
    # Layouts learnt from the families' own notices (their openings and recipient lists):
    "this is the mailer-daemon",  # OpenSMTPD
    "following list of recipients", "to the following recipients", "for the following recipients",
    "automatically generated delivery status notification",  # gateways that write no DSN fields
    "body of message generated response",  # IMail quoting the remote server
    "does not like recipient", "remote host said",  # qmail
    "not a member of this mailing list", "not member article from",  # FML and other list managers
    "malformed address",  # Exim's address parser
    "could not find a gateway",
    "failure reasons",  # Lotus Notes
    "the recipient name is not recognized", "could not be reached",  # Exchange 2000/2003
)
_DELAY_PHRASES = (
    "has not yet been delivered", "not been delivered yet", "will continue to try", "will keep trying",
    "will retry", "still trying", "delivery delayed", "delayed mail", "delivery is delayed",
    "warning: message", "this is only a warning", "this is a warning message only",
    "delivery status notification (delay)", "temporary problem", "will try again",
    "still being retried", "no action is required on your part",
    "message is delayed", "temporary failure report", "do not need to re-send",
)
# What a notice without a status code says when it reports a failure (checked only on messages that
# already look like bounces: a bounce sender or subject, a DSN, X-Failed-Recipients).
_FAILURE_TEXT = re.compile(
    r"could(?: not|n't) be delivered|unable to deliver|undeliverable|not (?:be )?delivered|"
    r"delivery (?:has )?failed|failed to deliver|error (?:has )?occurred while (?:attempting|trying) to deliver|"
    r"(?:had|has) (?:permanent |transient )?delivery (?:problems|errors)|failure reasons|"
    r"(?:unknown|invalid)(?: \w+){0,3}? (?:user(?:id)?|recipient|address|host|domain)|user unknown|host unknown|"
    r"no such (?:user|mailbox|address|account|domain)|(?:does|did) not exist|doesn't exist|"
    r"mailbox (?:is )?full|over quota|quota exceeded|exceeded the (?:local )?limit|no valid recipients|"
    r"rejected by|account (?:is |has been )?(?:disabled|suspended)|envelope expired|giving up|gave up|no mx record|duplicated message-id|loop detected|"
    r"exceeds? (?:the )?allowed size|network error|no mx found|temporary failure in mx lookup|not a member of|malformed address|"
    r"could not find a gateway|was aborted after|no valid route|does not like recipient",
    re.I,
)
_GIVEN_UP = ("given up", "gave up", "permanent", "expired", "could not be delivered", "has failed",
             "failed permanently", "giving up", "not be delivered", "undeliverable")


def _header(msg: Message, name: str) -> str:
    """A header as text, decoding RFC 2047 words and tolerating broken encodings."""
    value: object = msg.get(name)  # typed str, but compat32 returns a Header for raw 8-bit values
    if value is None:
        return ""
    if isinstance(value, Header):
        # Raw 8-bit header bytes (UTF-8 headers, RFC 6532) come back as an "unknown-8bit" Header.
        try:
            return "".join(
                chunk.decode("utf-8" if charset in (None, "unknown-8bit") else charset, "replace")
                if isinstance(chunk, bytes) else chunk
                for chunk, charset in decode_header(value)
            )
        except (ValueError, LookupError, UnicodeError, TypeError, AssertionError):
            return str(value)
    text = str(value)
    if "=?" not in text:
        return text  # no encoded word: decoding gives it back unchanged (tests/test_intake_ndr.py)
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError, TypeError, AssertionError):
        return str(value)


def _decode_part(part: Message) -> str:
    return _decode_escapes(_decode_payload(part))


def _decode_payload(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, str):
        return payload
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    try:
        return payload.decode(charset)
    except (UnicodeError, LookupError):
        try:
            return payload.decode("utf-8")
        except UnicodeError:
            return payload.decode("latin-1")


def _walk(part: Message, depth: int = 0) -> Iterator[Message]:
    """Every part of the report, without descending into the returned original message."""
    yield part
    ctype = part.get_content_type()
    if depth >= MAX_PART_DEPTH or ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
        return
    if ctype == "message/delivery-status":
        return
    if part.is_multipart():
        payload = part.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    yield from _walk(sub, depth + 1)


# Fields that open one recipient's block: seen twice in one block, a second recipient began there.
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient")
_ISO_2022_ESCAPE = re.compile(r"\x1b[$(][@A-DBJ]")


def _decode_escapes(text: str) -> str:
    """Japanese text in ISO-2022-JP escape sequences, as DSN fields and parts labelled ASCII carry
    it (Domino, Notes, Japanese carriers), decoded; any other text unchanged."""
    if "\x1b" not in text or not _ISO_2022_ESCAPE.search(text):
        return text
    try:
        return text.encode("ascii").decode("iso-2022-jp")
    except (UnicodeError, LookupError):
        return text


def _dsn_fields(text: str) -> list[dict[str, str]]:
    """RFC 3464 field blocks from text: unfolded `Name: value` lines, blocks split at blank lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for raw_line in text.split("\n"):
        line = raw_line.rstrip()
        if not line:
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[0] in " \t" and last is not None:
            current[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if sep and name and " " not in name.strip() and len(name) < 40:
            last = name.strip().lower()
            if last in _RECIPIENT_FIELDS and last in current:
                blocks.append(current)  # the next recipient's fields with no blank line between
                current = {}
            current[last] = _decode_escapes(value.strip())
        else:
            last = None
    if current:
        blocks.append(current)
    return blocks


def _delivery_status_blocks(part: Message) -> list[dict[str, str]]:
    payload = part.get_payload()
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if isinstance(payload, list) and encoding in ("base64", "quoted-printable"):
        # The parser split the still-encoded body into field blocks: decode it and read it again.
        decoded = _decode_encoded_blocks(payload, encoding)
        if decoded is not None:
            return _dsn_fields(decoded)
    if isinstance(payload, list):
        blocks: list[dict[str, str]] = []
        for block in payload:
            if isinstance(block, Message):
                fields: dict[str, str] = {}
                for key, value in block.items():
                    name = key.lower()
                    if name in _RECIPIENT_FIELDS and name in fields:
                        blocks.append(fields)  # the next recipient's fields with no blank line between
                        fields = {}
                    fields[name] = _decode_escapes(" ".join(str(value).split()))
                payload_text = block.get_payload()
                if isinstance(payload_text, str) and ":" in payload_text:
                    # compat32 puts fields after a malformed line into the body; read them too.
                    for extra in _dsn_fields(payload_text):
                        for key, value in extra.items():
                            fields.setdefault(key, value)
                blocks.append(fields)
        return blocks
    return _dsn_fields(_decode_part(part).replace("\r\n", "\n").replace("\r", "\n"))


def _decode_encoded_blocks(blocks: list[Any], encoding: str) -> str | None:
    """The text of a delivery-status part sent base64 or quoted-printable encoded, or None."""
    import binascii
    import quopri

    try:
        # Each block as the lines it came from: its "headers", then (with no blank line between,
        # as the parser split them at a line without a colon) whatever it kept as a body.
        pieces = []
        for block in blocks:
            if isinstance(block, Message):
                body = block.get_payload()
                lines = [f"{name}:{value}" for name, value in block.items()]
                pieces.append("\n".join([*lines, body] if isinstance(body, str) and body else lines))
        encoded = "\n\n".join(pieces)
        raw = encoded.encode("ascii", "ignore")
        data = binascii.a2b_base64(raw) if encoding == "base64" else quopri.decodestring(raw)
    except (binascii.Error, ValueError, TypeError, LookupError, UnicodeError):
        return None
    text = data.decode("utf-8", "replace")
    return _decode_escapes(text.replace("\r\n", "\n").replace("\r", "\n"))


def _strip_type(value: str) -> str:
    """`rfc822; a@b` -> `a@b`, `dns; mx.example.com` -> `mx.example.com`."""
    _, sep, rest = value.partition(";")
    text = rest if sep and len(_) < 20 and " " not in _.strip() else value
    return text.strip().strip("<>").strip()


def _cut_notice(text: str) -> str:
    found = _CUT_MARKERS.search(text)
    if found and found.start() > 0:
        text = text[: found.start()]
    return text[:MAX_NOTICE_CHARS]


def _html_to_text(html: str) -> str:
    html = _drop_elements(html, ("script", "style"))
    html = re.sub(r"(?i)<br\s*+/?>|</p>|</div>|</tr>|</h\d>", "\n", html)
    text = _strip_tags(html)
    for entity, char in (("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"), ("&quot;", '"'),
                         ("&#39;", "'")):
        text = text.replace(entity, char)
    return text


_ELEMENT_START = re.compile(r"(?i)<(script|style)")


def _drop_elements(html: str, names: tuple[str, ...]) -> str:
    """`html` without its `<script>...</script>` and `<style>...</style>` elements, in one pass
    (a regex `<(script|style).*?</\\1>` rescans the rest of the text for every unclosed tag)."""
    lower = html.lower()
    out: list[str] = []
    position = 0
    unclosed: set[str] = set()  # no closing tag after some point means none after any later one
    for found in _ELEMENT_START.finditer(html):
        if found.start() < position:
            continue
        name = found.group(1).lower()
        if name in unclosed:
            continue
        close = lower.find(f"</{name}>", found.end())
        if close < 0:
            unclosed.add(name)
            if len(unclosed) == len(names):
                break
            continue
        out.append(html[position:found.start()])
        out.append(" ")
        position = close + len(name) + 3
    out.append(html[position:])
    return "".join(out)


def _strip_tags(html: str) -> str:
    """Every `<...>` replaced by a space, in one pass: a `<` with no `>` after it ends the search
    (the regex `<[^>]*>` would rescan the rest of the text from each such `<`)."""
    out: list[str] = []
    position = 0
    while True:
        start = html.find("<", position)
        if start < 0:
            break
        end = html.find(">", start)
        if end < 0:
            break
        out.append(html[position:start])
        out.append(" ")
        position = end + 1
    out.append(html[position:])
    return "".join(out)


class _Report:
    """What one message says, gathered once: headers, DSN blocks and the human-readable notice."""

    def __init__(self, msg: Message) -> None:
        self.msg = msg
        self.from_ = _header(msg, "From")
        self.to = _header(msg, "To")
        self.subject = _header(msg, "Subject")
        self.dsn_blocks: list[dict[str, str]] = []
        texts: list[str] = []
        htmls: list[str] = []
        self.report_type = ""
        self.returned_headers: list[str] = []  # To: of the returned original message, where it is quoted
        for part in _walk(msg):
            ctype = part.get_content_type()
            if ctype == "multipart/report" and not self.report_type:
                report_type = part.get_param("report-type")
                self.report_type = report_type if isinstance(report_type, str) else ""
            if ctype.startswith("multipart/") and not part.is_multipart():
                # Broken MIME (boundary lines missing): the whole body is one text.
                texts.append(_decode_part(part))
            elif ctype == "message/delivery-status" or ctype == "message/global-delivery-status":
                self.dsn_blocks.extend(_delivery_status_blocks(part))
            elif ctype == "text/plain" or (ctype.startswith("text/") and ctype not in ("text/html",)
                                            and not part.get_filename()):
                if ctype not in ("text/rfc822-headers",):
                    texts.append(_decode_part(part))
            elif ctype == "text/html":
                htmls.append(_decode_part(part))
            elif ctype == "message/rfc822":
                inner = part.get_payload()
                if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                    self.returned_headers.append(_header(inner[0], "To"))
            elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
                headers = email.message_from_string(_decode_part(part).lstrip(), policy=compat32)
                self.returned_headers.append(_header(headers, "To"))
            elif not part.is_multipart() and ctype in ("application/octet-stream",) and not part.get_filename():
                texts.append(_decode_part(part))
        if not texts and htmls:
            texts = [_html_to_text(h) for h in htmls]
        notice = "\n".join(texts).replace("\r\n", "\n").replace("\r", "\n")
        self.full_text = notice[: MAX_NOTICE_CHARS * 2]
        self.notice = _cut_notice(notice)
        if len(self.notice) < len(self.full_text):
            # The original quoted as text after a "returned message" marker: its To: header.
            quoted = _QUOTED_TO.search(self.full_text, len(self.notice))
            if quoted:
                self.returned_headers.append(quoted.group(1))
        if not self.dsn_blocks and "final-recipient:" in self.full_text.lower():
            # A DSN pasted into the text body (broken MIME, forwarded reports).
            start = self.full_text.lower().find("reporting-mta:")
            if start < 0:
                start = self.full_text.lower().find("final-recipient:")
            self.dsn_blocks = _dsn_fields(self.full_text[start:])

    def recipient_blocks(self) -> list[dict[str, str]]:
        return [b for b in self.dsn_blocks if "final-recipient" in b or "original-recipient" in b]

    def message_fields(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for block in self.dsn_blocks:
            if "final-recipient" in block or "original-recipient" in block:
                continue
            merged.update(block)
        return merged

    def looks_like_bounce(self) -> bool:
        if "delivery-status" in self.report_type.lower() or self.recipient_blocks():
            return True
        if self.msg.get("X-Failed-Recipients"):
            return True
        sender = self.from_.lower().replace("_", "")
        subject = self.subject.lower()
        if any(s in sender for s in _BOUNCE_SENDERS) or any(s in subject for s in _BOUNCE_SUBJECTS):
            return True
        # A null envelope sender (RFC 5321 for notifications) and a notice that states a failure.
        return str(self.msg.get("Return-Path") or "").strip() == "<>" and _FAILURE_TEXT.search(self.notice) is not None

    def is_feedback_or_autoreply(self) -> bool:
        kind = self.report_type.lower()
        return kind in ("feedback-report", "disposition-notification")

    def evidence(self) -> dict[str, str]:
        """What the report shows about who generated it, by source, for the context step."""
        fields = self.message_fields()
        received = self.msg.get_all("Received") or []
        evidence = {
            "from": self.from_,
            "reporting-mta": fields.get("reporting-mta", ""),
            "received-from-mta": fields.get("received-from-mta", ""),
            "received": " ".join(str(received[0]).split()) if received else "",
            "x-mailer": _header(self.msg, "X-Mailer"),
            "message-id": _header(self.msg, "Message-ID"),
            "headers": " ".join(k for k in self.msg if k.lower().startswith("x-ms-")),
            "notice": self.notice[:600],
            "dsn-fields": " ".join(fields),
        }
        # Everything at once, for markers that need two clues wherever they are.
        evidence["clues"] = " ".join(evidence[k] for k in ("from", "reporting-mta", "received", "x-mailer",
                                                            "message-id", "headers", "notice"))
        if self.msg.get("X-Failed-Recipients"):
            evidence["failed-recipients-notice"] = evidence["clues"]
        return evidence

    def delayed(self) -> bool:
        text = (self.subject + "\n" + self.notice[:3000]).lower()
        if not any(p in text for p in _DELAY_PHRASES) and "delay" not in self.subject.lower():
            return False
        return not any(p in text for p in _GIVEN_UP) or "delay" in self.subject.lower()


def _text_recipients(report: _Report, header_lines: bool = True) -> list[tuple[str, int]]:
    """Failed recipients named in the notice text, with where each is first named. Without
    `header_lines`, a "To:" line does not count: it is more often a quoted header than a failure."""
    excluded = {a.lower() for a in _ADDRESS_RE.findall(report.from_ + " " + report.to)}
    sender_domains = {a.rsplit("@", 1)[1] for a in excluded}
    found: list[tuple[str, int]] = []
    seen: set[str] = set()
    notice = report.notice
    if sender_domains and _LIST_COMMAND_HINT.search(notice):
        # A list manager's notice names its own command addresses ("send 'guide' to list-ctl@"):
        # never a failed recipient.
        excluded |= {a.lower() for a in _ADDRESS_RE.findall(notice)
                     if a.rsplit("@", 1)[1].lower() in sender_domains and _LIST_COMMAND.search(a.split("@")[0])}
    quoted_to: list[tuple[str, int]] = []
    matches: list[tuple[str, int]] = []
    for m in _LINE_RECIPIENT.finditer(notice):
        if m.group(0).lstrip().lower().startswith("to:"):
            if not header_lines:
                continue
            if _in_header_block(notice, m.start()):
                # "Your message / To: / Subject: / Sent:" names the message, not who failed:
                # read only if the notice names no recipient otherwise (below).
                quoted_to.append((m.group("addr"), m.start()))
                continue
        matches.append((m.group("addr"), m.start()))
    matches += [(m.group("addr"), m.start()) for m in _PHRASE_RECIPIENT.finditer(notice)]
    matches += [(m.group("addr"), m.start()) for m in _COLON_RECIPIENT.finditer(notice)]
    if ":" in notice:
        matches += [(m.group("addr"), m.start()) for m in _REASON_THEN_ADDRESS.finditer(notice)
                    if " " in m.group("reason").strip() and _REASON_WORDS.search(m.group("reason"))]
    quoted_keys = {addr.lower() for addr, _ in quoted_to}
    if not any(addr.lower() not in quoted_keys and addr.lower().rstrip(".") not in excluded for addr, _ in matches):
        matches += quoted_to
    matches.sort(key=lambda item: item[1])
    for addr, pos in matches:
        key = addr.lower().rstrip(".")
        if key in excluded or key.split("@")[0] in ("mailer-daemon", "mailerdaemon"):
            continue
        if key not in seen:
            seen.add(key)
            found.append((addr.rstrip("."), pos))
    failed_header = report.msg.get_all("X-Failed-Recipients") or []
    for value in failed_header:
        for addr in _ADDRESS_RE.findall(str(value)):
            key = addr.lower()
            if key not in seen:
                seen.add(key)
                found.append((addr, -1))
    return found


# A list manager's command address somewhere in the notice (checked before the costlier scan).
_LIST_COMMAND_HINT = re.compile(r"-(?:ctl|request|admin|owner|help)@|owner-|subscribe@", re.I)
_LIST_COMMAND = re.compile(r"-(?:ctl|request|admin|owner|help|unsubscribe|subscribe)$|^owner-", re.I)
_HEADER_LINE = re.compile(r"[ \t]*+(?:subject|sent|date|from|cc)[ \t]*+:", re.I)


def _in_header_block(notice: str, at: int) -> bool:
    """Whether the line at `at` sits next to a quoted Subject:/Sent:/Date:/From:/Cc: line."""
    line_end = notice.find("\n", at)
    following = notice[line_end + 1:] if line_end >= 0 else ""
    before_end = notice.rfind("\n", 0, at)
    previous = notice[notice.rfind("\n", 0, before_end) + 1:before_end] if before_end > 0 else ""
    return bool(_HEADER_LINE.match(following) or _HEADER_LINE.match(previous))


def _returned_recipients(report: _Report) -> list[tuple[str, int]]:
    """The returned original's To: addresses, for notices that never name the recipient."""
    excluded = {a.lower() for a in _ADDRESS_RE.findall(report.from_ + " " + report.to)}
    found: list[tuple[str, int]] = []
    for value in report.returned_headers:
        for addr in _ADDRESS_RE.findall(value):
            if addr.lower() not in excluded and all(addr.lower() != f.lower() for f, _ in found):
                found.append((addr, -1))
    return found[:20]


def _trust_without_code(report: _Report) -> str:
    """How far a notice with no status code can be read: "layout" (a known bounce layout or
    X-Failed-Recipients), "words" (it only states a failure in words) or "" (not at all)."""
    if report.msg.get("X-Failed-Recipients"):
        return "layout"
    lower = report.notice.lower()
    if any(p in lower for p in _LAYOUT_PHRASES):
        return "layout"
    return "words" if _FAILURE_TEXT.search(report.notice) is not None else ""


def _recipient_text(notice: str, recipients: list[tuple[str, int]], index: int) -> str:
    """The part of the notice that talks about one recipient: from where it is named to the next one."""
    addr, pos = recipients[index]
    if pos < 0:
        # Named only in X-Failed-Recipients or the returned copy: the notice's words of failure.
        return notice if _has_failure_code(notice) else (_failure_passage(notice, 0, len(notice), addr) or notice)
    starts = sorted(p for _, p in recipients if p >= 0)
    following = [p for p in starts if p > pos]
    end = following[0] if following else len(notice)
    text = notice[pos:end]
    if _has_failure_code(text):
        return text
    if len(recipients) == 1:
        if _has_failure_code(notice):
            return notice  # the code is elsewhere (a transcript, a quoted reply): read it all
        line_start = notice.rfind("\n", 0, pos) + 1
        return _failure_passage(notice, line_start, end, addr) or notice
    passage = _failure_passage(notice, notice.rfind("\n", 0, pos) + 1, end, addr, whole_notice=False)
    if passage:
        return passage
    # Mentions elsewhere (Sendmail's transcript: "<<< 550 5.1.1 <addr>... User unknown").
    lower_addr = addr.lower()
    extra = [line for line in notice[end:].split("\n") if lower_addr in line.lower()]
    return text + "\n" + "\n".join(extra) if extra else text


def _transcript_lines(notice: str, recipient: str) -> str:
    """The notice's lines that say "<local part>... reason" about `recipient` (Sendmail names a
    local or program recipient so in its transcript); "" when there are none."""
    local = recipient.split("@", 1)[0]
    if not local or "..." not in notice:
        return ""
    named = re.compile(rf"(?<![\w.+\-]){re.escape(local)}(?:@[\w.\-]+)?[>\"]?\.\.\.[ \t]", re.I)
    lines = [line.strip() for line in notice.split("\n") if local in line and named.search(line)]
    return "\n".join(lines[:5])


def _has_failure_code(text: str) -> bool:
    """Whether `text` holds a class 4 or 5 code: a 2xx number there ("Size (in bytes): 222", a
    transcript's "250 OK") is not what failed."""
    return any((c.code is not None and c.code >= 400) or (c.enhanced is not None and c.enhanced[0] in "45")
               for c in find_candidates(" ".join(text.split())))


# "Reason: ...", "Error: ...": the line a notice labels as the failure (Messaging Server, gateways).
_REASON_LABEL = re.compile(r"^[ \t]*+(?:reasons?|error|diagnostic|cause|problem)[ \t]*+:[ \t]*+(?P<why>\S[^\n]*)$",
                           re.M | re.I)
_QUOTED_HEADER = re.compile(r"(?:to|cc|bcc|from|subject|sent|date|message-id|reply-to)[ \t]*+:", re.I)
_DECORATION = re.compile(r"[^\w]*")
_LINE_ADDRESS_ONLY = re.compile(rf"[ \t*\-\u2022>]*+(?:[\w-]++:[ \t]*+)?[<\"]?{_ADDRESS}[>\"]?[ \t.,:;]*")
MAX_PASSAGE_LINES = 8


def _failure_passage(notice: str, start: int, end: int, addr: str, whole_notice: bool = True) -> str:
    """The sentences of a codeless notice that say why one recipient failed, without the layout
    around them (the banner before the recipient, rules of asterisks, headings, quoted header
    lines, lines that only hold the address): from a line labelled as the reason, else from the
    recipient's line (`start`) to `end`, passing over the line that only announces the recipient
    ("... delivering your mail to <a@b>.") when later lines give the reason; else the paragraph
    the address closes (Notes writes the reason first); else, with `whole_notice`, the notice's
    lines of words. "" when nothing is left."""
    section = notice[start:end]
    label = _REASON_LABEL.search(section)
    if label is not None:
        section = label.group("why") + section[label.end():]
    elif whole_notice:
        label = _REASON_LABEL.search(notice)
        if label is not None:
            section = label.group("why") + notice[label.end():]
    lines = _worded_lines(section)
    if len(lines) > 1 and label is None and _ends_with_address(lines[0], addr.lower()):
        lines = lines[1:]
    if lines:
        return "\n".join(lines[:MAX_PASSAGE_LINES])
    # Only the address: the reason is the paragraph's lines before it.
    blank = notice.rfind("\n\n", 0, start)
    before = _worded_lines(notice[blank + 2 if blank >= 0 else 0:start])
    if before:
        return "\n".join([*before[-MAX_PASSAGE_LINES:], addr])
    if whole_notice:
        return "\n".join(_worded_lines(notice)[:MAX_PASSAGE_LINES])
    return ""


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _worded_lines(text: str) -> list[str]:
    """The lines of `text` that hold words: no rules of asterisks or dashes, no short headings
    ("Technical details:", "------- Failure Reasons --------"), no lines that only hold an address."""
    out: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip().strip("*=-_#~ \t")
        if not line or _DECORATION.fullmatch(line) or _LINE_ADDRESS_ONLY.fullmatch(line):
            continue
        if (line.endswith((":", "\uff1a")) and len(line.split()) <= 5 and len(line) <= 40) or (
                raw.strip().startswith(("---", "===", "***"))):
            continue  # a heading, or a title framed by a rule
        if _QUOTED_HEADER.match(line):
            continue  # the returned message's headers, quoted to say which message failed
        out.append(line)
    return out


def _ends_with_address(line: str, lower_addr: str) -> bool:
    """Whether `line` only announces a delivery to the address: it ends with the address, after
    words about delivering ("There was an error delivering your mail to <a@b>.")."""
    at = line.lower().rfind(lower_addr)
    return (at >= 0 and not any(ch.isalnum() for ch in line[at + len(lower_addr):])
            and _ANNOUNCING.search(line[max(0, at - 60):at]) is not None)


_ANNOUNCING = re.compile(r"deliver|following|sending|sent to|addressed to", re.I)


def _status_code(value: str) -> str | None:
    found = _STATUS.search(value)
    if not found:
        return None
    return ".".join(str(int(p)) for p in found.groups())


def _merge_status(facts: Facts, status: str | None) -> None:
    """Reconcile the DSN Status field with the code the diagnostic text carries."""
    if status is None:
        return
    said = facts.get("smtp.enhanced")
    if not isinstance(said, str):
        facts["smtp.enhanced"] = status
        return
    if said == status:
        return
    if said.endswith(".0.0") and not status.endswith(".0.0"):
        facts["smtp.enhanced"] = status
    elif status.endswith(".0.0") or said[0] == status[0]:
        return  # the remote server's own, more precise words win
    elif status[0] == "5" and said[0] == "4" and "outer.enhanced" not in facts:
        # The report gave up on an attempt that failed temporarily: the attempt is diagnosed.
        facts["outer.enhanced"] = status


def _base_facts(recipient: str | None, action: str) -> Facts:
    facts: Facts = {"input.kind": "ndr", "report.action": action}
    if recipient and "@" in recipient:
        facts["context.recipient_domain"] = recipient.rsplit("@", 1)[1].lower().rstrip(".>")
    return facts


def _finish(facts: Facts, diagnostic: Facts, evidence: dict[str, str], text: str,
            remote_mta: str = "") -> tuple[Facts, list[InferredFact]]:
    """The recipient's facts, plus the context the report and this recipient's error text show."""
    for key, value in diagnostic.items():
        facts.setdefault(key, value)
    _, inferred = infer_context(facts, {**evidence, "text": " ".join(text.split()), "remote-mta": remote_mta})
    return facts, inferred


def _wrap_attempt(diagnostic: Facts, attempt: Facts) -> None:
    """Make `attempt` the diagnosed error and the expiry in `diagnostic` its outer report."""
    code, enhanced = attempt.get("smtp.reply_code"), attempt.get("smtp.enhanced")
    if enhanced is None or (attempt.get("outer.expired") and "outer.enhanced" not in attempt):
        return
    if (code, enhanced) == (diagnostic.get("smtp.reply_code"), diagnostic.get("smtp.enhanced")):
        return
    for field in ("reply_code", "enhanced", "text"):
        value = diagnostic.pop(f"smtp.{field}", None)
        if value is not None:
            diagnostic[f"outer.{field}"] = value
    for key, value in attempt.items():
        if not key.startswith("outer."):
            diagnostic[key] = value


def _report_status(facts: Facts) -> str | None:
    """The status the report itself states: the outer code of a nested error, else the attempt's."""
    outer = facts.get("outer.enhanced")
    if isinstance(outer, str):
        return outer
    enhanced = facts.get("smtp.enhanced")
    return enhanced if isinstance(enhanced, str) else None


_RETURNED_PART = re.compile(rb"(?im)^content-type:[ \t]*(?:message/rfc822|text/rfc822-headers)")
_DSN_PART = re.compile(rb"(?i)content-type:[ \t]*message/(?:global-)?delivery-status")


def _drop_returned_message(raw: bytes) -> bytes:
    """Cut the returned original message before MIME parsing: it is most of the bytes and none of
    the diagnosis. Only when no delivery-status part follows it (some MTAs order parts oddly)."""
    header_end = raw.find(b"\n\n")
    found = _RETURNED_PART.search(raw, header_end if header_end > 0 else 0)
    if found is None or _DSN_PART.search(raw, found.end()):
        return raw
    part_body = raw.find(b"\n\n", found.end())
    if part_body < 0:
        return raw
    # Keep the returned message's own headers: its To: names the recipient when the notice does not.
    headers_end = raw.find(b"\n\n", part_body + 2, part_body + 2 + 65_536)
    return raw[: headers_end + 2] if headers_end > 0 else raw[: part_body + 2]


_SUCCESS_ACTIONS = ("delivered", "relayed", "expanded", "deliverable")


def _reports_success(block: dict[str, str]) -> bool:
    """A recipient block that reports no failure: delivered, relayed, expanded, or found deliverable
    (Postfix's address verification, sendmail -bv), by its action or a class 2 status."""
    return (block.get("action", "").strip().lower().startswith(_SUCCESS_ACTIONS)
            or (_status_code(block.get("status", "")) or "").startswith("2."))
_SYMPTOM_FIELDS = ("dns.result", "tcp.state", "tls.error", "smtp.closed_abruptly", "smtp.timed_out")


def _mark_no_code(diagnostic: Facts, action: str) -> None:
    """Say the report had no code. Rules dispatch on a code or a transport symptom: when the text
    gave neither, give the class-only code the report's action implies (RFC 3463's X.0.0)."""
    diagnostic["report.no_code"] = True
    if not any(field in diagnostic for field in _SYMPTOM_FIELDS):
        diagnostic["smtp.enhanced"] = "4.0.0" if action == "delayed" else "5.0.0"


_SES_START = re.compile(r'\{\s*"(?:notificationType|eventType|Type)"\s*:')
# The words that make a body worth a JSON parse: SES's own keys, or SNS's envelope quoting them.
_SES_MARKERS = ('"notificationType"', '"eventType"', '\\"notificationType\\"', '\\"eventType\\"')


def _has_ses_marker(text: str) -> bool:
    return any(marker in text for marker in _SES_MARKERS)


def _ses_notification(text: str) -> dict[str, Any] | None:
    """An Amazon SES notification (bounce, complaint, delivery) in a message body, as SNS e-mail
    subscriptions deliver it: a JSON object, sometimes wrapped by the mail system's line breaks,
    either bare or as the "Message" string of an SNS envelope ({"Type": "Notification", ...})."""
    decoder = json.JSONDecoder()
    for found in _SES_START.finditer(text[:200_000]):
        body = text[found.start(): found.start() + 200_000]
        for candidate in (body, re.sub(r"!?\n[ \t]?", "", body)):
            try:
                value, _ = decoder.raw_decode(candidate)
            except (ValueError, RecursionError):
                continue
            if not isinstance(value, dict):
                continue
            inner = value.get("Message")
            if "notificationType" not in value and "eventType" not in value and isinstance(inner, str):
                try:
                    value = json.loads(inner)
                except (ValueError, RecursionError):
                    continue
                if not isinstance(value, dict):
                    continue
            if "notificationType" in value or "eventType" in value:
                return value
        break  # only the first JSON object of the body is read
    return None


def _ses_records(notice: dict[str, Any], source: str) -> list[IntakeRecord]:
    """One record per bounced recipient of an SES bounce notification."""
    bounce = notice.get("bounce")
    if not isinstance(bounce, dict):
        return []
    permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
    reporting = _strip_type(str(bounce.get("reportingMTA", "")))
    records: list[IntakeRecord] = []
    recipients = bounce.get("bouncedRecipients")
    for entry in recipients if isinstance(recipients, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("emailAddress"), str):
            continue
        recipient = entry["emailAddress"]
        diagnostic_text = _strip_type(str(entry.get("diagnosticCode", "")))
        diagnostic = parse_reply(diagnostic_text) if diagnostic_text else {}
        status = _status_code(str(entry.get("status", "")))
        _merge_status(diagnostic, status)
        action = str(entry.get("action", "")).lower()
        action = action if action in ("failed", "delayed") else ("failed" if permanent else "delayed")
        has_code = "smtp.reply_code" in diagnostic or "smtp.enhanced" in diagnostic
        extra: dict[str, Any] = {"report_status": status or diagnostic.get("smtp.enhanced"), "format": "amazon-ses"}
        if not has_code:
            _mark_no_code(diagnostic, action)
            extra["no_code"] = True
        if diagnostic_text:
            diagnostic.setdefault("smtp.text", clean_text(diagnostic_text))
            extra["diagnostic"] = " ".join(diagnostic_text.split())[:1000]
        if reporting and "smtp.remote_host" not in diagnostic:
            diagnostic["smtp.remote_host"] = reporting
        facts, inferred = _finish({"input.kind": "ndr", "report.action": action,
                                   "context.recipient_domain": recipient.rsplit("@", 1)[-1].lower()},
                                  diagnostic, {"reporting-mta": reporting}, diagnostic_text)
        records.append(IntakeRecord(facts=clean_facts(facts, extra), kind="ndr", source=source,
                                    recipient=recipient, extra=extra, inferred=inferred))
    return records


_AUTO_REPLY_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[ \-]?(?:reply|response|antwort|resposta)|auto:|out of (?:the )?office|"
    r"(?:on )?vacation|abwesenheit|resposta autom[aá]tica|r[ée]ponse automatique|fuera de la oficina)",
    re.I,
)


# Feedback loops that send a plain message instead of an ARF report (Hotmail's JMRP, abuse desks).
_COMPLAINT_SUBJECT = re.compile(r"^(?:complaint about message|abuse report|spam (?:complaint|report)|fbl report)", re.I)


def non_failure_kind(data: bytes | str) -> str | None:
    """"complaint" for a feedback-loop report (ARF, RFC 5965) or an SES complaint notification,
    "auto-reply" for an automatic reply (RFC 3834: vacation, out-of-office), "delivered" for a
    delivery report whose every recipient was delivered or found deliverable, else None."""
    raw = text_bytes(data) if isinstance(data, str) else data
    raw = _drop_returned_message(raw[:MAX_MESSAGE_BYTES].replace(b"\r\n", b"\n"))
    msg = email.message_from_bytes(raw, policy=compat32)
    report = _Report(msg)
    if ("feedback-report" in report.report_type.lower() or msg.get("Feedback-Type")
            or _COMPLAINT_SUBJECT.search(report.subject.strip())):
        return "complaint"
    ses = _ses_notification(report.full_text) if _has_ses_marker(report.full_text) else None
    if ses is not None:
        kind = str(ses.get("notificationType") or ses.get("eventType") or "").lower()
        return "complaint" if kind == "complaint" else None
    blocks = report.recipient_blocks()
    if blocks and all(_reports_success(b) for b in blocks):
        return "delivered"
    if report.looks_like_bounce():
        return None
    auto = str(msg.get("Auto-Submitted") or "").strip().lower()
    if (auto.startswith("auto-replied") or msg.get("X-Autoreply") or msg.get("X-Autorespond")
            or str(msg.get("Precedence") or "").strip().lower() == "auto_reply"
            or _AUTO_REPLY_SUBJECT.search(report.subject.strip())):
        return "auto-reply"
    return None


def _skip_leading_blank(raw: bytes) -> bytes:
    """A saved message or mbox with a byte-order mark or blank lines before its first line: those
    would end the headers before they start (no From:, no Subject:, nothing read as a bounce)."""
    raw = raw.removeprefix(UTF8_BOM)
    if raw[:1] in (b"\n", b" ", b"\t"):
        stripped = raw.lstrip(b" \t\n")
        if stripped.startswith(b"From ") or _HEADER_START.match(stripped):
            return stripped
    return raw


_HEADER_START = re.compile(rb"[!-9;-~]{1,76}:")


def parse_message(data: bytes | str, source: str = "<message>") -> list[IntakeRecord]:
    """One record per failed or delayed recipient of a bounce; [] for anything that is not one."""
    raw = text_bytes(data) if isinstance(data, str) else data
    truncated = len(raw) > MAX_MESSAGE_BYTES
    raw = raw[:MAX_MESSAGE_BYTES].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    raw = _skip_leading_blank(raw)
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    raw = _drop_returned_message(raw)
    if len(_BOUNDARY.findall(raw)) > MAX_BOUNDARIES:
        # The standard parser's cost grows with the square of the nesting; real bounces have a
        # handful of parts. Refuse before parsing rather than spend seconds on one message.
        raise InputError(f"MIME structure too complex to read (more than {MAX_BOUNDARIES} boundaries)")
    try:
        msg = email.message_from_bytes(raw, policy=compat32)
    except RecursionError:
        # The standard parser recurses once per nested multipart; a hostile message nests
        # a thousand deep. One unreadable message must not end a scan.
        raise InputError("MIME parts nested too deeply to read") from None
    report = _Report(msg)
    if _has_ses_marker(report.full_text):
        ses = _ses_notification(report.full_text)
        if ses is not None:
            return _ses_records(ses, source)
    if report.is_feedback_or_autoreply() or not report.looks_like_bounce():
        return []
    evidence = report.evidence()
    delayed_notice = report.delayed()
    records: list[IntakeRecord] = []
    extra_base: dict[str, Any] = {"truncated": True} if truncated else {}
    dsn_recipients = report.recipient_blocks()
    text_recipients = _text_recipients(report)
    if dsn_recipients:
        for block in dsn_recipients:
            recipient = _strip_type(block.get("final-recipient") or block.get("original-recipient", ""))
            action = block.get("action", "").strip().lower().split()[0] if block.get("action", "").strip() else ""
            status = _status_code(block.get("status", ""))
            if _reports_success(block):
                continue
            if action not in ("failed", "delayed"):
                action = "delayed" if (delayed_notice or (status or "").startswith("4")) and not (
                    status or ""
                ).startswith("5") else "failed"
            diagnostic_text = _strip_type(block.get("diagnostic-code", "")) if block.get("diagnostic-code") else ""
            diagnostic = parse_reply(diagnostic_text) if diagnostic_text else {}
            if "smtp.reply_code" not in diagnostic and "smtp.enhanced" not in diagnostic:
                # No code in the DSN's own words: read what the notice says about this recipient.
                for index, (addr, _) in enumerate(text_recipients):
                    if addr.lower() == recipient.lower():
                        block_text = _recipient_text(report.notice, text_recipients, index)
                        for key, value in parse_reply(block_text).items():
                            diagnostic.setdefault(key, value)
                        diagnostic_text = diagnostic_text or block_text
                        break
                else:
                    if not diagnostic_text:
                        # Named in the notice only by its local part or the program it was
                        # expanded to: Sendmail's transcript line "kim... Deferred: ...".
                        diagnostic_text = _transcript_lines(report.notice, recipient)
                        for key, value in parse_reply(diagnostic_text).items():
                            diagnostic.setdefault(key, value)
            if diagnostic_text and "smtp.text" not in diagnostic:
                diagnostic["smtp.text"] = clean_text(diagnostic_text)
            if diagnostic.get("outer.expired") and "outer.enhanced" not in diagnostic:
                # An expiry with no attempt inside: the notice may quote the last attempt.
                for index, (addr, _) in enumerate(text_recipients):
                    if addr.lower() == recipient.lower():
                        _wrap_attempt(diagnostic, parse_reply(_recipient_text(report.notice, text_recipients, index)))
                        break
            facts = _base_facts(recipient, action)
            _merge_status(diagnostic, status)
            remote = _strip_type(block.get("remote-mta", ""))
            if remote and "smtp.remote_host" not in diagnostic and "smtp.remote_ip" not in diagnostic:
                if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", remote.strip("[]")):
                    diagnostic["smtp.remote_ip"] = remote.strip("[]")
                else:
                    diagnostic["smtp.remote_host"] = remote.rstrip(".")
            facts, inferred = _finish(facts, diagnostic, evidence, diagnostic_text, remote)
            extra = dict(extra_base)
            extra["report_status"] = _report_status(facts)
            if diagnostic_text:
                extra["diagnostic"] = " ".join(diagnostic_text.split())[:1000]
            records.append(IntakeRecord(facts=clean_facts(facts, extra), kind="ndr", source=source,
                                        recipient=recipient or None, extra=extra, inferred=inferred))
        if records:
            return records
        if any(_reports_success(b) for b in dsn_recipients):
            return []
    trust = _trust_without_code(report)
    trusted = bool(trust)
    if trust == "words":
        text_recipients = _text_recipients(report, header_lines=False)
    if not text_recipients and trusted:
        text_recipients = _returned_recipients(report)
    for index, (recipient, _) in enumerate(text_recipients):
        text = _recipient_text(report.notice, text_recipients, index)
        diagnostic = parse_reply(text)
        if "smtp.text" not in diagnostic:
            diagnostic["smtp.text"] = clean_text(text)
        has_code = "smtp.reply_code" in diagnostic or "smtp.enhanced" in diagnostic
        if not has_code and not trusted:
            continue
        action = "delayed" if delayed_notice else "failed"
        if not has_code:
            _mark_no_code(diagnostic, action)
        facts, inferred = _finish(_base_facts(recipient, action), diagnostic, evidence, text)
        extra = dict(extra_base)
        extra["report_status"] = _report_status(facts) if has_code else None
        if not has_code:
            extra["no_code"] = True
        extra["diagnostic"] = " ".join(text.split())[:1000]
        records.append(IntakeRecord(facts=clean_facts(facts, extra), kind="ndr", source=source,
                                    recipient=recipient, extra=extra, inferred=inferred))
    return records
