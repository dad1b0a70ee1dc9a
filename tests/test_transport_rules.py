"""Transport failures for any sender: pasted Postfix/Exim/Exchange texts and fact sets get the
rule for the phenomenon (TCP, DNS, greeting, TLS), the MTA's own rule when the reporter is known
to have one, and the connector rules whenever the delivery went through a connector."""

from __future__ import annotations

from typing import Any

import pytest

from mailtriage import Engine
from mailtriage.triage import diagnose_text

# (pasted text as it appears in logs and bounces, the reporter the reader names or None, top rule)
PASTED = [
    # Postfix status texts, pasted without saying who reported them.
    ("connect to mx.example.com[192.0.2.7]:25: Connection refused", None, "common-tcp-connection-refused"),
    ("status=deferred (connect to mx.example.com[192.0.2.7]:25: Connection timed out)", None, "common-tcp-connection-timed-out"),
    ("connect to mx.example.com[2001:db8::25]:25: Network is unreachable", None, "common-tcp-network-unreachable"),
    ("connect to mx.example.com[192.0.2.7]:25: No route to host", None, "common-tcp-network-unreachable"),
    ("lost connection with mx.example.com[192.0.2.7] while receiving the initial server greeting", None, "common-connection-closed-abruptly"),
    ("host mx.example.com[192.0.2.7] refused to talk to me: 421 4.3.2 Service not available, closing transmission channel", None, "common-greeting-rejected"),
    ("host mx.example.com[192.0.2.7] refused to talk to me: 554 5.3.2 mx.example.com ESMTP not accepting messages", None, "common-greeting-rejected"),
    ("Host or domain name not found. Name service error for name=example.com type=MX: Host not found, try again", None, "common-dns-lookup-failed"),
    ("Host or domain name not found. Name service error for name=mx.example.com type=A: Host found but no data record of type A", None, "common-dns-no-mail-host"),
    ("Host or domain name not found. Name service error for name=example.invalid type=MX: Host not found", None, "common-recipient-domain-not-found"),
    ("Domain example.com does not accept mail (nullMX)", None, "common-dns-null-mx"),
    ("TLS is required, but was not offered by host mx.example.com[192.0.2.7]", None, "common-tls-required-not-offered"),
    ("Cannot start TLS: handshake failure", None, "common-tls-handshake-failed"),
    ("conversation with mx.example.com[192.0.2.7] timed out while receiving the initial server greeting", None, "common-smtp-dialogue-timed-out"),
    # Exim's bounce and log wording.
    ("SMTP timeout after initial connection: Connection timed out", None, "common-smtp-dialogue-timed-out"),
    ("SMTP error from remote mail server after initial connection: 554 5.7.1 Access denied", None, "common-greeting-rejected"),
    ("a TLS session is required, but the server did not offer TLS support", None, "common-tls-required-not-offered"),
    ("Remote host closed connection in response to initial connection", None, "common-connection-closed-abruptly"),
    ("TLS session: (SSL_connect): error:0A000086:SSL routines::certificate verify failed: certificate has expired", None, "common-tls-certificate-expired"),
    ("TLS session: (SSL_connect): error:0A00010B:SSL routines::wrong version number", None, "common-tls-handshake-failed"),
    ("Connection reset by peer", None, "common-connection-closed-abruptly"),
    # Exim's log lines name Exim (intake says so), and Exim has no rule of its own for these.
    ("2024-05-01 10:00:00 1sABCD-000123-EF == a@b.example R=dnslookup T=remote_smtp defer (111): Connection refused", None, "common-tcp-connection-refused"),
    ("2024-05-01 10:00:00 1sABCD-000123-EF == a@b.example R=dnslookup T=remote_smtp defer (110): Connection timed out", None, "common-tcp-connection-timed-out"),
    ("2024-05-01 10:00:00 1sABCD-000123-EF == a@b.example R=dnslookup T=remote_smtp defer (113): No route to host", None, "common-tcp-network-unreachable"),
    ("2024-05-01 10:00:00 1sABCD-000123-EF == a@b.example R=dnslookup T=remote_smtp defer (104): Connection reset by peer", None, "common-connection-closed-abruptly"),
    # Postfix named (by the reader or by the log line): its own rules where it has one...
    ("connect to mx.example.com[192.0.2.7]:25: Connection refused", "postfix", "postfix-connect-failed"),
    ("connect to mx.example.com[192.0.2.7]:25: Connection timed out", "postfix", "postfix-connect-failed"),
    ("lost connection with mx.example.com[192.0.2.7] while receiving the initial server greeting", "postfix", "postfix-lost-connection"),
    ("Host or domain name not found. Name service error for name=example.com type=MX: Host not found, try again", "postfix", "postfix-host-not-found"),
    ("TLS is required, but was not offered by host mx.example.com[192.0.2.7]", "postfix", "postfix-tls-required-not-offered"),
    ("Cannot start TLS: handshake failure", "postfix", "postfix-tls-failed"),
    ("Domain example.com does not accept mail (nullMX)", "postfix", "postfix-null-mx"),
    (
        "Dec  3 10:00:00 relay postfix/smtp[123]: ABC123: to=<a@b.example>, relay=none, delay=30, delays=0/0/30/0, dsn=4.4.1, "
        "status=deferred (connect to mx.b.example[192.0.2.1]:25: Connection refused)",
        None,
        "postfix-connect-failed",
    ),
    # ... and the transport rule where it has none (an error greeting).
    ("host mx.example.com[192.0.2.7] refused to talk to me: 421 4.3.2 Service not available, closing transmission channel", "postfix", "common-greeting-rejected"),
    (
        "Dec  3 10:00:00 relay postfix/smtp[123]: ABC128: to=<a@b.example>, relay=mx.b.example[192.0.2.1]:25, delay=1, delays=0/0/1/0, "
        "dsn=4.0.0, status=deferred (host mx.b.example[192.0.2.1] refused to talk to me: 421 4.3.2 Service not available, closing transmission channel)",
        None,
        "common-greeting-rejected",
    ),
    # Exim named: its own rules for closes, DNS and TLS.
    ("Remote host closed connection in response to initial connection", "exim", "exim-remote-closed-connection"),
    ("a TLS session is required, but the server did not offer TLS support", "exim", "exim-tls-failure"),
    # Exchange Online's codes keep Exchange Online's rules.
    ("450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedServerName=mail.contoso.com]", None, "exo-connector-connection-refused"),
    ("450 4.4.315 Connection timed out [Message=Socket error code 10060]", "exchange-online", "exo-connector-connection-timed-out"),
    ("550 5.4.316 Message expired, connection refused(Socket error code 10061)", "exchange-online", "exo-connector-connection-refused"),
    ("450 4.4.317 Cannot connect to remote server [Message=UntrustedRoot]", "exchange-online", "exo-connector-immediate-error"),
]


