"""Symptoms stated in words: what an error text says about DNS, TCP, TLS, the SMTP stage and the
remote host, whatever system wrote it (Exchange, Postfix, Exim, Sendmail, qmail, Gmail...). Who
wrote it and whose server answered is the context step's job (`intake.context`).

Every check is guarded by a cheap substring test on the lower-cased text, because the log scanner
calls this for every failure line.
"""

from __future__ import annotations

import re

from ..facts import Facts

# Windows socket errors Exchange reports; 10051/10065 are network/host unreachable.
SOCKET_ERRORS: dict[int, str] = {
    10060: "timeout",
    10061: "refused",
    10054: "reset",
    10065: "unreachable",
    10051: "unreachable",
}

_SOCKET_CODE = re.compile(r"(?:socket error(?: code)?|winsock error|error code)[:= ]*(100\d\d)\b", re.I)
_BARE_SOCKET = re.compile(r"\b(100(?:5[14]|6[015]))\b")

# Exchange Online's DNS detail words ([Message=InfoNoRecords] and friends).
_DNS_DETAIL = re.compile(
    r"\b((?:Info|Error)(?:NoRecords|DomainNonexistent|Retry|NoServers|Timeout|ServerFailure|"
    r"NotAuthoritative|Refused|NameError|Unknown|DnsServerError|Failed)\w*)\b"
)
_DNS_DETAIL_RESULT = {
    "infodomainnonexistent": "nxdomain",
    "errordomainnonexistent": "nxdomain",
    "errorrefused": "refused",
    "errortimeout": "timeout",
    "errorserverfailure": "servfail",
}

# Postfix: "Name service error for name=X type=MX: Host not found, try again"
_POSTFIX_DNS = re.compile(
    r"name service error for (?:name=)?(?P<name>[\w.\-]+)(?: type=(?P<type>\w+))?:? ?(?P<why>[^;()]*)", re.I
)
_GOOGLE_DNS = re.compile(
    r"dns type '(?P<type>\w+)' lookup of (?P<name>[\w.\-]+) responded with code (?P<rcode>[A-Z]+)", re.I
)
_LOOKUP_FAILURE = re.compile(r"dns lookup failure:? (?:host )?(?P<name>[\w.\-]+) not found", re.I)
_RCODE_RESULT = {"nxdomain": "nxdomain", "servfail": "servfail", "refused": "refused"}

# "host mx.example.com[192.0.2.7]", "connect to mx.example.com[192.0.2.7]:25", Exim's "host x [ip]".
_HOST_BRACKET_IP = re.compile(
    r"(?:host|connect to|with|from|to|server)\s+(?P<host>[A-Za-z0-9][\w.\-]*)\s?\[(?P<ip>[0-9a-fA-F:.]+)\](?::(?P<port>\d{1,5}))?",
    re.I,
)
_REMOTE_HOST_SAID = re.compile(
    r"(?:remote host (?P<ip>[0-9a-fA-F:.]{7,}) said|(?P<ip2>\d{1,3}(?:\.\d{1,3}){3}) does not like)", re.I
)
_REMOTE_SERVER_AT = re.compile(r"remote server at (?P<host>[\w.\-]+)(?: \((?P<ip>[0-9a-fA-F:.]+)\))?", re.I)

_STAGES: tuple[tuple[str, str], ...] = (
    # Order matters: the longer, more specific phrases first.
    ("end of data", "end-of-data"),
    ("final dot", "end-of-data"),
    ("final data", "end-of-data"),
    ("message body", "data"),
    ("rcpt to", "rcpt"),
    ("rcpt", "rcpt"),
    ("recipient", "rcpt"),
    ("mail from", "mail"),
    ("data command", "data"),
    ("after data", "data"),
    ("starttls", "starttls"),
    ("ehlo", "ehlo"),
    ("helo", "helo"),
    ("initial server greeting", "banner"),
    ("initial connection", "banner"),  # Exim: "SMTP error from remote mail server after initial connection"
    ("greeting", "banner"),
    ("banner", "banner"),
    ("auth", "auth"),
)
# Phrases after which MTAs name the SMTP stage ("in reply to RCPT TO command", "while sending MAIL FROM").
_STAGE_TRIGGERS = (
    "in reply to", "after", "while sending", "while receiving", "while performing", "in response to",
    "most progress was", "did not like our", "does not like", "during", "while",
)


def socket_error(text: str, lower: str) -> int | None:
    """The Windows socket error number the text mentions, if any."""
    if "100" not in text:
        return None
    found = _SOCKET_CODE.search(text)
    if found:
        return int(found.group(1))
    if "socket" in lower or "winsock" in lower:
        bare = _BARE_SOCKET.search(text)
        if bare:
            return int(bare.group(1))
    return None


