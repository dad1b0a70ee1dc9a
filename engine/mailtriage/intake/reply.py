"""Parse one pasted SMTP reply or error string into facts.

A pasted error is often nested: Exchange Online's expiry NDR says `550 5.4.316 Message expired,
connection refused` and quotes the last attempt `450 4.4.316 Connection refused [...]`. The
attempt is what gets diagnosed: it goes to `smtp.*`, the wrapper to `outer.*`.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from ..facts import Facts, InferredFact
from .symptoms import text_symptoms

# Longest text we look at: replies are short, pasted NDR fragments are a few kB at most.
MAX_REPLY_CHARS = 20_000
MAX_TEXT_FACT_CHARS = 1_000

_CANDIDATE = re.compile(
    r"(?<![\w./\-=+@\[$%])(?<![0-9]:)"
    r"(?:"
    r"(?P<code>[245][0-5][0-9])(?:[ \-]+['\"]?\#?|(?=$|['\"()\]<>,;]|\.(?![0-9])))(?P<enh1>[245]\.[0-9]{1,3}\.[0-9]{1,3}(?![0-9]|\.[0-9]))?"
    r"|\#?(?P<enh2>[45]\.[0-9]{1,3}\.[0-9]{1,3})(?![0-9]|\.[0-9]|-[0-9])"
    r")"
)  # [0-9], not \d: codes are ASCII digits ("45٣" is not reply 453), as in the page's JavaScript
_VERSION_BEFORE = re.compile(r"(?:version|release|ver\.?|\bv)\s*$", re.I)
# An Exchange `[Field=value]` bracket is read by `_brackets`, in one pass: the regex
# `\[(\w+)=([^\]]*)\]` rescans the rest of the text from every unclosed `[key=`.
_BRACKET_START = re.compile(r"\[(\w++)=")
_EXPIRY = re.compile(
    r"message expired|expired|retry time(?:out)? (?:exceeded|expired)|delivery time expired|"
    r"unable to deliver in \d+ minutes|too long in (?:the )?queue",
    re.I,
)
# Where a bounce starts quoting the message it returns: what follows is the original's headers and
# body, never the error (a pasted NDR's `smtp.text` must not swallow them, nor context inference
# read the sender's own Received: lines). At a line start, after an optional rule of dashes.
# Written in the subset Python's `re` and JavaScript's RegExp read alike (no possessives, no
# MULTILINE: JavaScript's ^ also starts a line after \r and U+2028): the paste page gets this
# very pattern in rules.json. Each quantifier is followed by a character it cannot take, so a
# failed attempt costs the length of one run, not its square.
RETURNED_MESSAGE_PHRASES = (
    "below this line is a copy of the message", "this is a copy of the message", "original message follows",
    "below is a copy of the original", "unsent message follows", "message text follows",
    "the header of the original message",
    "original (?:mail|message) as follows",
    "original message", "returned message", "undelivered message", "message headers follow", "copy of the original",
    "original message headers", "headers of the original", "forwarded message",
    "content-type: message/rfc822", "content-type: text/rfc822-headers",
)
RETURNED_MESSAGE = re.compile(
    r"(?<![^\n])[ \t]*(?:\|?(?:-{2,}|={2,}|_{2,}|\*{2,})[ \t]*)?(?:"
    + "|".join(RETURNED_MESSAGE_PHRASES) + ")",  # words and simple groups, valid in RE2JS too
    re.I,
)
# "<bob@example.net>: ..." / "bob@example.net... " before the actual words.
_LEADING_ADDRESS = re.compile(r"^<?[^\s<>@]+@[^\s<>]+?>?(?:\.\.\.|:|\s)\s*")


@dataclass(frozen=True)
class Candidate:
    """One reply code and/or enhanced code found in the text."""

    start: int
    end: int
    code: int | None
    enhanced: str | None
    in_bracket: bool

    @property
    def strength(self) -> int:
        if self.code is not None and self.enhanced is not None:
            return 3
        return 2 if self.enhanced is not None else 1


def _brackets(line: str) -> list[tuple[int, int, str, str]]:
    """(start, end, key, value) of each `[key=value]`, as `re.finditer(r"\\[(\\w+)=([^\\]]*)\\]")`
    would give them, in time linear in the line."""
    found: list[tuple[int, int, str, str]] = []
    position = 0
    while True:
        start = _BRACKET_START.search(line, position)
        if start is None:
            return found
        close = line.find("]", start.end())
        if close < 0:
            return found  # no `]` after this one: none after any later `[` either
        found.append((start.start(), close + 1, start.group(1), line[start.end():close]))
        position = close + 1


def _without_brackets(text: str) -> str:
    position = 0
    parts: list[str] = []
    for start, end, _, _ in _brackets(text):
        parts.append(text[position:start])
        position = end
    parts.append(text[position:])
    return "".join(parts)


def find_candidates(line: str) -> list[Candidate]:
    """Every reply/enhanced code in order, noting which sit inside an Exchange `[Field=...]` bracket."""
    spans = [(a, b) for a, b, _, _ in _brackets(line)] if "=" in line else []
    starts = [a for a, _ in spans]
    found: list[Candidate] = []
    for match in _CANDIDATE.finditer(line):
        code_text = match.group("code")
        enhanced = match.group("enh1") or match.group("enh2")
        if code_text is None and enhanced is None:
            continue
        start = match.start()
        if code_text is None and _VERSION_BEFORE.search(line, max(0, start - 12), start):
            continue  # "version 5.1.1", "Exim v4.4.1": a software version, not a status
        # Brackets do not overlap: only the last one opening before `start` can contain it.
        index = bisect.bisect_left(starts, start) - 1
        inside = index >= 0 and spans[index][0] < start < spans[index][1]
        found.append(Candidate(start, match.end(), int(code_text) if code_text else None, enhanced, inside))
    return found


def _merge_multiline(cands: list[Candidate], line: str) -> list[Candidate]:
    """`550-5.7.26 a 550-5.7.26 b 550 5.7.26 c` is one reply: keep its first occurrence."""
    merged: list[Candidate] = []
    for cand in cands:
        if merged:
            last = merged[-1]
            if (cand.code, cand.enhanced) == (last.code, last.enhanced) and cand.in_bracket == last.in_bracket:
                continue
            # A bare enhanced code right after a reply code that had none ("550 Mailbox full (#5.2.2)")
            # completes it only when it directly follows.
        merged.append(cand)
    return merged


def _clean_text(text: str, cand: Candidate | None) -> str:
    """Reply text without codes, bracket fields and repeated multi-line prefixes."""
    text = _without_brackets(text)
    if cand is not None and cand.code is not None:
        prefix = rf"\b{cand.code}[ \-]" + (re.escape(cand.enhanced) + " ?" if cand.enhanced else "")
        text = re.sub(prefix, " ", text)
    text = " ".join(text.split())
    text = _LEADING_ADDRESS.sub("", text.strip(" -:;,'\""))
    return text.strip(" -:;,'\"")[:MAX_TEXT_FACT_CHARS]


def clean_text(text: str) -> str:
    """Error text as one tidy line (no bracket fields, no leading recipient address), capped."""
    return _clean_text(text, None)


def _is_expiry(cand: Candidate, following: str) -> bool:
    """An outer report that gave up after retrying (X.4.7, 5.4.300, "Message expired, ...")."""
    if cand.enhanced is not None:
        _, subject, detail = cand.enhanced.split(".")
        if subject == "4" and detail in ("7", "300"):
            return True
    return bool(_EXPIRY.match(following.lstrip(" -:;,'\"")[:80]))


def _bracket_facts(line: str, facts: Facts) -> None:
    for _, _, key, value in _brackets(line):
        key_lower = key.lower()
        value = value.strip()
        if key_lower == "message":
            facts.setdefault("smtp.details_message", value[:MAX_TEXT_FACT_CHARS])
        elif key_lower == "lastattemptedservername":
            facts.setdefault("smtp.remote_host", value.rstrip("."))
        elif key_lower == "lastattemptedip":
            address, _, port = value.rpartition(":")
            if address and port.isascii() and port.isdecimal() and 0 < int(port) < 65536:
                facts.setdefault("smtp.remote_ip", address.strip("[]"))
                facts.setdefault("smtp.remote_port", int(port))
            elif value:
                facts.setdefault("smtp.remote_ip", value)


def _best(cands: list[Candidate]) -> Candidate | None:
    # A failure beats a success code quoted beside it; a success reply alone is still a reply.
    outside = [c for c in cands if not c.in_bracket and (c.enhanced is None or c.enhanced[0] != "2")]
    if not outside:
        outside = [c for c in cands if not c.in_bracket and c.code is not None and str(c.code)[0] == "2"]
    if not outside:
        return None
    top = max(c.strength for c in outside)
    return next(c for c in outside if c.strength == top)


def _complete(chosen: Candidate, cands: list[Candidate], line: str) -> Candidate:
    """Pair a bare reply code with the bare enhanced code that closes its reply (qmail's `(#5.5.0)`)."""
    if chosen.code is None and chosen.enhanced is not None:
        before = [c for c in cands if c.start < chosen.start and not c.in_bracket]
        if before:
            prev = before[-1]
            if (
                prev.enhanced is None and prev.code is not None
                and str(prev.code)[0] == chosen.enhanced[0] and chosen.start - prev.end < 400
            ):
                return Candidate(prev.start, prev.end, prev.code, chosen.enhanced, False)
        return chosen
    if chosen.enhanced is not None or chosen.code is None:
        return chosen
    for cand in cands:
        if cand.start <= chosen.start or cand.in_bracket:
            continue
        if cand.code is not None:
            break
        if cand.enhanced is not None and cand.enhanced[0] == str(chosen.code)[0] and cand.start - chosen.end < 400:
            return Candidate(chosen.start, chosen.end, chosen.code, cand.enhanced, False)
    return chosen


def parse_reply(text: str) -> Facts:
    """Read codes, text, nested attempt, Exchange details and stated symptoms from one error string.

    Returns only what was found; an empty dict means the text holds no recognisable error.
    """
    line = reply_line(text)
    if not line:
        return {}
    facts: Facts = {}
    cands = _merge_multiline(find_candidates(line), line)
    chosen = _best(cands)
    outer: Candidate | None = None
    if chosen is not None:
        after = line[chosen.end:]
        if _is_expiry(chosen, after):
            later = [
                c for c in cands
                if c.start > chosen.start and not c.in_bracket and c.code is not None
                and (c.code, c.enhanced) != (chosen.code, chosen.enhanced)
            ]
            if later:
                top = max(c.strength for c in later)
                outer, chosen = chosen, next(c for c in later if c.strength == top)
            facts["outer.expired"] = True
        chosen = _complete(chosen, cands, line)
        if chosen.code is not None:
            facts["smtp.reply_code"] = chosen.code
        if chosen.enhanced is not None:
            facts["smtp.enhanced"] = chosen.enhanced
        if outer is not None:
            if outer.code is not None:
                facts["outer.reply_code"] = outer.code
            if outer.enhanced is not None:
                facts["outer.enhanced"] = outer.enhanced
            outer_text = _clean_text(line[outer.end:chosen.start], outer)
            if outer_text:
                facts["outer.text"] = outer_text
        message = _clean_text(line[chosen.end:], chosen)
        if outer is None and not any(ch.isalpha() for ch in message):
            # The code closes the sentence (qmail's "... host named example.com. (#5.1.2)").
            message = _clean_text(line[:chosen.start].rstrip(" (#[<"), None)
    else:
        message = _clean_text(line, None)
    if "=" in line:
        _bracket_facts(line, facts)
    text_symptoms(line, facts)
    if not facts:
        return {}
    if message:
        facts["smtp.text"] = message
    return facts


def before_returned_message(text: str) -> str:
    """`text` up to where it quotes the returned original message (all of it if it never does, or
    if that is where it starts)."""
    found = RETURNED_MESSAGE.search(text)
    return text[: found.start()] if found and found.start() > 0 else text


def reply_line(text: str) -> str:
    """The text `parse_reply` reads: the error before any returned message, capped, on one line.
    Context inference reads the same."""
    return " ".join(before_returned_message(text)[:MAX_REPLY_CHARS].split())


def read_reply(text: str, known: Facts | None = None) -> tuple[Facts, list[InferredFact]]:
    """`parse_reply`, then the context its words show (who reported it, who answered); facts in
    `known` (what the reader stated) are kept and never inferred over."""
    from .context import infer_context

    facts = parse_reply(text)
    if not facts:
        return facts, []
    merged: Facts = {**facts, **(known or {})}
    _, inferred = infer_context(merged, {"text": reply_line(text)})
    for fact in inferred:
        facts[fact.field] = fact.value
    return facts, inferred
