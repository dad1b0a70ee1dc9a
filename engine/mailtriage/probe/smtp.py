"""The TCP connection and a minimal SMTP client dialogue, recorded line by line.

Our own small client instead of smtplib: smtplib verifies TLS against the *connect* address
(breaks `--tls-name` and connecting by IP), turns every read error into one "disconnected"
exception, and would happily send DATA. This client knows only the commands the probe needs, and
refuses DATA and BDAT outright: the probe never sends a message.
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import ssl
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ProbeError
from .budget import Budget, Cancelled
from .model import TranscriptLine

# Commands that would start a message transfer; `SmtpSession.command` refuses them.
FORBIDDEN_VERBS = frozenset({"DATA", "BDAT"})

MAX_REPLY_BYTES = 64 * 1024  # a reply longer than this is garbage or an attack
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)")
_REPLY_CODE = re.compile(r"[2-5][0-5][0-9]\Z")

# tcp.state values
CONNECTED = "connected"
REFUSED = "refused"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
RESET = "reset"

_UNREACHABLE_ERRNOS = frozenset(
    code
    for code in (
        getattr(errno, "ENETUNREACH", None),
        getattr(errno, "EHOSTUNREACH", None),
        getattr(errno, "EADDRNOTAVAIL", None),
        getattr(errno, "EAFNOSUPPORT", None),
        getattr(errno, "ENETDOWN", None),
        getattr(errno, "EHOSTDOWN", None),
    )
    if code is not None
)


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]  # text after the code, one per reply line

    @property
    def enhanced(self) -> str | None:
        found = _ENHANCED.match(self.lines[0]) if self.lines else None
        # RFC 3463: the class digit repeats the reply's first digit; otherwise it is just text.
        if found is None or found.group(1)[0] != str(self.code)[0]:
            return None
        return found.group(1)

    @property
    def text(self) -> str:
        """The reply text without codes, lines joined by a space."""
        parts = []
        enhanced = self.enhanced
        for line in self.lines:
            found = _ENHANCED.match(line)
            parts.append(line[found.end():] if found and found.group(1) == enhanced else line)
        return " ".join(part.strip() for part in parts if part.strip())

    def __str__(self) -> str:
        return f"{self.code} {self.lines[0] if self.lines else ''}".strip()


class DialogueError(Exception):
    """The SMTP dialogue broke at `stage`; subclasses say how."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message


class ConnectionClosed(DialogueError):
    """The server closed (FIN) or reset (RST) the connection without a reply."""

    def __init__(self, stage: str, reset: bool) -> None:
        super().__init__(stage, "connection reset by the server" if reset else "connection closed by the server")
        self.reset = reset


class ReplyTimeout(DialogueError):
    """No complete reply within the step's timeout."""

    def __init__(self, stage: str, seconds: float) -> None:
        super().__init__(stage, f"no reply within {seconds:g} s")


class MalformedReply(DialogueError):
    """Something that is not an SMTP reply."""


ConnectFunction = Callable[[tuple[str, int], float], socket.socket]