def tcp_state(lower: str, socket_code: int | None) -> str | None:
    """The TCP outcome the text describes, if it describes one."""
    if socket_code in SOCKET_ERRORS:
        return SOCKET_ERRORS[socket_code]
    if "refused" in lower and ("connection refused" in lower or "connectionrefused" in lower):
        return "refused"
    # Postfix's "conversation with X timed out" and Exim's "SMTP timeout after ..." come after the
    # connection opened: a stalled dialogue, not a TCP timeout.
    if ("timed out" in lower or "timedout" in lower or "timeout" in lower) and "conversation with" not in lower and "smtp timeout" not in lower and (
        "connection timed out" in lower
        or "connect timed out" in lower
        or "sockete" in lower  # "SocketError: TimedOut"
        or "timed out while connecting" in lower
        or "connection timeout" in lower
        # Gmail's own report: "did not accept our requests to connect ... [host ip: timed out]".
        or ("requests to connect" in lower and "timed out" in lower)
    ):
        return "timeout"
    if "unreachable" in lower or "no route to host" in lower or "host not reachable" in lower:
        return "unreachable"
    if "connection reset" in lower or "connectionreset" in lower:
        return "reset"
    return None


def tls_error(lower: str) -> str | None:
    """The TLS failure the text names, mapped to the vocabulary of tls.error."""
    if "tls" not in lower and "ssl" not in lower and "cert" not in lower and "untrusted" not in lower:
        return None
    if "untrustedroot" in lower or "unable to get local issuer" in lower or "incomplete chain" in lower:
        return "missing-intermediate"
    if "expired" in lower and "cert" in lower:
        return "certificate-expired"
    if "not yet valid" in lower:
        return "certificate-not-yet-valid"
    if "self signed" in lower or "self-signed" in lower or "selfsigned" in lower:
        return "self-signed"
    if "revoked" in lower:
        return "revoked"
    if "cert" in lower and (
        "name mismatch" in lower
        or "namemismatch" in lower
        or "hostname mismatch" in lower
        or "host-mismatch" in lower
        or "does not match" in lower
        or "doesn't match" in lower
    ):
        return "name-mismatch"
    if "unknown ca" in lower or "untrusted" in lower or "unknown issuer" in lower:
        return "untrusted-issuer"
    if (
        "wrong version number" in lower
        or "unsupported protocol" in lower
        or "protocol version" in lower
        or "no protocols available" in lower
    ):
        return "protocol-mismatch"
    if "no shared cipher" in lower or "no ciphers available" in lower or "cipher mismatch" in lower:
        return "cipher-mismatch"
    if (
        ("starttls" in lower or "tls" in lower)
        and ("required" in lower or "not offered" in lower or "not support" in lower or "not-supported" in lower)
        and ("not offer" in lower or "not support" in lower or "is required" in lower or "must issue" in lower)
    ):
        return "required-not-offered"
    if (
        "tls negotiation failed" in lower
        or "handshake fail" in lower
        or "cannot start tls" in lower
        or "tls session" in lower
        or "ssl routines" in lower
        or "attempt to start tls failed" in lower
        or "tls error" in lower
    ):
        return "handshake-failed"
    return None


def dns_facts(text: str, lower: str, facts: Facts) -> None:
    """DNS outcome, detail word and failing name."""
    if "info" in lower or "error" in lower:
        detail = _DNS_DETAIL.search(text)
        if detail:
            word = detail.group(1)
            facts["dns.detail"] = word
            result = _DNS_DETAIL_RESULT.get(word.lower())
            if result is None and word.lower().endswith("norecords"):
                # InfoNoRecords: no MX when the text says it looked for MX, no address for a host lookup.
                if re.search(r"\bmx\b", lower):
                    result = "no-mx"
                elif re.search(r"\b(?:a|aaaa|address|smart ?host|host name)\b", lower):
                    result = "no-address"
            if result:
                facts["dns.result"] = result
    if "name service error" in lower:
        found = _POSTFIX_DNS.search(text)
        if found:
            facts["dns.query_name"] = found.group("name").rstrip(".")
            why = found.group("why").lower()
            qtype = (found.group("type") or "").upper()
            if "try again" in why:
                facts["dns.result"] = "servfail"
            elif "host not found" in why:
                facts["dns.result"] = "nxdomain"
            elif "no address" in why or "no data" in why:
                facts["dns.result"] = "no-mx" if qtype == "MX" else "no-address"
            elif "malformed" in why or "unexpected" in why:
                facts["dns.result"] = "servfail"
    elif "dns type" in lower:
        found = _GOOGLE_DNS.search(text)
        if found:
            facts["dns.query_name"] = found.group("name").rstrip(".")
            rcode = found.group("rcode").lower()
            if rcode in _RCODE_RESULT:
                facts["dns.result"] = _RCODE_RESULT[rcode]
            elif rcode == "noerror" and found.group("type").lower() == "mx" and "no mx" in lower:
                facts["dns.result"] = "no-mx"
            elif rcode == "noerror" and "had no relevant answers" in lower:
                # Gmail lists each lookup: no MX and no address record either means no mail host at all.
                empty = set(re.findall(r"dns type '(\w+)' lookup of [\w.\-]+ had no relevant answers", lower))
                if "mx" in empty:
                    facts["dns.result"] = "no-address" if "a" in empty else "no-mx"
    if "nullmx" in lower or "null mx" in lower or "indicated no smtp service" in lower:
        facts["dns.result"] = "null-mx"
    elif "point to non-existent hosts" in lower or "couldn't find a mail exchanger or ip" in lower:
        facts.setdefault("dns.result", "no-address")
    elif "host lookup did not complete" in lower:
        facts.setdefault("dns.result", "servfail")
    elif "couldn't find any host named" in lower or "domain does not exist" in lower or "nxdomain" in lower:
        facts.setdefault("dns.result", "nxdomain")
    elif "dns lookup failure" in lower or "mx lookup" in lower or "no mx found" in lower:
        # DragonFly's "DNS lookup failure: host X not found", OpenSMTPD's "Temporary failure in MX
        # lookup" and "No MX found for domain".
        found = _LOOKUP_FAILURE.search(text)
        if found and found.group("name"):
            facts.setdefault("dns.query_name", found.group("name").rstrip("."))
            facts.setdefault("dns.result", "nxdomain")
        elif "temporary failure in mx lookup" in lower:
            facts.setdefault("dns.result", "servfail")
        elif "no mx found" in lower:
            facts.setdefault("dns.result", "no-mx")
    elif "dnssec" in lower and ("invalid" in lower or "bogus" in lower or "fail" in lower):
        facts.setdefault("dns.result", "dnssec-failure")