def _top(engine: Engine, text: str, system: str | None) -> tuple[str | None, dict[str, Any]]:
    records = diagnose_text(text, facts={"context.system": system} if system else None, engine=engine)
    assert len(records) == 1, text
    diagnosis = records[0].diagnosis
    return (diagnosis.top.rule.id if diagnosis.top else None), diagnosis.facts


@pytest.mark.parametrize(("text", "system", "rule"), PASTED, ids=[f"{i}-{r}" for i, (_t, _s, r) in enumerate(PASTED)])
def test_pasted_transport_failure_gets_the_rule_for_its_phenomenon(engine: Engine, text: str, system: str | None, rule: str) -> None:
    top, facts = _top(engine, text, system)
    assert top == rule, facts


@pytest.fixture(scope="module")
def python_engine(engine: Engine) -> Engine:
    return Engine(engine.kb, backend="python")


@pytest.mark.parametrize(("text", "system", "rule"), PASTED[:25], ids=[f"{i}-{r}" for i, (_t, _s, r) in enumerate(PASTED[:25])])
def test_both_evaluators_rank_the_same_rule_first(python_engine: Engine, text: str, system: str | None, rule: str) -> None:
    assert _top(python_engine, text, system)[0] == rule


# Fact sets as the probe, the flags or a reader give them: who answers depends on the context.
CONNECTOR = {"context.direction": "outbound-connector", "context.system": "mailtriage-probe", "context.smart_host": True}
DIRECT = {"context.direction": "outbound-internet", "context.system": "mailtriage-probe"}
FACTS = [
    ({"tcp.state": "refused"}, "common-tcp-connection-refused", "exo-connector-connection-refused"),
    ({"tcp.state": "timeout"}, "common-tcp-connection-timed-out", "exo-connector-connection-timed-out"),
    ({"tcp.state": "reset", "smtp.closed_abruptly": True, "smtp.stage": "ehlo"}, "common-connection-closed-abruptly", "exo-connector-closed-abruptly"),
    ({"tcp.state": "connected", "smtp.reply_code": 421, "smtp.banner_code": 421, "smtp.stage": "banner", "smtp.text": "Service not available"}, "common-greeting-rejected", "exo-connector-immediate-error"),
    ({"tls.error": "required-not-offered", "context.tls_required": True, "smtp.starttls_offered": False}, "common-tls-required-not-offered", "exo-connector-immediate-error"),
    ({"tls.error": "missing-intermediate"}, "common-tls-certificate-untrusted", "exo-connector-immediate-error"),
    ({"tls.error": "certificate-expired"}, "common-tls-certificate-expired", "exo-connector-certificate-validation-failed"),
    ({"tls.error": "name-mismatch"}, "common-tls-certificate-name-mismatch", "exo-connector-certificate-validation-failed"),
    ({"tls.error": "self-signed"}, "common-tls-certificate-untrusted", "exo-connector-certificate-validation-failed"),
    ({"dns.result": "servfail"}, "common-dns-lookup-failed", "exo-connector-dns-query-failed"),
    ({"dns.result": "nxdomain"}, "common-recipient-domain-not-found", "exo-connector-dns-query-failed"),
    ({"dns.result": "no-address"}, "common-dns-no-mail-host", None),
    ({"dns.result": "null-mx"}, "common-dns-null-mx", None),
    ({"tls.error": "protocol-mismatch"}, "common-tls-handshake-failed", None),
]