def has_control(text: str) -> bool:
    """Whether `text` has a control or format character (C0, DEL, C1, line/paragraph separators,
    bidi and zero-width marks): none of them belongs in an SMTP command."""
    return any(ord(ch) < 32 or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def default_connect(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def classify_connect_error(exc: OSError) -> tuple[str, str]:
    """The tcp.state value and a one-line detail for a failed connect."""
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED, "connection refused (nothing listens, or a firewall rejects it)"
    if isinstance(exc, TimeoutError):
        return TIMEOUT, "no answer to the connection attempt (host down, or a firewall drops it)"
    if isinstance(exc, ConnectionResetError):
        return RESET, "connection reset while connecting"
    if exc.errno in _UNREACHABLE_ERRNOS:
        return UNREACHABLE, f"unreachable: {exc.strerror or exc}"
    return UNREACHABLE, f"cannot connect: {exc.strerror or exc}"


class SmtpSession:
    """One SMTP connection: reads replies, sends commands, upgrades to TLS, keeps a transcript."""

    def __init__(self, sock: socket.socket, budget: Budget, transcript: list[TranscriptLine]) -> None:
        self.sock: socket.socket = sock
        self.budget = budget
        self.transcript = transcript
        self._buffer = b""
        self.tls = False
        budget.register(sock)

    def _note(self, direction: str, text: str) -> None:
        at_ms = self.budget.elapsed() * 1000
        if self.tls and direction in ("->", "<-"):
            direction = "~>" if direction == "->" else "<~"
        self.transcript.append(TranscriptLine(at_ms, direction, text))

    def note(self, text: str) -> None:
        self._note("==", text)

    def _recv(self, stage: str, until: float) -> bytes:
        """One chunk, waiting no later than `until` (the step's deadline, monotonic clock): a
        server trickling a byte a second must not stretch the step past its timeout."""
        timeout = min(until - time.monotonic(), self.budget.limit())
        if timeout <= 0:
            raise ReplyTimeout(stage, self.budget.timeout)
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(4096)
        except TimeoutError:
            raise ReplyTimeout(stage, self.budget.timeout) from None
        except ConnectionResetError:
            raise ConnectionClosed(stage, reset=True) from None
        except ssl.SSLError:
            # The peer closed under TLS without close_notify. OpenSSL reports an RST this way
            # too (SSLEOFError, errno lost), so under TLS a reset cannot be told from a FIN.
            raise ConnectionClosed(stage, reset=False) from None
        except OSError as exc:
            if self.budget.cancelled:
                raise Cancelled("interrupted") from None
            raise ConnectionClosed(stage, reset=exc.errno == errno.ECONNRESET) from None
        if not chunk:
            if self.budget.cancelled:
                raise Cancelled("interrupted")
            raise ConnectionClosed(stage, reset=False)
        return chunk

    def _readline(self, stage: str, until: float) -> str:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise MalformedReply(stage, "reply line too long")
            self._buffer += self._recv(stage, until)
        raw, _, self._buffer = self._buffer.partition(b"\n")
        return raw.rstrip(b"\r").decode("utf-8", "replace")

    def read_reply(self, stage: str) -> Reply:
        """One (possibly multi-line) reply; raises DialogueError subclasses."""
        code: int | None = None
        lines: list[str] = []
        total = 0
        # The whole reply, every line of it, must arrive within one step timeout.
        until = time.monotonic() + self.budget.limit()
        while True:
            line = self._readline(stage, until)
            self._note("<-", line)
            total += len(line)
            if len(line) < 3 or not line[:3].isdecimal() or (len(line) > 3 and line[3] not in " -"):
                raise MalformedReply(stage, f"not an SMTP reply: {line[:80]!r}")
            line_code = int(line[:3])
            if not _REPLY_CODE.match(line[:3]):
                # RFC 5321 section 4.2: the first digit is 2-5, the second 0-5. 999 or 000 is a
                # protocol error, not a code to diagnose (nor a fact the vocabulary accepts).
                raise MalformedReply(stage, f"protocol error: reply code {line[:3]} is outside SMTP's range (2xx-5xx)")
            if code is None:
                code = line_code
            elif line_code != code:
                raise MalformedReply(stage, f"reply code changed mid-reply ({code} then {line_code})")
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return Reply(code, tuple(lines))
            if total > MAX_REPLY_BYTES:
                raise MalformedReply(stage, "reply too long")

    def send(self, line: str, stage: str) -> None:
        verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
        if verb in FORBIDDEN_VERBS:
            # Not an assert: asserts vanish under `python -O`, and this promise must hold.
            raise ProbeError(f"refusing to send {verb}: the probe never sends a message")
        if has_control(line):
            raise ProbeError(f"refusing to send a command with a line break or other control character: {line!r}")
        self._note("->", line)
        self.sock.settimeout(self.budget.limit())
        try:
            self.sock.sendall(line.encode("utf-8") + b"\r\n")
        except TimeoutError:
            raise ReplyTimeout(stage, self.budget.timeout) from None
        except OSError as exc:
            if self.budget.cancelled:
                raise Cancelled("interrupted") from None
            reset = isinstance(exc, ConnectionResetError) or exc.errno == errno.ECONNRESET
            raise ConnectionClosed(stage, reset=reset) from None

    def command(self, line: str, stage: str) -> Reply:
        self.send(line, stage)
        return self.read_reply(stage)

    def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Wrap the socket and run the handshake; ssl exceptions propagate for `tls` to classify."""
        if self._buffer:
            # Data sent before the handshake would be read as if it came under TLS (STARTTLS
            # command injection); drop it and say so.
            self.note(f"discarded {len(self._buffer)} byte(s) received before the TLS handshake")
            self._buffer = b""
        plain = self.sock
        plain.settimeout(self.budget.limit())
        wrapped = context.wrap_socket(
            plain, server_hostname=server_hostname, do_handshake_on_connect=False, suppress_ragged_eofs=False
        )
        self.budget.unregister(plain)
        self.sock = wrapped
        self.budget.register(wrapped)
        wrapped.do_handshake()
        self.tls = True

    def close(self) -> None:
        self.budget.unregister(self.sock)
        with contextlib.suppress(OSError):
            self.sock.close()


def connect(
    address: str,
    port: int,
    budget: Budget,
    connector: ConnectFunction = default_connect,
) -> tuple[socket.socket, float]:
    """Open the TCP connection; returns the socket and the seconds it took.

    Raises OSError (classify with `classify_connect_error`) or Cancelled.
    """
    limit = budget.limit()
    started = time.monotonic()
    sock = connector((address, port), limit)
    return sock, time.monotonic() - started