def stage(lower: str) -> str | None:
    """The SMTP stage the text says the failure happened at (the first trigger phrase that names one)."""
    best: tuple[int, str] | None = None
    for trigger in _STAGE_TRIGGERS:
        at = lower.find(trigger)
        while at >= 0 and (best is None or at < best[0]):
            phrase = lower[at + len(trigger) : at + len(trigger) + 42].split(";", 1)[0].split(":", 1)[0]
            phrase = phrase.split("(", 1)[0].split(")", 1)[0]
            name = next((n for needle, n in _STAGES if needle in phrase), None)
            if name is not None:
                best = (at, name)
                break
            at = lower.find(trigger, at + 1)
    return best[1] if best else None


def remote_endpoint(text: str, facts: Facts) -> None:
    """Remote host, IP and port named in the text (first one wins)."""
    if "[" in text:
        found = _HOST_BRACKET_IP.search(text)
        if found:
            host = found.group("host").rstrip(".")
            if not _looks_like_ip(host):
                facts.setdefault("smtp.remote_host", host)
            facts.setdefault("smtp.remote_ip", found.group("ip"))
            if found.group("port"):
                port = int(found.group("port"))
                if 0 < port < 65536:
                    facts.setdefault("smtp.remote_port", port)
            return
    lower_has = "said" in text or "does not like" in text or "emote Server at" in text or "emote server at" in text
    if lower_has:
        said = _REMOTE_HOST_SAID.search(text)
        if said:
            facts.setdefault("smtp.remote_ip", said.group("ip") or said.group("ip2"))
            return
        at = _REMOTE_SERVER_AT.search(text)
        if at:
            facts.setdefault("smtp.remote_host", at.group("host").rstrip("."))
            if at.group("ip"):
                facts.setdefault("smtp.remote_ip", at.group("ip"))


def _looks_like_ip(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+:[0-9a-fA-F:.]*", text))


def text_symptoms(text: str, facts: Facts) -> None:
    """Add to `facts` every symptom the text states (never overriding what is already known)."""
    lower = text.lower()
    code = socket_error(text, lower)
    if code is not None:
        facts.setdefault("smtp.socket_error", code)
    state = tcp_state(lower, code)
    if state:
        facts.setdefault("tcp.state", state)
        if state in ("refused", "timeout", "unreachable"):
            facts.setdefault("smtp.stage", "connect")
    tls = tls_error(lower)
    if tls:
        facts.setdefault("tls.error", tls)
    if "lost connection" in lower or "closed connection" in lower or "closed abruptly" in lower or (
        "connection" in lower and "dropped" in lower
    ):
        facts.setdefault("smtp.closed_abruptly", True)
        facts.setdefault("tcp.state", "connected")
    elif ("conversation with" in lower and "timed out" in lower) or "smtp timeout" in lower:
        facts.setdefault("tcp.state", "connected")
        facts.setdefault("smtp.timed_out", True)
    dns_facts(text, lower, facts)
    if "refused to talk to me" in lower:  # Postfix: the server's greeting was not a 220
        facts.setdefault("smtp.stage", "banner")
    found_stage = stage(lower)
    if found_stage:
        facts.setdefault("smtp.stage", found_stage)
    remote_endpoint(text, facts)
