"""Probe one destination host: A/AAAA, TCP, banner, EHLO, STARTTLS, TLS, EHLO again, optionally
MAIL FROM:<> / RCPT TO, and QUIT. Never DATA.

Each step appends a `Step` to the `HostResult` as soon as it ends and records its facts, so an
interrupted probe still has everything collected so far. Facts are set only for what the server
did: a step cut short by the deadline or by Ctrl-C records no fact about the server.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import NoReturn

import dns.resolver

from ..errors import ProbeError
from ..facts import FactValue
from . import dns as probe_dns
from . import smtp, tls
from .budget import Budget, Cancelled
from .model import HostResult, ProbeOptions, Step, StepStatus
from .policy import ALLOW_ALL, ProbePolicy
from .smtp import (
    ConnectFunction,
    ConnectionClosed,
    DialogueError,
    Reply,
    ReplyTimeout,
    SmtpSession,
    has_control,
)
from .target import DEFAULT_PORT, is_ip

_ADDRESS = re.compile(r"^[^\s<>@]+@[^\s<>@]+$")
_EHLO_NAME = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9\-_.]{0,253}[A-Za-z0-9])?\.?|\[[0-9A-Fa-f:.]+\]|\[IPv6:[0-9A-Fa-f:.]+\])$")


def check_address(address: str) -> str:
    """A mailbox for RCPT TO, without angle brackets; raises ProbeError when it is not one."""
    value = address.strip().strip("<>")
    if not _ADDRESS.match(value) or has_control(value):
        raise ProbeError(f"--rcpt {address!r} is not a mail address (expected local@domain)")
    return value


def check_ehlo_name(name: str) -> str:
    """A name for EHLO/HELO (a domain, or an address literal such as [192.0.2.1]); raises
    ProbeError for anything else, control characters above all."""
    if has_control(name) or not _EHLO_NAME.match(name):
        raise ProbeError(f"--ehlo {name!r} is not a host name or address literal (expected mail.example.com or [192.0.2.1])")
    return name


@dataclass
class HostContext:
    """What every host probe of one run shares."""

    options: ProbeOptions
    budget: Budget
    resolver: dns.resolver.Resolver | None
    verify_context: ssl.SSLContext
    ehlo_name: str
    connector: ConnectFunction = smtp.default_connect
    policy: ProbePolicy = ALLOW_ALL


class _Stop(Exception):
    """End this host's dialogue (a step failed); QUIT has been tried where it makes sense."""


