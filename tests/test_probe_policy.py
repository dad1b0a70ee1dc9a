"""The probe as a network tool: a policy refuses address classes and ports after resolution (and
the probe connects to the very address it checked); EHLO/RCPT refuse every control character."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from mailtriage.cli import cli
from mailtriage.errors import ProbeError
from mailtriage.probe import AddressClass, ProbeOptions, ProbePolicy, StepStatus, run_probe
from mailtriage.probe.policy import classify
from probe_servers import Behaviour, ScriptedSmtpServer, dns_server


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    with dns_server() as (zone, port):
        zone.add(
            "local.policy.test. 60 IN A 127.0.0.1",
            "policy.test. 60 IN MX 10 local.policy.test.",
            "meta.policy.test. 60 IN A 169.254.169.254",
        )
        yield port


@pytest.fixture
def server() -> Iterator[ScriptedSmtpServer]:
    smtp = ScriptedSmtpServer(Behaviour())
    yield smtp
    smtp.stop()
    assert not smtp.received_data


def options(dns_port: int, **values: object) -> ProbeOptions:
    base: dict[str, object] = {"nameserver": f"127.0.0.1:{dns_port}", "timeout": 3.0, "deadline": 8.0, "ehlo_name": "probe.test",
                               "trust_system_cas": False}
    base.update(values)
    return ProbeOptions(**base)  # type: ignore[arg-type]


NO_LOOPBACK = ProbePolicy.public_only(ports=None)


@pytest.mark.parametrize(
    "target",
    [
        {"target": "127.0.0.1", "as_host": True},  # an address given directly
        {"target": "local.policy.test", "as_host": True},  # a name the test DNS server resolves to 127.0.0.1
        {"target": "policy.test"},  # a domain whose MX resolves to 127.0.0.1
        {"smart_host": "local.policy.test"},
    ],
)
def test_a_policy_refusing_loopback_never_connects(dns_port: int, server: ScriptedSmtpServer, target: dict[str, object]) -> None:
    result = run_probe(options(dns_port, port=server.port, **target), policy=NO_LOOPBACK)
    assert server.connections == 0
    host = result.hosts[0]
    tcp = [step for step in host.steps if step.name == "tcp"]
    assert tcp and all(step.status is StepStatus.SKIPPED for step in tcp)
    assert "loopback" in tcp[0].summary and "127.0.0.1" in tcp[0].summary
    assert "tcp.state" not in result.facts and "smtp.reply_code" not in result.facts


def test_the_default_policy_still_probes(dns_port: int, server: ScriptedSmtpServer) -> None:
    result = run_probe(options(dns_port, target="local.policy.test", as_host=True, port=server.port))
    assert server.connections == 1
    assert result.facts["tcp.state"] == "connected" and result.facts["smtp.banner_code"] == 220


def test_the_probe_connects_to_the_address_it_checked(dns_port: int, server: ScriptedSmtpServer) -> None:
    """No second lookup: the connector is handed the resolved IP, never the name."""
    seen: list[tuple[str, int]] = []

    def connector(address: tuple[str, int], timeout: float) -> socket.socket:
        seen.append(address)
        return socket.create_connection(address, timeout=timeout)

    allow_loopback = ProbePolicy(frozenset({AddressClass.LOOPBACK}), frozenset({server.port}))
    result = run_probe(options(dns_port, target="local.policy.test", as_host=True, port=server.port), connector, allow_loopback)
    assert seen == [("127.0.0.1", server.port)]
    assert result.facts["tcp.state"] == "connected"


def test_a_port_outside_the_policy_is_refused(dns_port: int, server: ScriptedSmtpServer) -> None:
    policy = ProbePolicy(frozenset(AddressClass), frozenset({25}))
    result = run_probe(options(dns_port, target="127.0.0.1", as_host=True, port=server.port), policy=policy)
    assert server.connections == 0
    assert f"port {server.port} is not allowed" in result.hosts[0].steps[-1].summary


def test_metadata_address_is_refused(dns_port: int) -> None:
    result = run_probe(options(dns_port, target="meta.policy.test", as_host=True, port=25), policy=ProbePolicy.public_only())
    assert "metadata" in result.hosts[0].steps[-1].summary


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", AddressClass.LOOPBACK),
        ("127.8.9.10", AddressClass.LOOPBACK),
        ("::1", AddressClass.LOOPBACK),
        ("::ffff:127.0.0.1", AddressClass.LOOPBACK),  # IPv4-mapped
        ("64:ff9b::7f00:1", AddressClass.LOOPBACK),  # NAT64
        ("2002:7f00:1::1", AddressClass.LOOPBACK),  # 6to4
        ("169.254.169.254", AddressClass.METADATA),
        ("fd00:ec2::254", AddressClass.METADATA),
        ("169.254.1.1", AddressClass.LINK_LOCAL),
        ("fe80::1", AddressClass.LINK_LOCAL),
        ("10.1.2.3", AddressClass.PRIVATE),
        ("172.16.0.1", AddressClass.PRIVATE),
        ("192.168.1.1", AddressClass.PRIVATE),
        ("100.64.0.1", AddressClass.PRIVATE),
        ("fd12:3456::1", AddressClass.PRIVATE),
        ("0.0.0.0", AddressClass.RESERVED),
        ("224.0.0.1", AddressClass.RESERVED),
        ("255.255.255.255", AddressClass.RESERVED),
        ("8.8.8.8", AddressClass.PUBLIC),
        ("2001:4860:4860::8888", AddressClass.PUBLIC),
    ],
)
def test_address_classes(address: str, kind: AddressClass) -> None:
    assert classify(address) is kind
    assert (ProbePolicy.public_only().refusal(address, 25) is None) == (kind is AddressClass.PUBLIC)


CONTROLS = ["\x1b[2J", "\x00", "\x7f", "\x85", "\u2028", "\u202e", "\t", "\x0b", "\r", "\n"]


@pytest.mark.parametrize("control", CONTROLS)
def test_ehlo_and_rcpt_refuse_every_control_character(dns_port: int, control: str) -> None:
    with pytest.raises(ProbeError):
        run_probe(options(dns_port, target="127.0.0.1", as_host=True, ehlo_name=f"probe{control}.test"))
    with pytest.raises(ProbeError):
        run_probe(options(dns_port, target="127.0.0.1", as_host=True, rcpt=f"bob{control}@example.com"))
    for flag, value in (("--ehlo", f"probe{control}.test"), ("--rcpt", f"bob{control}@example.com")):
        result = CliRunner().invoke(cli, ["probe", "--host", "127.0.0.1", flag, value, "--nameserver", f"127.0.0.1:{dns_port}"])
        assert result.exit_code == 2, result.output


@pytest.mark.parametrize("name", ["mail.example.com", "[192.0.2.1]", "[IPv6:2001:db8::1]", "localhost"])
def test_ordinary_ehlo_names_are_accepted(dns_port: int, server: ScriptedSmtpServer, name: str) -> None:
    result = run_probe(options(dns_port, target="127.0.0.1", as_host=True, port=server.port, ehlo_name=name))
    assert f"EHLO {name}" in server.commands
    assert result.facts["smtp.banner_code"] == 220


def test_cli_public_only_refuses_loopback(dns_port: int, server: ScriptedSmtpServer) -> None:
    args = ["probe", "--host", "local.policy.test", "--port", "25", "--nameserver", f"127.0.0.1:{dns_port}", "--ehlo", "probe.test"]
    result = CliRunner().invoke(cli, [*args, "--public-only", "--format", "json"])
    assert "loopback address, which this probe's policy does not allow" in result.output
    assert server.connections == 0
