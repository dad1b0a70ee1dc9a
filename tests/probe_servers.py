"""Loopback servers for the probe tests: DNS (dnslib), SMTP (aiosmtpd, and a scripted server for
misbehaviour aiosmtpd cannot produce), refused and silent TCP ports, and certificates.

Everything listens on 127.0.0.1 on ephemeral ports and is stopped by the fixtures in
tests/conftest.py. No test traffic leaves the machine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dnslib
import trustme
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from dnslib.server import BaseResolver, DNSLogger, DNSServer

LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# DNS


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers from a mutable zone; names can be set to fail with an rcode or to stay silent."""

    def __init__(self) -> None:
        self.records: dict[str, list[dnslib.RR]] = {}
        self.behaviour: dict[str, str] = {}
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, *zone_lines: str) -> None:
        with self._lock:
            for line in zone_lines:
                for rr in dnslib.RR.fromZone(line):
                    self.records.setdefault(str(rr.rname).rstrip(".").lower(), []).append(rr)

    def fail(self, name: str, how: str) -> None:
        """how: SERVFAIL, REFUSED, NXDOMAIN, or "silent" (never answer)."""
        with self._lock:
            self.behaviour[name.lower()] = how

    def resolve(self, request: dnslib.DNSRecord, handler: object) -> dnslib.DNSRecord:
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = dnslib.QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((qname, qtype))
            behaviour = self.behaviour.get(qname)
            records = list(self.records.get(qname, []))
            exists = qname in self.records
        if behaviour == "silent":
            raise dnslib.DNSError("silent on purpose")  # dnslib's handler then sends nothing
        reply = request.reply()
        if behaviour is not None:
            reply.header.rcode = getattr(dnslib.RCODE, behaviour)
            return reply
        if not exists:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
            return reply
        for rr in records:
            if rr.rtype == request.q.qtype:
                reply.add_answer(rr)
        return reply


class QuietLogger(DNSLogger):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)


@contextlib.contextmanager
def dns_server() -> Iterator[tuple[ZoneResolver, int]]:
    resolver = ZoneResolver()
    server = DNSServer(resolver, address=LOOPBACK, port=0, logger=QuietLogger())
    server.start_thread()
    try:
        yield resolver, server.server.server_address[1]
    finally:
        server.stop()
        server.server.server_close()