class HostProbe:
    def __init__(self, host: HostResult, context: HostContext) -> None:
        self.host = host
        self.ctx = context
        self.budget = context.budget
        self.options = context.options
        self.facts = host.facts
        self.session: SmtpSession | None = None
        self._step_started = 0.0

    # -- bookkeeping ----------------------------------------------------------------------------

    def _start(self, step: str) -> None:
        self._step_started = time.monotonic()
        self.host.in_progress = step

    def _step(self, name: str, status: StepStatus, summary: str, **detail: FactValue) -> Step:
        elapsed = (time.monotonic() - self._step_started) * 1000
        step = Step(name, status, summary, elapsed, dict(detail))
        self.host.steps.append(step)
        if name == "tls" and self.session is not None:
            # The handshake has no lines of its own in the transcript; say how it ended.
            self.session.note(f"TLS: {summary}")
        return step

    def _reply_facts(self, reply: Reply, stage: str) -> None:
        self.facts["smtp.reply_code"] = reply.code
        if reply.enhanced:
            self.facts["smtp.enhanced"] = reply.enhanced
        if reply.text:
            self.facts["smtp.text"] = reply.text
        self.facts["smtp.stage"] = stage

    def _dialogue_failed(self, name: str, exc: DialogueError) -> NoReturn:
        """Record a broken dialogue (closed, reset, silent, garbage) as the step's failure."""
        if isinstance(exc, ReplyTimeout) and self.budget.cut_short():
            raise Cancelled("overall deadline reached")
        self._step(name, StepStatus.FAIL, exc.message)
        self.facts["smtp.stage"] = exc.stage
        if isinstance(exc, ConnectionClosed):
            self.facts["smtp.closed_abruptly"] = True
            if exc.reset:
                self.facts["tcp.state"] = smtp.RESET
        elif isinstance(exc, ReplyTimeout):
            self.facts["smtp.timed_out"] = True
        raise _Stop

    def _quit(self) -> None:
        """Say goodbye; a failure here is only a warning (the verdict is already known)."""
        assert self.session is not None
        self._start("quit")
        try:
            reply = self.session.command("QUIT", "quit")
        except DialogueError as exc:
            self._step("quit", StepStatus.WARN, f"QUIT: {exc.message}")
            return
        status = StepStatus.OK if reply.code == 221 else StepStatus.WARN
        self._step("quit", status, str(reply), code=reply.code)

    def _fail_reply(self, name: str, reply: Reply, stage: str, summary: str) -> NoReturn:
        self._step(name, StepStatus.FAIL, summary, code=reply.code)
        self._reply_facts(reply, stage)
        self._quit()
        raise _Stop

    # -- the steps ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            addresses = self._resolve()
            sock = self._connect(addresses)
            self.session = SmtpSession(sock, self.budget, self.host.transcript)
            self._dialogue()
            self.host.finished = True
        except _Stop:
            self.host.finished = True
        except Cancelled as exc:
            where = self.host.in_progress
            self._start("stopped")
            self._step("stopped", StepStatus.SKIPPED, f"{exc} (during {where})" if where else str(exc))
        finally:
            if self.session is not None:
                self.session.close()

    def _resolve(self) -> list[str]:
        if is_ip(self.host.name):
            return [self.host.name]
        assert self.ctx.resolver is not None
        self._start("address")
        outcome = probe_dns.lookup_addresses(self.ctx.resolver, self.host.name, self.budget)
        if outcome.result == probe_dns.TIMEOUT and self.budget.cut_short():
            raise Cancelled("overall deadline reached")
        if outcome.result != probe_dns.NOERROR:
            self._step("address", StepStatus.FAIL, f"{self.host.name}: {outcome.detail}", result=outcome.result)
            self.facts["dns.result"] = outcome.result
            self.facts["dns.query_name"] = self.host.name
            raise _Stop
        self._step("address", StepStatus.OK, outcome.detail, result=outcome.result)
        if self.host.role in ("smart-host", "host"):
            self.facts["dns.result"] = probe_dns.NOERROR
        return outcome.addresses

    def _connect(self, addresses: list[str]) -> socket.socket:
        port = self.host.port
        self.facts["smtp.remote_host"] = self.host.name
        self.facts["smtp.remote_port"] = port
        failures: list[tuple[str, str]] = []
        for address in addresses:
            self._start("tcp")
            # Checked on the resolved address, which is the one connected to: no second lookup.
            refusal = self.ctx.policy.refusal(address, port)
            if refusal is not None:
                self._step("tcp", StepStatus.SKIPPED, f"{address}:{port}: not probed: {refusal}", address=address)
                continue
            try:
                sock, _ = smtp.connect(address, port, self.budget, self.ctx.connector)
            except OSError as exc:
                if isinstance(exc, TimeoutError) and self.budget.cut_short():
                    raise Cancelled("overall deadline reached") from None
                state, detail = smtp.classify_connect_error(exc)
                self._step("tcp", StepStatus.FAIL, f"{address}:{port}: {detail}", state=state, address=address)
                failures.append((address, state))
                continue
            self.host.address = address
            self.facts["smtp.remote_ip"] = address
            self.facts["tcp.state"] = smtp.CONNECTED
            self._step("tcp", StepStatus.OK, f"connected to {address}:{port}", state=smtp.CONNECTED, address=address)
            return sock
        if not failures:  # every address was refused by the policy: nothing is known of the server
            raise _Stop
        # Report the most telling failure: an unreachable IPv6 address says less than a refusal.
        address, state = next(((a, s) for a, s in failures if s != smtp.UNREACHABLE), failures[0])
        self.host.address = address
        self.facts["smtp.remote_ip"] = address
        self.facts["tcp.state"] = state
        raise _Stop

    def _dialogue(self) -> None:
        session = self.session
        assert session is not None
        # Banner
        self._start("banner")
        try:
            banner = session.read_reply("banner")
        except DialogueError as exc:
            self._dialogue_failed("banner", exc)
        self.facts["smtp.banner_code"] = banner.code
        if banner.code != 220:
            self._fail_reply("banner", banner, "banner", f"greeting is an error: {banner}")
        self._step("banner", StepStatus.OK, str(banner), code=banner.code)

        extensions = self._ehlo("ehlo", "ehlo")
        if not self._starttls(extensions):
            self._after_ehlo()
            return
        self._tls_handshake()
        self._ehlo("ehlo-tls", "ehlo")
        self._after_ehlo()

    def _ehlo(self, name: str, stage: str) -> set[str]:
        session = self.session
        assert session is not None
        self._start(name)
        try:
            reply = session.command(f"EHLO {self.ctx.ehlo_name}", stage)
        except DialogueError as exc:
            self._dialogue_failed(name, exc)
        if reply.code == 250:
            extensions = {line.split(" ", 1)[0].upper() for line in reply.lines[1:] if line}
            listed = ", ".join(sorted(extensions)) or "none"
            self._step(name, StepStatus.OK, f"250, extensions: {listed}", code=250)
            return extensions
        if reply.code < 500:
            self._fail_reply(name, reply, stage, f"EHLO refused: {reply}")
        # 5xx to EHLO: an old server may still speak HELO (RFC 5321 section 3.2).
        self._step(name, StepStatus.WARN, f"EHLO refused ({reply}); trying HELO", code=reply.code)
        self._start("helo")
        try:
            helo = session.command(f"HELO {self.ctx.ehlo_name}", "helo")
        except DialogueError as exc:
            self._dialogue_failed("helo", exc)
        if helo.code != 250:
            self._fail_reply("helo", helo, "helo", f"HELO refused: {helo}")
        self._step("helo", StepStatus.WARN, f"{helo} (no ESMTP: no STARTTLS possible)", code=250)
        return set()

    def _starttls(self, extensions: set[str]) -> bool:
        """True when the server agreed to start TLS; False when going on without it."""
        session = self.session
        assert session is not None
        self._start("starttls")
        offered = "STARTTLS" in extensions
        self.facts["smtp.starttls_offered"] = offered
        if not offered:
            if self.options.require_tls:
                self.facts["tls.error"] = tls.REQUIRED_NOT_OFFERED
                self._step("starttls", StepStatus.FAIL, "STARTTLS not offered, and TLS is required")
                self._quit()
                raise _Stop
            self._step("starttls", StepStatus.WARN, "STARTTLS not offered: mail would travel unencrypted")
            return False
        try:
            reply = session.command("STARTTLS", "starttls")
        except DialogueError as exc:
            self._dialogue_failed("starttls", exc)
        if reply.code == 220:
            self._step("starttls", StepStatus.OK, str(reply), code=220)
            return True
        if self.options.require_tls or reply.code == 421:
            self._fail_reply("starttls", reply, "starttls", f"STARTTLS refused: {reply}")
        # Not required: RFC 3207 lets the client go on in clear text.
        self._step("starttls", StepStatus.WARN, f"STARTTLS refused ({reply}); going on without TLS", code=reply.code)
        self._reply_facts(reply, "starttls")
        return False

    def _tls_handshake(self) -> None:
        """Handshake with verification on, like a sender that requires TLS. On a verification
        failure the certificates the server sent are still read from the failed handshake, so
        the report has both the reason and the certificate."""
        session = self.session
        assert session is not None
        name = self.options.tls_name or self.host.name
        self._start("tls")
        try:
            session.start_tls(self.ctx.verify_context, name)
        except ssl.SSLCertVerificationError as exc:
            chain = self._chain(session.sock)
            code = int(getattr(exc, "verify_code", 0) or 0)
            error = tls.classify_verify_error(code, chain)
            message = getattr(exc, "verify_message", "") or str(exc)
            self.facts["tls.error"] = error
            self._cert_facts(chain)
            self._step(
                "tls",
                StepStatus.FAIL,
                f"certificate not accepted for {name!r}: {error} ({message}){self._cert_summary(chain)}",
                verify_code=code,
                served_certificates=len(chain),
            )
            raise _Stop from None
        except TimeoutError:
            if self.budget.cut_short():
                raise Cancelled("overall deadline reached") from None
            self.facts.update({"tls.error": tls.HANDSHAKE_FAILED, "smtp.timed_out": True, "smtp.stage": "tls"})
            self._step("tls", StepStatus.FAIL, "TLS handshake timed out")
            raise _Stop from None
        except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError) as exc:
            if self.budget.cancelled:
                raise Cancelled("interrupted") from None
            self.facts.update({"tls.error": tls.HANDSHAKE_FAILED, "smtp.closed_abruptly": True, "smtp.stage": "tls"})
            self._step("tls", StepStatus.FAIL, f"server closed the connection during the TLS handshake ({exc})")
            raise _Stop from None
        except ssl.SSLError as exc:
            if self.budget.cancelled:
                raise Cancelled("interrupted") from None
            error = tls.classify_ssl_error(exc)
            self.facts["tls.error"] = error
            self.facts["smtp.stage"] = "tls"
            self._step("tls", StepStatus.FAIL, f"TLS handshake failed: {error} ({exc.reason or exc})")
            raise _Stop from None
        except OSError as exc:
            if self.budget.cancelled:
                raise Cancelled("interrupted") from None
            self.facts.update({"tls.error": tls.HANDSHAKE_FAILED, "smtp.closed_abruptly": True, "smtp.stage": "tls"})
            self._step("tls", StepStatus.FAIL, f"TLS handshake failed: {exc}")
            raise _Stop from None
        wrapped = session.sock
        assert isinstance(wrapped, ssl.SSLSocket)
        chain = self._chain(wrapped)
        version = wrapped.version() or ""
        cipher = (wrapped.cipher() or ("",))[0]
        self.facts.update({"tls.error": tls.NONE, "tls.version": version, "tls.cipher": cipher})
        self._cert_facts(chain)
        self._step("tls", StepStatus.OK, f"{version} {cipher}, certificate valid for {name!r}{self._cert_summary(chain)}")

    def _chain(self, sock: socket.socket) -> list[tls.CertInfo]:
        if not isinstance(sock, ssl.SSLSocket):
            return []
        try:
            return [tls.cert_info(der) for der in tls.served_chain(sock)]
        except (ValueError, ssl.SSLError) as exc:
            if self.session is not None:
                self.session.note(f"could not read the server's certificate: {exc}")
            return []

    def _cert_facts(self, chain: list[tls.CertInfo]) -> None:
        if chain:
            leaf = chain[0]
            self.facts["tls.cert_subject"] = leaf.subject
            self.facts["tls.cert_issuer"] = leaf.issuer
            self.facts["tls.cert_not_after"] = leaf.not_after

    @staticmethod
    def _cert_summary(chain: list[tls.CertInfo]) -> str:
        if not chain:
            return "; certificate not available"
        leaf = chain[0]
        return f"; subject {leaf.subject}, issuer {leaf.issuer}, valid {leaf.not_before} to {leaf.not_after}, {len(chain)} certificate(s) sent"

    def _after_ehlo(self) -> None:
        """The optional recipient test, then QUIT. There is no DATA here or anywhere."""
        session = self.session
        assert session is not None
        if self.options.rcpt:
            self._start("mail")
            try:
                mail = session.command("MAIL FROM:<>", "mail")
            except DialogueError as exc:
                self._dialogue_failed("mail", exc)
            if mail.code != 250:
                self._fail_reply("mail", mail, "mail", f"MAIL FROM:<> refused: {mail}")
            self._step("mail", StepStatus.OK, str(mail), code=mail.code)
            self._start("rcpt")
            try:
                rcpt = session.command(f"RCPT TO:<{self.options.rcpt}>", "rcpt")
            except DialogueError as exc:
                self._dialogue_failed("rcpt", exc)
            if rcpt.code not in (250, 251):
                self._fail_reply("rcpt", rcpt, "rcpt", f"recipient refused: {rcpt}")
            self._step("rcpt", StepStatus.OK, f"{rcpt} (stopping here: the probe never sends DATA)", code=rcpt.code)
        self._quit()


def host_port(name: str, options: ProbeOptions, given: int | None) -> int:
    if name in options.ports:
        return options.ports[name]
    if options.port is not None:
        return options.port
    return given if given is not None else DEFAULT_PORT
