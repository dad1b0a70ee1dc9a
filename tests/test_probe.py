"""The active probe against real servers on 127.0.0.1: a dnslib DNS server, aiosmtpd and a scripted
SMTP server, refused and silent ports, trustme/cryptography certificates. Short timeouts."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.errors import ProbeError
from mailtriage.facts import normalize_facts
from mailtriage.probe import ProbeOptions, ProbeResult, StepStatus, Verdict, run_probe
from mailtriage.probe.budget import Budget
from mailtriage.probe.smtp import DialogueError, SmtpSession
from mailtriage.probe.target import parse_endpoint
from probe_servers import (
    Behaviour,
    OwnChain,
    ScriptedSmtpServer,
    ZoneResolver,
    aiosmtpd_server,
    blackhole_port,
    dns_server,
    own_chain,
    refused_port,
    self_signed,
    server_context,
    trustme_context,
)

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 0.5
MX = "mx.ok.test"  # the name the certificates are issued for

# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    with dns_server() as (zone, port):
        _populate(zone)
        yield port


def _populate(zone: ZoneResolver) -> None:
    zone.add(
        f"{MX}. 60 IN A 127.0.0.1",
        "smart.ok.test. 60 IN A 127.0.0.1",
        f"ok.test. 60 IN MX 10 {MX}.",
        "nullmx.test. 60 IN MX 0 .",
        "nomx.test. 60 IN A 127.0.0.1",
        "noaddr.test. 60 IN TXT exists-but-no-mx-nor-address",
        "mxnoaddr.test. 60 IN MX 10 host.mxnoaddr.test.",
        "host.mxnoaddr.test. 60 IN TXT exists-but-no-address",
        "mxnx.test. 60 IN MX 10 gone.mxnx.test.",
        "mxservfail.test. 60 IN MX 10 broken.mxservfail.test.",
        "multi.test. 60 IN MX 30 c.multi.test.",
        "multi.test. 60 IN MX 10 a.multi.test.",
        "multi.test. 60 IN MX 20 b.multi.test.",
        "a.multi.test. 60 IN A 127.0.0.1",
        "b.multi.test. 60 IN A 127.0.0.1",
        "c.multi.test. 60 IN A 127.0.0.1",
        "v6only.test. 60 IN AAAA ::1",
    )
    for n in range(1, 6):
        zone.add(f"five.test. 60 IN MX {n * 10} mx{n}.five.test.", f"mx{n}.five.test. 60 IN A 127.0.0.1")
    for name, how in (
        ("servfail.test", "SERVFAIL"),
        ("refused.test", "REFUSED"),
        ("silent.test", "silent"),
        ("broken.mxservfail.test", "SERVFAIL"),
        ("broken.ok.test", "SERVFAIL"),
    ):
        zone.fail(name, how)


@dataclass
class Pki:
    ca: trustme.CA
    other_ca: trustme.CA
    own: OwnChain
    ca_file: Path
    tmp: Path

    def context(self, leaf: trustme.LeafCert, leaf_only: bool = False) -> ssl.SSLContext:
        return trustme_context(leaf, self.tmp, leaf_only)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    own = own_chain(MX)
    ca_file = tmp / "trusted.pem"
    ca_file.write_bytes(ca.cert_pem.bytes() + own.root_pem)  # the probe trusts these two roots only
    return Pki(ca, trustme.CA(), own, ca_file, tmp)


@pytest.fixture
def smtp() -> Iterator[Callable[[Behaviour], ScriptedSmtpServer]]:
    """Start scripted SMTP servers; on teardown check none of them ever received DATA."""
    servers: list[ScriptedSmtpServer] = []

    def start(behaviour: Behaviour) -> ScriptedSmtpServer:
        server = ScriptedSmtpServer(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    for server in servers:
        assert not server.received_data, f"the probe sent DATA: {server.commands}"


@pytest.fixture
def options(dns_port: int, pki: Pki) -> Callable[..., ProbeOptions]:
    def make(**overrides: Any) -> ProbeOptions:
        values: dict[str, Any] = {
            "nameserver": f"127.0.0.1:{dns_port}",
            "timeout": TIMEOUT,
            "deadline": 5.0,
            "ca_file": str(pki.ca_file),
            "trust_system_cas": False,
            "ehlo_name": "probe.test",
        }
        values.update(overrides)
        return ProbeOptions(**values)

    return make


def steps(result: ProbeResult, host: int = 0) -> dict[str, StepStatus]:
    return {step.name: step.status for step in result.hosts[host].steps}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------------------------------
# DNS


@pytest.mark.parametrize(
    ("target", "result", "query_name"),
    [
        ("missing.test", "nxdomain", "missing.test"),
        ("servfail.test", "servfail", "servfail.test"),
        ("refused.test", "refused", "refused.test"),
        ("silent.test", "timeout", "silent.test"),
        ("nullmx.test", "null-mx", "nullmx.test"),
        ("noaddr.test", "no-address", "noaddr.test"),
        ("mxnoaddr.test", "no-address", "host.mxnoaddr.test"),
        ("mxnx.test", "nxdomain", "gone.mxnx.test"),
        ("mxservfail.test", "servfail", "broken.mxservfail.test"),
    ],
)
def test_dns_failures_become_dns_result_and_the_failing_name(
    options: Callable[..., ProbeOptions], target: str, result: str, query_name: str
) -> None:
    probe = run_probe(options(target=target))
    assert probe.facts["dns.result"] == result
    assert probe.facts["dns.query_name"] == query_name
    assert probe.facts["context.system"] == "mailtriage-probe"
    assert probe.facts["input.kind"] == "probe"
    assert "tcp.state" not in probe.facts  # nothing was connected
    assert probe.verdict is Verdict.FAIL


def test_domain_without_mx_falls_back_to_its_address_and_says_so(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer]
) -> None:
    server = smtp(Behaviour())
    probe = run_probe(options(target="nomx.test", port=server.port))
    assert probe.domain_steps[0].status is StepStatus.WARN
    assert "implicit MX" in probe.domain_steps[0].summary
    assert probe.hosts[0].role == "implicit-mx"
    assert probe.facts["dns.result"] == "no-mx"
    assert probe.facts["tcp.state"] == "connected"
    assert server.connections == 1


def test_ipv6_only_host_is_looked_up_with_aaaa(options: Callable[..., ProbeOptions]) -> None:
    with refused_port() as port:
        probe = run_probe(options(target="v6only.test", as_host=True, port=port))
    address_step = probe.hosts[0].steps[0]
    assert address_step.name == "address" and "::1" in address_step.summary


# ---------------------------------------------------------------------------------------------
# TCP


def test_refused_port(options: Callable[..., ProbeOptions]) -> None:
    with refused_port() as port:
        probe = run_probe(options(target="ok.test", port=port))
    assert probe.facts["tcp.state"] == "refused"
    assert probe.facts["smtp.remote_host"] == MX
    assert probe.facts["smtp.remote_ip"] == "127.0.0.1"
    assert probe.facts["smtp.remote_port"] == port
    assert steps(probe)["tcp"] is StepStatus.FAIL


@pytest.mark.skipif(sys.platform != "linux", reason="a full accept queue drops SYNs on Linux")
def test_silent_port_times_out(options: Callable[..., ProbeOptions]) -> None:
    with blackhole_port() as port:
        probe = run_probe(options(target="ok.test", port=port))
    assert probe.facts["tcp.state"] == "timeout"
    assert not probe.deadline_reached


@pytest.mark.skipif(sys.platform != "linux", reason="Linux refuses TCP to broadcast addresses locally")
def test_unreachable_address(options: Callable[..., ProbeOptions]) -> None:
    probe = run_probe(options(target="255.255.255.255:25"))
    assert probe.facts["tcp.state"] == "unreachable"
    assert "dns.result" not in probe.facts  # an IP target needs no DNS


def test_host_unreachable_through_the_connector_seam(options: Callable[..., ProbeOptions]) -> None:
    import errno

    def no_route(address: tuple[str, int], timeout: float) -> socket.socket:
        raise OSError(errno.EHOSTUNREACH, "No route to host")

    probe = run_probe(options(target="192.0.2.1:25"), connector=no_route)
    assert probe.facts["tcp.state"] == "unreachable"


# ---------------------------------------------------------------------------------------------
# SMTP dialogue


@pytest.mark.parametrize(
    ("banner", "code", "enhanced", "text"),
    [
        ("421 4.3.2 Service not available, closing channel", 421, "4.3.2", "Service not available, closing channel"),
        ("554 5.7.1 No SMTP service here", 554, "5.7.1", "No SMTP service here"),
        ("554 No SMTP service here", 554, None, "No SMTP service here"),
    ],
)
def test_error_greeting(
    options: Callable[..., ProbeOptions],
    smtp: Callable[[Behaviour], ScriptedSmtpServer],
    banner: str,
    code: int,
    enhanced: str | None,
    text: str,
) -> None:
    server = smtp(Behaviour(banner=banner, close_after_banner=True))
    probe = run_probe(options(target="ok.test", port=server.port))
    facts = probe.facts
    assert facts["smtp.banner_code"] == code
    assert facts["smtp.reply_code"] == code
    assert facts.get("smtp.enhanced") == enhanced
    assert facts["smtp.text"] == text
    assert facts["smtp.stage"] == "banner"
    assert "smtp.starttls_offered" not in facts  # never got as far as EHLO
    assert steps(probe)["banner"] is StepStatus.FAIL


def test_server_that_never_greets(options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer]) -> None:
    server = smtp(Behaviour(banner=None))
    probe = run_probe(options(target="ok.test", port=server.port))
    assert probe.facts["tcp.state"] == "connected"
    assert probe.facts["smtp.timed_out"] is True
    assert probe.facts["smtp.stage"] == "banner"
    assert "smtp.closed_abruptly" not in probe.facts


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize(
    ("drop_at", "stage", "rcpt"),
    [
        ("EHLO", "ehlo", None),
        ("STARTTLS", "starttls", None),
        ("HANDSHAKE", "tls", None),
        ("EHLO-TLS", "ehlo", None),
        ("MAIL", "mail", "user@ok.test"),
        ("RCPT", "rcpt", "user@ok.test"),
    ],
)
def test_server_drops_the_connection_mid_dialogue(
    options: Callable[..., ProbeOptions],
    smtp: Callable[[Behaviour], ScriptedSmtpServer],
    pki: Pki,
    drop_at: str,
    stage: str,
    rcpt: str | None,
    reset: bool,
) -> None:
    server = smtp(Behaviour(tls_context=pki.context(pki.ca.issue_cert(MX)), drop_at=drop_at, reset=reset))
    probe = run_probe(options(target="ok.test", port=server.port, rcpt=rcpt))
    facts = probe.facts
    assert facts["smtp.closed_abruptly"] is True
    assert facts["smtp.stage"] == stage
    if reset and drop_at in ("EHLO", "STARTTLS"):
        assert facts["tcp.state"] == "reset"
    # Under TLS, OpenSSL reports an RST like any unclean close (SSLEOFError): no reset claimed.
    if drop_at in ("EHLO-TLS", "MAIL", "RCPT"):
        assert facts["tcp.state"] == "connected"
    if stage == "tls":
        assert facts["tls.error"] == "handshake-failed"
    assert probe.verdict is Verdict.FAIL


def test_starttls_not_offered_is_a_warning_when_tls_is_optional(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer]
) -> None:
    server = smtp(Behaviour(tls_context=None))
    probe = run_probe(options(target="ok.test", port=server.port))
    assert probe.facts["smtp.starttls_offered"] is False
    assert "tls.error" not in probe.facts
    assert steps(probe)["starttls"] is StepStatus.WARN
    assert probe.verdict is Verdict.WARN
    assert server.commands == ["EHLO probe.test", "QUIT"]


def test_starttls_not_offered_fails_when_tls_is_required(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer]
) -> None:
    server = smtp(Behaviour(tls_context=None))
    probe = run_probe(options(target="ok.test", port=server.port, require_tls=True))
    assert probe.facts["tls.error"] == "required-not-offered"
    assert probe.facts["context.tls_required"] is True
    assert probe.verdict is Verdict.FAIL


@pytest.mark.parametrize("required", [False, True])
def test_starttls_refused_with_454(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki, required: bool
) -> None:
    server = smtp(Behaviour(tls_context=pki.context(pki.ca.issue_cert(MX)), starttls_reply="454 4.7.0 TLS not available due to temporary reason"))
    probe = run_probe(options(target="ok.test", port=server.port, require_tls=required))
    assert probe.facts["smtp.reply_code"] == 454
    assert probe.facts["smtp.enhanced"] == "4.7.0"
    assert probe.facts["smtp.stage"] == "starttls"
    assert probe.facts["smtp.starttls_offered"] is True
    assert probe.verdict is (Verdict.FAIL if required else Verdict.WARN)


def test_ehlo_refused_falls_back_to_helo(options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer]) -> None:
    server = smtp(Behaviour(ehlo_reply="502 5.5.2 EHLO not implemented"))
    probe = run_probe(options(target="ok.test", port=server.port))
    assert steps(probe)["helo"] is StepStatus.WARN
    assert probe.facts["smtp.starttls_offered"] is False
    assert "HELO probe.test" in server.commands


@pytest.mark.parametrize(
    ("behaviour", "stage", "code"),
    [
        (Behaviour(rcpt_reply="550 5.1.1 User unknown"), "rcpt", 550),
        (Behaviour(rcpt_reply="450 4.2.0 Greylisted, try later"), "rcpt", 450),
        (Behaviour(mail_reply="553 5.7.1 Sender rejected"), "mail", 553),
    ],
)
def test_recipient_test_reports_the_rejection_and_never_sends_data(
    options: Callable[..., ProbeOptions],
    smtp: Callable[[Behaviour], ScriptedSmtpServer],
    behaviour: Behaviour,
    stage: str,
    code: int,
) -> None:
    server = smtp(behaviour)
    probe = run_probe(options(target="ok.test", port=server.port, rcpt="nobody@ok.test"))
    assert probe.facts["smtp.reply_code"] == code
    assert probe.facts["smtp.stage"] == stage
    assert server.commands[-1] == "QUIT"
    assert not server.received_data


def test_accepted_recipient_stops_before_data(options: Callable[..., ProbeOptions], pki: Pki) -> None:
    with aiosmtpd_server(pki.context(pki.ca.issue_cert(MX))) as (port, handler):
        probe = run_probe(options(target="ok.test", port=port, rcpt="<someone@ok.test>"))
    assert probe.verdict is Verdict.OK
    assert handler.rcpts == ["someone@ok.test"]
    assert not handler.data_received
    assert [line.text for line in probe.hosts[0].transcript if line.direction in ("->", "~>")][-1] == "QUIT"


def test_the_client_refuses_to_send_data() -> None:
    left, right = socket.socketpair()
    try:
        session = SmtpSession(left, Budget(1, 5), [])
        for command in ("DATA", "data", "BDAT 100 LAST"):
            with pytest.raises(ProbeError, match="never sends a message"):
                session.send(command, "data")
        with pytest.raises(ProbeError, match="line break"):
            session.send("RCPT TO:<a@b>\r\nDATA", "rcpt")
        right.setblocking(False)
        with pytest.raises(BlockingIOError):
            right.recv(100)  # nothing at all reached the wire
    finally:
        left.close()
        right.close()


def test_probe_source_has_no_data_command() -> None:
    """Belt and braces: the only mention of DATA in the probe is the list of refused verbs."""
    for path in (ROOT / "engine" / "mailtriage" / "probe").glob("*.py"):
        for line in path.read_text().splitlines():
            if '"DATA' in line or "'DATA" in line:
                assert "FORBIDDEN_VERBS" in line, f"{path.name}: {line.strip()}"


# ---------------------------------------------------------------------------------------------
# TLS and certificates


def _cert_cases(pki: Pki) -> dict[str, tuple[ssl.SSLContext, str]]:
    ca, other = pki.ca, pki.other_ca
    now = _now()
    day = dt.timedelta(days=1)
    other_child = other.create_child_ca()
    untrusted_root_chain = other_child.issue_cert(MX)
    root_in_chain = [b.bytes() for b in untrusted_root_chain.cert_chain_pems] + [other.cert_pem.bytes()]
    self_cert, self_key = self_signed(MX)
    own = pki.own
    return {
        "valid": (pki.context(ca.issue_cert(MX)), "none"),
        "expired": (pki.context(ca.issue_cert(MX, not_before=now - 30 * day, not_after=now - day)), "certificate-expired"),
        "not-yet-valid": (pki.context(ca.issue_cert(MX, not_before=now + day, not_after=now + 30 * day)), "certificate-not-yet-valid"),
        "wrong-name": (pki.context(ca.issue_cert("other.ok.test")), "name-mismatch"),
        "unknown-ca-chain-sent": (pki.context(other_child.issue_cert(MX)), "untrusted-issuer"),
        "unknown-ca-leaf-only": (pki.context(other.issue_cert(MX)), "untrusted-issuer"),
        "untrusted-root-in-chain": (server_context(root_in_chain, untrusted_root_chain.private_key_pem.bytes(), pki.tmp), "untrusted-issuer"),
        "self-signed": (server_context([self_cert], self_key, pki.tmp), "self-signed"),
        "missing-intermediate": (server_context([own.leaf_pem], own.leaf_key_pem, pki.tmp), "missing-intermediate"),
        "intermediate-sent": (server_context([own.leaf_pem, own.intermediate_pem], own.leaf_key_pem, pki.tmp), "none"),
    }


CERT_CASES = [
    "valid", "expired", "not-yet-valid", "wrong-name", "unknown-ca-chain-sent", "unknown-ca-leaf-only",
    "untrusted-root-in-chain", "self-signed", "missing-intermediate", "intermediate-sent",
]


@pytest.mark.parametrize("case", CERT_CASES)
def test_certificate_verification_reason_and_details(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki, case: str
) -> None:
    context, expected = _cert_cases(pki)[case]
    server = smtp(Behaviour(tls_context=context))
    probe = run_probe(options(target="ok.test", port=server.port))
    facts = probe.facts
    assert facts["tls.error"] == expected
    assert facts["smtp.starttls_offered"] is True
    # The certificate is read even when it does not verify.
    assert facts["tls.cert_issuer"]
    assert dt.datetime.fromisoformat(str(facts["tls.cert_not_after"])).tzinfo is not None
    if expected == "none":
        assert str(facts["tls.version"]).startswith("TLSv1.")
        assert facts["tls.cipher"]
        assert probe.verdict is Verdict.OK
        assert [c for c in server.commands if c.startswith("EHLO")] == ["EHLO probe.test"] * 2
    else:
        assert probe.verdict is Verdict.FAIL
        assert steps(probe)["tls"] is StepStatus.FAIL
        assert not server.received_data
    if case == "expired":
        assert dt.datetime.fromisoformat(str(facts["tls.cert_not_after"])) < _now()


def test_aiosmtpd_with_a_valid_certificate(options: Callable[..., ProbeOptions], pki: Pki) -> None:
    with aiosmtpd_server(pki.context(pki.ca.issue_cert(MX))) as (port, handler):
        probe = run_probe(options(target="ok.test", port=port))
    assert probe.facts["tls.error"] == "none"
    assert probe.facts["smtp.banner_code"] == 220
    assert probe.verdict is Verdict.OK
    assert not handler.data_received


def test_tls_name_is_what_the_certificate_must_match_when_connecting_by_ip(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> None:
    server = smtp(Behaviour(tls_context=pki.context(pki.ca.issue_cert(MX))))
    by_ip = run_probe(options(target=f"127.0.0.1:{server.port}"))
    assert by_ip.facts["tls.error"] == "name-mismatch"
    named = run_probe(options(target=f"127.0.0.1:{server.port}", tls_name=MX))
    assert named.facts["tls.error"] == "none"


def test_without_the_private_ca_the_certificate_is_untrusted(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> None:
    server = smtp(Behaviour(tls_context=pki.context(pki.ca.issue_cert(MX))))
    probe = run_probe(options(target="ok.test", port=server.port, ca_file=None))
    assert probe.facts["tls.error"] == "untrusted-issuer"


# ---------------------------------------------------------------------------------------------
# Several hosts, deadline, interruption


def test_best_host_is_diagnosed_and_every_host_is_reported(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> None:
    good = smtp(Behaviour(tls_context=pki.context(pki.ca.issue_cert("b.multi.test"))))
    greylisting = smtp(Behaviour(banner="421 4.7.0 Try again later", close_after_banner=True))
    with refused_port() as closed:
        ports = {"a.multi.test": closed, "b.multi.test": good.port, "c.multi.test": greylisting.port}
        probe = run_probe(options(target="multi.test", ports=ports))
    assert [host.name for host in probe.hosts] == ["a.multi.test", "b.multi.test", "c.multi.test"]
    assert [host.preference for host in probe.hosts] == [10, 20, 30]
    assert [host.verdict for host in probe.hosts] == [Verdict.FAIL, Verdict.OK, Verdict.FAIL]
    assert probe.chosen_host == "b.multi.test"
    assert probe.facts["tcp.state"] == "connected" and probe.facts["tls.error"] == "none"
    assert probe.hosts[0].facts["tcp.state"] == "refused"
    assert probe.hosts[2].facts["smtp.reply_code"] == 421
    assert probe.verdict is Verdict.OK


def test_when_every_host_fails_the_most_preferred_one_is_diagnosed(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer]
) -> None:
    greylisting = smtp(Behaviour(banner="421 4.7.0 Try again later", close_after_banner=True))
    with refused_port() as closed:
        ports = {"a.multi.test": greylisting.port, "b.multi.test": closed, "c.multi.test": closed}
        probe = run_probe(options(target="multi.test", ports=ports))
    assert probe.chosen_host == "a.multi.test"
    assert probe.facts["smtp.reply_code"] == 421
    assert probe.verdict is Verdict.FAIL


def test_a_warning_host_beats_a_failing_one(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer]
) -> None:
    plain = smtp(Behaviour(tls_context=None))
    with refused_port() as closed:
        ports = {"a.multi.test": closed, "b.multi.test": closed, "c.multi.test": plain.port}
        probe = run_probe(options(target="multi.test", ports=ports))
    assert probe.chosen_host == "c.multi.test"
    assert probe.verdict is Verdict.WARN


@pytest.mark.skipif(sys.platform != "linux", reason="a full accept queue drops SYNs on Linux")
def test_hosts_are_probed_at_the_same_time(options: Callable[..., ProbeOptions]) -> None:
    with blackhole_port() as port:
        started = time.monotonic()
        probe = run_probe(options(target="five.test", port=port, timeout=1.0))
        elapsed = time.monotonic() - started
    assert [host.facts["tcp.state"] for host in probe.hosts] == ["timeout"] * 5
    assert elapsed < 3.0  # one after the other would take at least 5 s


@pytest.mark.skipif(sys.platform != "linux", reason="a full accept queue drops SYNs on Linux")
def test_deadline_stops_the_probe_without_inventing_timeouts(options: Callable[..., ProbeOptions]) -> None:
    with blackhole_port() as port:
        started = time.monotonic()
        probe = run_probe(options(target="five.test", port=port, timeout=10.0, deadline=1.0))
        elapsed = time.monotonic() - started
    assert elapsed < 2.5
    assert probe.deadline_reached
    # The hosts did not time out by their own timeout: no tcp.state is claimed for them.
    assert "tcp.state" not in probe.facts
    assert all(host.steps[-1].status is StepStatus.SKIPPED for host in probe.hosts)
    assert probe.facts["dns.result"] == "noerror"


@pytest.mark.skipif(sys.platform != "linux", reason="a full accept queue drops SYNs on Linux")
def test_ctrl_c_reports_what_was_collected(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> None:
    good = smtp(Behaviour(tls_context=pki.context(pki.ca.issue_cert("a.multi.test"))))
    with blackhole_port() as port:
        ports = {"a.multi.test": good.port, "b.multi.test": port, "c.multi.test": port}
        main = threading.main_thread().ident
        assert main is not None
        timer = threading.Timer(0.6, signal.pthread_kill, args=(main, signal.SIGINT))
        # Ctrl-C as a terminal delivers it, even when the test run itself ignores SIGINT (started
        # in the background with nohup or `&`).
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        timer.start()
        started = time.monotonic()
        try:
            probe = run_probe(options(target="multi.test", ports=ports, timeout=10.0, deadline=20.0))
        finally:
            timer.cancel()
            signal.signal(signal.SIGINT, previous)
        elapsed = time.monotonic() - started
    assert probe.interrupted
    assert elapsed < 3.0
    assert probe.chosen_host == "a.multi.test"
    assert probe.hosts[0].finished and probe.hosts[0].verdict is Verdict.OK
    assert probe.facts["tls.error"] == "none"
    for host in probe.hosts[1:]:
        assert not host.finished
        assert "tcp.state" not in host.facts
        assert (host.steps[-1].name, host.steps[-1].summary) == ("stopped", "interrupted (during tcp)")


# ---------------------------------------------------------------------------------------------
# The six connector errors of the source article, reproduced with --smart-host


@dataclass
class Scenario:
    code: str
    rule: str
    smart_host: str
    expected: dict[str, Any]
    behaviour: Behaviour | None = None
    port: str = "server"  # "server" | "refused" | "blackhole"
    require_tls: bool = False
    cert: str | None = None  # a key of _cert_cases


SCENARIOS = {
    "4.4.312-servfail": Scenario("4.4.312", "exo-connector-dns-query-failed", "broken.ok.test", {"dns.result": "servfail", "dns.query_name": "broken.ok.test"}, port="refused"),
    "4.4.312-nxdomain": Scenario("4.4.312", "exo-connector-dns-query-failed", "nosuch.ok.test", {"dns.result": "nxdomain", "dns.query_name": "nosuch.ok.test"}, port="refused"),
    "4.4.315-timeout": Scenario("4.4.315", "exo-connector-connection-timed-out", MX, {"tcp.state": "timeout"}, port="blackhole"),
    "4.4.316-refused": Scenario("4.4.316", "exo-connector-connection-refused", MX, {"tcp.state": "refused"}, port="refused"),
    "4.4.317-421": Scenario("4.4.317", "exo-connector-immediate-error", MX, {"smtp.banner_code": 421, "smtp.reply_code": 421, "smtp.stage": "banner"}, Behaviour(banner="421 4.3.2 Service not available", close_after_banner=True)),
    "4.4.317-554": Scenario("4.4.317", "exo-connector-immediate-error", MX, {"smtp.banner_code": 554, "smtp.reply_code": 554, "smtp.stage": "banner"}, Behaviour(banner="554 5.3.2 Service not available", close_after_banner=True)),
    "4.4.317-no-starttls": Scenario("4.4.317", "exo-connector-immediate-error", MX, {"smtp.starttls_offered": False, "tls.error": "required-not-offered", "context.tls_required": True}, Behaviour(), require_tls=True),
    "4.4.317-missing-intermediate": Scenario("4.4.317", "exo-connector-immediate-error", MX, {"tls.error": "missing-intermediate", "context.tls_required": True}, Behaviour(), require_tls=True, cert="missing-intermediate"),
    "4.4.318-fin": Scenario("4.4.318", "exo-connector-closed-abruptly", MX, {"smtp.closed_abruptly": True, "smtp.stage": "ehlo"}, Behaviour(drop_at="EHLO")),
    "4.4.318-rst": Scenario("4.4.318", "exo-connector-closed-abruptly", MX, {"smtp.closed_abruptly": True, "smtp.stage": "ehlo", "tcp.state": "reset"}, Behaviour(drop_at="EHLO", reset=True)),
    "4.7.320-expired": Scenario("4.7.320", "exo-connector-certificate-validation-failed", MX, {"tls.error": "certificate-expired", "context.tls_required": True}, Behaviour(), require_tls=True, cert="expired"),
    "4.7.320-wrong-name": Scenario("4.7.320", "exo-connector-certificate-validation-failed", MX, {"tls.error": "name-mismatch", "context.tls_required": True}, Behaviour(), require_tls=True, cert="wrong-name"),
}


def _run_scenario(
    scenario: Scenario, options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> ProbeResult:
    if scenario.port == "refused":
        with refused_port() as port:
            return run_probe(options(smart_host=f"{scenario.smart_host}:{port}", require_tls=scenario.require_tls))
    if scenario.port == "blackhole":
        with blackhole_port() as port:
            return run_probe(options(smart_host=f"{scenario.smart_host}:{port}", require_tls=scenario.require_tls))
    assert scenario.behaviour is not None
    behaviour = scenario.behaviour
    if scenario.cert is not None:
        behaviour = Behaviour(tls_context=_cert_cases(pki)[scenario.cert][0])
    server = smtp(behaviour)
    return run_probe(options(smart_host=f"{scenario.smart_host}:{server.port}", require_tls=scenario.require_tls))


@pytest.mark.parametrize("name", SCENARIOS)
def test_connector_scenario_facts(
    name: str, options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> None:
    scenario = SCENARIOS[name]
    if scenario.port == "blackhole" and sys.platform != "linux":
        pytest.skip("a full accept queue drops SYNs on Linux")
    probe = _run_scenario(scenario, options, smtp, pki)
    assert probe.mode == "smart-host"
    assert probe.facts["context.direction"] == "outbound-connector"
    assert probe.facts["context.smart_host"] is True
    for field, value in scenario.expected.items():
        assert probe.facts.get(field) == value, f"{field}: {probe.facts}"
    assert probe.verdict is Verdict.FAIL
    assert normalize_facts(probe.facts) == probe.facts  # only vocabulary fields, correctly typed


@pytest.fixture(scope="module")
def engine() -> Any:
    from mailtriage.engine import Engine

    return Engine.load()


@pytest.mark.parametrize("name", SCENARIOS)
def test_connector_scenario_diagnosis(
    name: str, engine: Any, options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> None:
    scenario = SCENARIOS[name]
    if scenario.rule not in engine.rules:
        pytest.skip(f"rule {scenario.rule} is not in the knowledge base yet")
    if scenario.port == "blackhole" and sys.platform != "linux":
        pytest.skip("a full accept queue drops SYNs on Linux")
    probe = _run_scenario(scenario, options, smtp, pki)
    diagnosis = engine.diagnose(probe.facts)
    assert diagnosis.matches, f"nothing matched {probe.facts}"
    assert diagnosis.matches[0].rule.id == scenario.rule, f"facts {probe.facts}"


# ---------------------------------------------------------------------------------------------
# The same failures on a plain probe: a direct delivery to the internet, diagnosed by the
# transport rules for any sender (the connector rules step aside)


@dataclass
class PlainScenario:
    rule: str
    expected: dict[str, Any]
    target: str = "ok.test"  # "{port}" is replaced by the server's port
    behaviour: Behaviour | None = None
    port: str = "server"  # "server" | "refused" | "blackhole" | "none"
    cert: str | None = None  # a key of _cert_cases
    require_tls: bool = False
    tls_name: str | None = None


PLAIN_SCENARIOS = {
    "refused": PlainScenario("common-tcp-connection-refused", {"tcp.state": "refused"}, port="refused"),
    "connect-timeout": PlainScenario("common-tcp-connection-timed-out", {"tcp.state": "timeout"}, port="blackhole"),
    "unreachable": PlainScenario("common-tcp-network-unreachable", {"tcp.state": "unreachable"}, target="255.255.255.255:25", port="none"),
    "closed-fin": PlainScenario("common-connection-closed-abruptly", {"smtp.closed_abruptly": True, "smtp.stage": "ehlo"}, behaviour=Behaviour(drop_at="EHLO")),
    "closed-rst": PlainScenario("common-connection-closed-abruptly", {"tcp.state": "reset"}, behaviour=Behaviour(drop_at="EHLO", reset=True)),
    "silent-greeting": PlainScenario("common-smtp-dialogue-timed-out", {"tcp.state": "connected", "smtp.timed_out": True, "smtp.stage": "banner"}, behaviour=Behaviour(banner=None)),
    "421-banner": PlainScenario("common-greeting-rejected", {"smtp.banner_code": 421, "smtp.stage": "banner"}, behaviour=Behaviour(banner="421 4.3.2 Service not available, closing channel", close_after_banner=True)),
    "554-banner": PlainScenario("common-greeting-rejected", {"smtp.banner_code": 554, "smtp.stage": "banner"}, behaviour=Behaviour(banner="554 No SMTP service here", close_after_banner=True)),
    "no-starttls-required": PlainScenario("common-tls-required-not-offered", {"tls.error": "required-not-offered", "context.tls_required": True}, behaviour=Behaviour(), require_tls=True),
    "expired": PlainScenario("common-tls-certificate-expired", {"tls.error": "certificate-expired"}, cert="expired"),
    "not-yet-valid": PlainScenario("common-tls-certificate-expired", {"tls.error": "certificate-not-yet-valid"}, cert="not-yet-valid"),
    "wrong-name": PlainScenario("common-tls-certificate-name-mismatch", {"tls.error": "name-mismatch"}, cert="wrong-name"),
    "wrong-name-by-ip": PlainScenario("common-tls-certificate-name-mismatch", {"tls.error": "name-mismatch"}, target="127.0.0.1:{port}", cert="wrong-name", tls_name=MX),
    "self-signed": PlainScenario("common-tls-certificate-untrusted", {"tls.error": "self-signed"}, cert="self-signed"),
    "missing-intermediate": PlainScenario("common-tls-certificate-untrusted", {"tls.error": "missing-intermediate"}, cert="missing-intermediate"),
    "handshake-cut": PlainScenario("common-tls-handshake-failed", {"tls.error": "handshake-failed", "smtp.stage": "tls"}, behaviour=Behaviour(tls_context=None, drop_at="HANDSHAKE")),
    "servfail": PlainScenario("common-dns-lookup-failed", {"dns.result": "servfail"}, target="servfail.test", port="none"),
    "mx-host-servfail": PlainScenario("common-dns-lookup-failed", {"dns.result": "servfail"}, target="mxservfail.test", port="none"),
    "dns-timeout": PlainScenario("common-dns-lookup-failed", {"dns.result": "timeout"}, target="silent.test", port="none"),
    "no-address": PlainScenario("common-dns-no-mail-host", {"dns.result": "no-address"}, target="noaddr.test", port="none"),
    "null-mx": PlainScenario("common-dns-null-mx", {"dns.result": "null-mx"}, target="nullmx.test", port="none"),
    "nxdomain": PlainScenario("common-recipient-domain-not-found", {"dns.result": "nxdomain"}, target="missing.test", port="none"),
}


def _run_plain(
    scenario: PlainScenario, options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> ProbeResult:
    def run(port: int | None) -> ProbeResult:
        target = scenario.target.replace("{port}", str(port))
        extra: dict[str, Any] = {"port": port} if port is not None and "{port}" not in scenario.target else {}
        return run_probe(options(target=target, require_tls=scenario.require_tls, tls_name=scenario.tls_name, **extra))

    if scenario.port == "none":
        return run(None)
    if scenario.port == "refused":
        with refused_port() as port:
            return run(port)
    if scenario.port == "blackhole":
        with blackhole_port() as port:
            return run(port)
    behaviour = scenario.behaviour
    if scenario.cert is not None:
        behaviour = Behaviour(tls_context=_cert_cases(pki)[scenario.cert][0])
    elif behaviour is not None and behaviour.drop_at == "HANDSHAKE":
        behaviour = Behaviour(tls_context=pki.context(pki.ca.issue_cert(MX)), drop_at="HANDSHAKE")
    assert behaviour is not None
    return run(smtp(behaviour).port)


def _skip_if_not_linux(scenario: PlainScenario) -> None:
    if (scenario.port == "blackhole" or scenario.target.startswith("255.")) and sys.platform != "linux":
        pytest.skip("needs Linux's loopback behaviour")


@pytest.mark.parametrize("name", PLAIN_SCENARIOS)
def test_plain_probe_is_a_direct_delivery_and_gets_a_transport_rule(
    name: str, engine: Any, options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> None:
    scenario = PLAIN_SCENARIOS[name]
    _skip_if_not_linux(scenario)
    probe = _run_plain(scenario, options, smtp, pki)
    facts = probe.facts
    assert facts["context.system"] == "mailtriage-probe"
    assert facts["context.direction"] == "outbound-internet"
    assert "context.smart_host" not in facts
    assert {fact.field for fact in probe.inferred} >= {"context.system", "context.direction"}
    assert all(facts[fact.field] == fact.value and fact.evidence for fact in probe.inferred)
    for field, value in scenario.expected.items():
        assert facts.get(field) == value, f"{field}: {facts}"
    assert probe.verdict is Verdict.FAIL
    diagnosis = engine.diagnose(facts)
    assert diagnosis.matches, f"nothing matched {facts}"
    top = diagnosis.matches[0]
    assert top.rule.id == scenario.rule, f"{[m.rule.id for m in diagnosis.matches]} for {facts}"
    assert top.rule.kind.value == "specific"
    # No connector rule among the answers of a direct delivery.
    assert not [m.rule.id for m in diagnosis.matches if m.rule.id.startswith("exo-connector-")]


# The plain scenarios that have a connector twin: with --smart-host the connector rule answers.
PLAIN_TO_CONNECTOR = {
    "refused": "4.4.316-refused",
    "connect-timeout": "4.4.315-timeout",
    "closed-fin": "4.4.318-fin",
    "closed-rst": "4.4.318-rst",
    "421-banner": "4.4.317-421",
    "no-starttls-required": "4.4.317-no-starttls",
    "expired": "4.7.320-expired",
    "wrong-name": "4.7.320-wrong-name",
    "servfail": "4.4.312-servfail",
}


@pytest.mark.parametrize("name", PLAIN_TO_CONNECTOR)
def test_the_same_failure_through_a_smart_host_stays_with_the_connector_rule(
    name: str, engine: Any, options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> None:
    connector = SCENARIOS[PLAIN_TO_CONNECTOR[name]]
    if connector.port == "blackhole" and sys.platform != "linux":
        pytest.skip("a full accept queue drops SYNs on Linux")
    probe = _run_scenario(connector, options, smtp, pki)
    assert [(f.field, f.value) for f in probe.inferred if f.field.startswith("context.")][:3] == [
        ("context.system", "mailtriage-probe"),
        ("context.direction", "outbound-connector"),
        ("context.smart_host", True),
    ]
    ranked = [m.rule.id for m in engine.diagnose(probe.facts).matches]
    assert ranked[0] == connector.rule
    assert PLAIN_SCENARIOS[name].rule not in ranked  # the transport rule steps aside


# ---------------------------------------------------------------------------------------------
# Parsers (fuzzed) and the result shape


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_reply_reader_never_crashes_on_any_bytes(data: bytes) -> None:
    left, right = socket.socketpair()
    try:
        right.sendall(data)
        right.shutdown(socket.SHUT_WR)
        session = SmtpSession(left, Budget(0.5, 5), [])
        try:
            reply = session.read_reply("banner")
        except DialogueError as exc:
            assert exc.stage == "banner"
        else:
            assert 0 <= reply.code <= 999 and reply.lines
    finally:
        left.close()
        right.close()


@pytest.mark.parametrize(
    ("text", "name", "port"),
    [
        ("mx.example.com", "mx.example.com", None),
        ("mx.example.com.", "mx.example.com", None),
        ("mx.example.com:2525", "mx.example.com", 2525),
        ("192.0.2.1", "192.0.2.1", None),
        ("192.0.2.1:587", "192.0.2.1", 587),
        ("2001:db8::1", "2001:db8::1", None),
        ("[2001:db8::1]:25", "2001:db8::1", 25),
    ],
)
def test_endpoint_forms(text: str, name: str, port: int | None) -> None:
    endpoint = parse_endpoint(text, "TARGET")
    assert (endpoint.name, endpoint.port) == (name, port)


@pytest.mark.parametrize("text", ["", "mx.example.com:0", "mx.example.com:99999", "mx.example.com:x", "[2001:db8::1", "a b.com", "user@example.com", "a..b"])
def test_bad_endpoints_are_rejected(text: str) -> None:
    with pytest.raises(ProbeError):
        parse_endpoint(text, "TARGET")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_endpoint_parser_accepts_or_rejects_cleanly(text: str) -> None:
    try:
        endpoint = parse_endpoint(text, "TARGET")
    except ProbeError:
        return
    assert endpoint.name and (endpoint.port is None or 0 < endpoint.port < 65536)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"target": None}, "nothing to probe"),
        ({"timeout": 0}, "--timeout"),
        ({"deadline": -1}, "--deadline"),
        ({"rcpt": "not an address"}, "--rcpt"),
        ({"rcpt": "a@b\r\nDATA"}, "--rcpt"),
        ({"ca_file": "/nonexistent/ca.pem"}, "--ca-file"),
        ({"nameserver": "dns.example"}, "--nameserver"),
        ({"tls_name": "bad name"}, "--tls-name"),
    ],
)
def test_bad_options_are_probe_errors(options: Callable[..., ProbeOptions], overrides: dict[str, Any], message: str) -> None:
    values = {"target": "ok.test", **overrides}
    with pytest.raises(ProbeError, match=message):
        run_probe(options(**values))


def test_result_is_json_serialisable_and_names_every_step(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], pki: Pki
) -> None:
    server = smtp(Behaviour(tls_context=pki.context(pki.ca.issue_cert(MX))))
    data = json.loads(json.dumps(run_probe(options(target="ok.test", port=server.port)).to_dict()))
    assert data["target"] == "ok.test"
    assert [entry["role"] for entry in data["steps"]] == ["domain", "mx"]
    assert [s["step"] for s in data["steps"][1]["steps"]] == ["address", "tcp", "banner", "ehlo", "starttls", "tls", "ehlo-tls", "quit"]
    assert all(s["elapsed_ms"] >= 0 for s in data["steps"][1]["steps"])
    assert data["steps"][1]["transcript"][0] == {"at_ms": data["steps"][1]["transcript"][0]["at_ms"], "dir": "<-", "text": "220 mx.test ESMTP scripted"}


# ---------------------------------------------------------------------------------------------
# The command


def _cli(args: list[str]) -> Any:
    from mailtriage.cli import cli

    return CliRunner().invoke(cli, ["probe", *args])


def test_cli_json_for_a_refused_smart_host(dns_port: int) -> None:
    with refused_port() as port:
        result = _cli(["--smart-host", f"{MX}:{port}", "--nameserver", f"127.0.0.1:{dns_port}", "--timeout", "0.5", "--format", "json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert set(data) >= {"target", "facts", "steps", "diagnosis"}
    assert data["facts"]["tcp.state"] == "refused"
    assert data["diagnosis"]["matches"][0]["rule"] == "exo-connector-connection-refused"
    assert set(data["diagnosis"]) >= {"facts", "matches", "next_checks"}


def test_cli_json_for_a_refused_plain_probe_says_what_it_inferred(dns_port: int) -> None:
    with refused_port() as port:
        result = _cli([MX, "--host", "--port", str(port), "--nameserver", f"127.0.0.1:{dns_port}", "--timeout", "0.5", "--format", "json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["facts"]["context.direction"] == "outbound-internet"
    inferred = {entry["field"]: entry for entry in data["inferred"]}
    assert inferred["context.direction"]["value"] == "outbound-internet"
    assert inferred["context.system"]["value"] == "mailtriage-probe"
    assert all(entry["evidence"] for entry in data["inferred"])
    assert data["diagnosis"]["matches"][0]["rule"] == "common-tcp-connection-refused"


def test_cli_text_output_names_the_inferred_context(dns_port: int) -> None:
    with refused_port() as port:
        result = _cli(["ok.test", "--port", str(port), "--nameserver", f"127.0.0.1:{dns_port}", "--timeout", "0.5"])
    assert result.exit_code == 1, result.output
    assert "context.direction = outbound-internet (inferred: plain probe of a domain" in " ".join(result.output.split())


def test_cli_text_output_with_transcript(dns_port: int, pki: Pki, smtp: Callable[[Behaviour], ScriptedSmtpServer]) -> None:
    server = smtp(Behaviour(tls_context=pki.context(pki.ca.issue_cert(MX))))
    result = _cli(["ok.test", "--port", str(server.port), "--nameserver", f"127.0.0.1:{dns_port}", "--timeout", "0.5", "--ca-file", str(pki.ca_file), "-v"])
    assert result.exit_code == 0, result.output
    for expected in ("Probe of ok.test", "starttls", "Transcript of mx.ok.test", "-> EHLO", "~> QUIT", "tls.error = none"):
        assert expected in result.output


@pytest.mark.parametrize(
    "args",
    [[], ["ok.test", "--rcpt", "nope"], ["ok.test", "--nameserver", "not-an-ip"], ["bad target!"], ["ok.test", "--timeout", "0"]],
)
def test_cli_bad_usage_exits_2_without_a_traceback(args: list[str]) -> None:
    result = _cli(args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_cli_as_a_process(dns_port: int) -> None:
    with refused_port() as port:
        completed = subprocess.run(
            [sys.executable, "-m", "mailtriage", "probe", f"127.0.0.1:{port}", "--timeout", "0.5", "--format", "json"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "engine")},
            timeout=60,
        )
    assert completed.returncode == 1, completed.stderr
    assert json.loads(completed.stdout)["facts"]["tcp.state"] == "refused"


@pytest.mark.parametrize(
    ("code", "lines", "enhanced", "text"),
    [
        (421, ("4.3.2 Service not available",), "4.3.2", "Service not available"),
        (554, ("mx.example.com ESMTP not accepting mail",), None, "mx.example.com ESMTP not accepting mail"),
        (550, ("4.4.7 class digit disagrees",), None, "4.4.7 class digit disagrees"),
        (250, ("mx.example.com", "PIPELINING", "STARTTLS"), None, "mx.example.com PIPELINING STARTTLS"),
        (451, ("4.7.1 Greylisted,", "4.7.1 try again later"), "4.7.1", "Greylisted, try again later"),
        (220, ("",), None, ""),
    ],
)
def test_reply_codes_and_text(code: int, lines: tuple[str, ...], enhanced: str | None, text: str) -> None:
    from mailtriage.probe.smtp import Reply

    reply = Reply(code, lines)
    assert (reply.enhanced, reply.text) == (enhanced, text)


# ---------------------------------------------------------------------------------------------
# Step deadlines and out-of-range codes (issue 17, item 9)


def test_a_trickled_banner_times_out_at_the_step_timeout(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], engine: Any
) -> None:
    """One byte every 0.1 s never lets a single recv wait 0.5 s; the whole reply must still
    arrive within the step timeout, so this is a timeout well before the 5 s deadline."""
    server = smtp(Behaviour(trickle=0.1, banner="220 " + "x" * 200))
    started = time.monotonic()
    probe = run_probe(options(target="ok.test", port=server.port))
    assert time.monotonic() - started < 4
    assert probe.facts["smtp.timed_out"] is True
    assert probe.facts["smtp.stage"] == "banner"
    assert not probe.deadline_reached  # a step failure with its facts, not a cut-short probe
    engine.diagnose(probe.facts)


@pytest.mark.parametrize("banner", ["999 what", "000 nothing", "600 too high", "260 bad second digit"])
def test_out_of_range_reply_code_is_a_protocol_error_in_the_report(
    options: Callable[..., ProbeOptions], smtp: Callable[[Behaviour], ScriptedSmtpServer], banner: str, engine: Any
) -> None:
    server = smtp(Behaviour(banner=banner))
    probe = run_probe(options(target="ok.test", port=server.port))
    banner_step = next(step for step in probe.hosts[0].steps if step.name == "banner")
    assert banner_step.status is StepStatus.FAIL and "protocol error" in banner_step.summary
    assert "smtp.banner_code" not in probe.facts and "smtp.reply_code" not in probe.facts
    assert probe.facts["tcp.state"] == "connected"
    engine.diagnose(probe.facts)  # the facts are valid: the report goes on to a diagnosis


@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
def test_non_finite_deadline_is_a_usage_error(value: str) -> None:
    from click.testing import CliRunner

    from mailtriage.cli import cli

    result = CliRunner().invoke(cli, ["probe", "ok.test", "--deadline", value])
    assert result.exit_code == 2 and "Traceback" not in result.output