# ---------------------------------------------------------------------------------------------
# TCP


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port that refuses connections: bound (so nobody else takes it) but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextlib.contextmanager
def blackhole_port() -> Iterator[int]:
    """A port whose connection attempts time out: a listener with a full accept queue that never
    accepts, so Linux drops further SYNs."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    for _ in range(4):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect((LOOPBACK, port))
        fillers.append(filler)
    time.sleep(0.05)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# ---------------------------------------------------------------------------------------------
# SMTP: a scripted server


@dataclass
class Behaviour:
    """How the scripted server behaves. drop_at: the command (EHLO, STARTTLS, MAIL, RCPT, QUIT,
    HANDSHAKE for the TLS handshake, EHLO-TLS for EHLO after TLS) at which it drops the
    connection, with a FIN or, when reset is true, an RST."""

    banner: str | None = "220 mx.test ESMTP scripted"  # None: accept and never greet
    close_after_banner: bool = False
    extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME", "SIZE 10240000")
    tls_context: ssl.SSLContext | None = None  # set: STARTTLS is offered
    starttls_reply: str = "220 2.0.0 Ready to start TLS"
    ehlo_reply: str | None = None  # a replacement for the 250 EHLO reply
    mail_reply: str = "250 2.1.0 Sender OK"
    rcpt_reply: str = "250 2.1.5 Recipient OK"
    drop_at: str | None = None
    reset: bool = False
    trickle: float | None = None  # set: the banner is sent one byte per this many seconds


@dataclass
class ScriptedSmtpServer:
    behaviour: Behaviour
    port: int = 0
    commands: list[str] = field(default_factory=list)
    connections: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept_thread.start()

    @property
    def received_data(self) -> bool:
        return any(c.split(" ", 1)[0].upper() in ("DATA", "BDAT") for c in self.commands)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._accept_thread.join(2)
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
        for thread in self._threads:
            thread.join(2)

    def _drop(self, conn: socket.socket) -> None:
        if self.behaviour.reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._dialogue(conn)
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(repr(exc))
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _dialogue(self, conn: socket.socket) -> None:
        b = self.behaviour
        conn.settimeout(5)
        if b.banner is None:
            while not self._stop.is_set():  # silent until the client gives up
                with contextlib.suppress(TimeoutError):
                    if not conn.recv(1024):
                        return
            return
        if b.trickle is not None:
            for byte in b.banner.encode() + b"\r\n":
                if self._stop.is_set():
                    return
                conn.sendall(bytes([byte]))
                time.sleep(b.trickle)
        else:
            conn.sendall(b.banner.encode() + b"\r\n")
        if b.close_after_banner:
            with contextlib.suppress(OSError):
                conn.recv(1024)  # a polite client says QUIT
            conn.close()
            return
        in_tls = False
        reader = conn.makefile("rb")
        while True:
            raw = reader.readline(4096)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(line)
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            stage = "EHLO-TLS" if verb == "EHLO" and in_tls else verb
            if b.drop_at == stage:
                self._drop(conn)
                return
            if verb == "EHLO":
                if b.ehlo_reply is not None:
                    reply = b.ehlo_reply
                else:
                    extensions = list(b.extensions)
                    if b.tls_context is not None and not in_tls:
                        extensions.append("STARTTLS")
                    lines = ["mx.test greets you", *extensions]
                    reply = "\r\n".join(
                        f"250{'-' if i < len(lines) - 1 else ' '}{text}" for i, text in enumerate(lines)
                    )
            elif verb == "HELO":
                reply = "250 mx.test"
            elif verb == "STARTTLS" and b.tls_context is not None and not in_tls:
                conn.sendall(b.starttls_reply.encode() + b"\r\n")
                if not b.starttls_reply.startswith("220"):
                    continue
                if b.drop_at == "HANDSHAKE":
                    conn.recv(1024)  # the ClientHello
                    self._drop(conn)
                    return
                try:
                    conn = b.tls_context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    self.errors.append(f"handshake: {exc!r}")
                    return
                in_tls = True
                reader = conn.makefile("rb")
                continue
            elif verb == "MAIL":
                reply = b.mail_reply
            elif verb == "RCPT":
                reply = b.rcpt_reply
            elif verb == "RSET" or verb == "NOOP":
                reply = "250 2.0.0 OK"
            elif verb == "QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            elif verb in ("DATA", "BDAT"):
                reply = "554 5.7.0 this test server refuses DATA: the probe must never send it"
            else:
                reply = "502 5.5.2 Command not recognised"
            conn.sendall(reply.encode() + b"\r\n")


@contextlib.contextmanager
def scripted_smtp(behaviour: Behaviour) -> Iterator[ScriptedSmtpServer]:
    server = ScriptedSmtpServer(behaviour)
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# SMTP: aiosmtpd for the well-behaved servers


class RecordingHandler:
    def __init__(self) -> None:
        self.data_received = False
        self.rcpts: list[str] = []

    async def handle_RCPT(self, server: object, session: object, envelope: object, address: str, options: object) -> str:
        self.rcpts.append(address)
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.data_received = True
        return "554 5.7.0 the probe must never send DATA"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def aiosmtpd_server(tls_context: ssl.SSLContext | None, hostname: str = "mx.ok.test") -> Iterator[tuple[int, RecordingHandler]]:
    """aiosmtpd on a free port (its Controller cannot bind port 0: it connects to itself to check
    readiness). Retries if another process takes the port in between."""
    handler = RecordingHandler()
    for _attempt in range(5):
        port = free_port()
        controller = Controller(
            handler, hostname=LOOPBACK, port=port, server_hostname=hostname, tls_context=tls_context, ready_timeout=5
        )
        try:
            controller.start()
        except (OSError, RuntimeError):
            continue
        break
    else:
        raise RuntimeError("could not start aiosmtpd")
    try:
        yield port, handler
    finally:
        controller.stop()


# ---------------------------------------------------------------------------------------------
# Certificates


def server_context(cert_pem_chain: list[bytes], key_pem: bytes, tmp: Path) -> ssl.SSLContext:
    """A server context serving exactly the given certificates (leaf first)."""
    tmp.mkdir(parents=True, exist_ok=True)
    cert_path = tmp / f"chain-{id(cert_pem_chain)}.pem"
    key_path = tmp / f"key-{id(cert_pem_chain)}.pem"
    cert_path.write_bytes(b"".join(cert_pem_chain))
    key_path.write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def trustme_context(leaf: trustme.LeafCert, tmp: Path, leaf_only: bool = False) -> ssl.SSLContext:
    chain = [blob.bytes() for blob in leaf.cert_chain_pems]
    return server_context(chain[:1] if leaf_only else chain, leaf.private_key_pem.bytes(), tmp)


@dataclass
class OwnChain:
    """A root -> intermediate -> leaf chain built with cryptography; the leaf carries an AIA
    "CA Issuers" pointer like public CA certificates do (trustme cannot add one)."""

    root_pem: bytes
    intermediate_pem: bytes
    leaf_pem: bytes
    leaf_key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )


def _ca_extensions(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    return (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def own_chain(host: str) -> OwnChain:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca_extensions(_builder(_name("Probe Test Root"), _name("Probe Test Root"), root_key.public_key()), root_key)
    root_cert = root.sign(root_key, hashes.SHA256())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _ca_extensions(_builder(_name("Probe Test Intermediate"), root_cert.subject, inter_key.public_key()), inter_key)
    inter = inter.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
    )
    inter_cert = inter.sign(root_key, hashes.SHA256())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        _builder(_name(host), inter_cert.subject, leaf_key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier("http://pki.invalid/intermediate.der"),
                    )
                ]
            ),
            critical=False,
        )
    )
    leaf_cert = leaf.sign(inter_key, hashes.SHA256())
    return OwnChain(_pem(root_cert), _pem(inter_cert), _pem(leaf_cert), _key_pem(leaf_key))


def self_signed(host: str) -> tuple[bytes, bytes]:
    """A self-signed leaf for `host` (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(host), _name(host), key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)