@pytest.mark.parametrize(("symptom", "direct", "connector"), FACTS)
def test_direct_delivery_gets_the_transport_rule_and_a_connector_keeps_its_own(
    engine: Engine, symptom: dict[str, Any], direct: str, connector: str | None
) -> None:
    ranked = [m.rule.id for m in engine.diagnose({**symptom, **DIRECT}).matches]
    assert ranked[0] == direct
    assert not [rule for rule in ranked if rule.startswith("exo-")]
    through_connector = [m.rule.id for m in engine.diagnose({**symptom, **CONNECTOR}).matches]
    assert direct not in through_connector  # the transport rule steps aside for the connector
    if connector is not None:
        assert through_connector[0] == connector


@pytest.mark.parametrize(("symptom", "direct", "_connector"), FACTS)
def test_no_reporter_and_no_direction_still_gets_the_transport_rule(engine: Engine, symptom: dict[str, Any], direct: str, _connector: str | None) -> None:
    diagnosis = engine.diagnose(symptom)
    assert diagnosis.top is not None and diagnosis.top.rule.id == direct
    assert diagnosis.specific


@pytest.mark.parametrize(
    "text",
    [
        "conversation with mx.example.com[192.0.2.7] timed out while receiving the initial server greeting",
        "H=mx.example.com [192.0.2.7]: SMTP timeout after sending EHLO: Connection timed out",
    ],
)
def test_a_stalled_dialogue_is_not_a_tcp_timeout(engine: Engine, text: str) -> None:
    _top_rule, facts = _top(engine, text, None)
    assert facts["tcp.state"] == "connected"
    assert facts["smtp.timed_out"] is True
