"""Parse one pasted SMTP reply or error string into facts."""

from __future__ import annotations

import re

from ..facts import Facts

_REPLY = re.compile(r"(?<![\d.])([2-5]\d\d)(?:[ -]+|$)(?:#?([245]\.\d{1,3}\.\d{1,3})(?![\d.]))?")
_ENHANCED = re.compile(r"(?<![\d.])#?([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_BRACKET = re.compile(r"\[(\w+)=([^\]]*)\]")
_SOCKET = re.compile(r"socket error code (\d{5})", re.IGNORECASE)


def parse_reply(text: str) -> Facts:
    """Read the reply code, enhanced code, text and Exchange's bracketed details from one reply.

    Returns only what was found; an empty dict means the text holds no SMTP reply at all.
    """
    facts: Facts = {}
    line = " ".join(text.split())
    found = _REPLY.search(line)
    rest = line
    if found:
        facts["smtp.reply_code"] = int(found.group(1))
        if found.group(2):
            facts["smtp.enhanced"] = found.group(2)
        rest = line[found.end():]
    else:
        enhanced = _ENHANCED.search(line)
        if enhanced:
            facts["smtp.enhanced"] = enhanced.group(1)
            rest = line[enhanced.end():]
    for key, value in _BRACKET.findall(rest):
        key_lower = key.lower()
        if key_lower == "message":
            facts["smtp.details_message"] = value.strip()
        elif key_lower == "lastattemptedservername":
            facts["smtp.remote_host"] = value.strip()
        elif key_lower == "lastattemptedip":
            address, _, port = value.strip().rpartition(":")
            if address and port.isdigit():
                facts["smtp.remote_ip"] = address
                facts["smtp.remote_port"] = int(port)
            else:
                facts["smtp.remote_ip"] = value.strip()
    socket = _SOCKET.search(line)
    if socket:
        facts["smtp.socket_error"] = int(socket.group(1))
    message = _BRACKET.sub("", rest).strip(" -:;,")
    if message and facts:
        facts["smtp.text"] = message
    return facts
