"""The connector knowledge: each of the source article's six codes is diagnosed, by the right rule
and with the right leading cause, from each kind of evidence (queue error, expiry NDR, probe
symptom), and the fallback rule never answers for them."""

from __future__ import annotations

from typing import Any

import pytest

from mailtriage.engine import Engine
from mailtriage.i18n import LANGUAGES
from mailtriage.intake.reply import parse_reply

SIX = {
    "4.4.312": "exo-connector-dns-query-failed",
    "4.4.315": "exo-connector-connection-timed-out",
    "4.4.316": "exo-connector-connection-refused",
    "4.4.317": "exo-connector-immediate-error",
    "4.4.318": "exo-connector-closed-abruptly",
    "4.7.320": "exo-connector-certificate-validation-failed",
}
TEXT = {
    "4.4.312": "DNS query failed",
    "4.4.315": "Connection timed out",
    "4.4.316": "Connection refused",
    "4.4.317": "Cannot connect to remote server",
    "4.4.318": "Connection was closed abruptly",
    "4.7.320": "Certificate validation failed",
}
EXO = {"context.system": "exchange-online"}
CONNECTOR = {"context.direction": "outbound-connector"}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(use_cache=False)


def top(engine: Engine, facts: dict[str, Any]) -> Any:
    diagnosis = engine.diagnose(facts)
    assert diagnosis.matches, f"nothing matched {facts}"
    return diagnosis.matches[0]


def expired(code: str) -> str | None:
    """The expiry NDR's outer code around a 4.4.3xx attempt. Nobody documents or observes one for
    4.7.320 (a 5.7.320 or 5.4.320 form is not in the rules' codes)."""
    return "5." + code.split(".", 1)[1] if code != "4.7.320" else None


@pytest.mark.parametrize("code", sorted(SIX))
def test_queue_error_from_exchange_online(engine: Engine, code: str) -> None:
    facts = {**parse_reply(f"450 {code} {TEXT[code]} [LastAttemptedServerName=mail.contoso.com]"), **EXO}
    assert top(engine, facts).rule.id == SIX[code]


@pytest.mark.parametrize("code", sorted(SIX))
def test_reply_text_alone_identifies_the_code(engine: Engine, code: str) -> None:
    assert top(engine, parse_reply(f"450 {code} {TEXT[code]}")).rule.id == SIX[code]


@pytest.mark.parametrize("code", sorted(SIX))
def test_expiry_ndr_is_diagnosed_by_its_inner_attempt(engine: Engine, code: str) -> None:
    facts = {
        **parse_reply(f"450 {code} {TEXT[code]}"),
        **EXO,
        "outer.expired": True,
        "outer.reply_code": 550,
    }
    if expired(code):
        facts["outer.enhanced"] = expired(code)
    diagnosis = engine.diagnose(facts)
    ids = [m.rule.id for m in diagnosis.matches]
    assert ids[0] == SIX[code]
    # The generic expiry rule must not compete with the specific explanation.
    assert "exo-message-expired" not in ids


@pytest.mark.parametrize("code", sorted(SIX))
def test_expired_form_pasted_on_its_own(engine: Engine, code: str) -> None:
    outer = expired(code)
    if outer is None:
        pytest.skip("no documented expiry form for 4.7.320")
    reply = f"550 {outer} Message expired, {TEXT[code].lower()}"
    ids = [m.rule.id for m in engine.diagnose({**parse_reply(reply), **EXO}).matches]
    assert ids[0] == SIX[code]
    assert "exo-message-expired" not in ids


PROBE_SYMPTOMS = [
    ({"dns.result": "nxdomain"}, "4.4.312"),
    ({"dns.result": "servfail"}, "4.4.312"),
    ({"dns.result": "refused"}, "4.4.312"),
    ({"dns.result": "timeout"}, "4.4.312"),
    ({"dns.result": "no-address"}, "4.4.312"),
    ({"tcp.state": "timeout"}, "4.4.315"),
    ({"tcp.state": "refused"}, "4.4.316"),
    ({"tcp.state": "connected", "smtp.banner_code": 421}, "4.4.317"),
    ({"tcp.state": "connected", "smtp.banner_code": 554}, "4.4.317"),
    ({"tls.error": "required-not-offered", "context.tls_required": True, "smtp.starttls_offered": False}, "4.4.317"),
    ({"tls.error": "missing-intermediate"}, "4.4.317"),
    ({"tcp.state": "connected", "smtp.closed_abruptly": True, "smtp.stage": "ehlo"}, "4.4.318"),
    ({"tcp.state": "reset"}, "4.4.318"),
    ({"tls.error": "certificate-expired"}, "4.7.320"),
    ({"tls.error": "certificate-not-yet-valid"}, "4.7.320"),
    ({"tls.error": "name-mismatch"}, "4.7.320"),
    ({"tls.error": "self-signed"}, "4.7.320"),
    ({"tls.error": "untrusted-issuer"}, "4.7.320"),
    ({"tls.error": "revoked"}, "4.7.320"),
]


@pytest.mark.parametrize(("symptoms", "code"), PROBE_SYMPTOMS)
def test_probe_symptom_on_a_connector(engine: Engine, symptoms: dict[str, Any], code: str) -> None:
    facts = {**symptoms, **CONNECTOR, "context.system": "mailtriage-probe"}
    ids = [m.rule.id for m in engine.diagnose(facts).matches]
    assert ids and ids[0] == SIX[code]
    assert "exo-connector-other-error" not in ids


@pytest.mark.parametrize(("symptoms", "code"), PROBE_SYMPTOMS)
def test_probe_symptom_outside_a_connector_is_not_a_connector_error(
    engine: Engine, symptoms: dict[str, Any], code: str
) -> None:
    facts = {**symptoms, "context.direction": "outbound-internet"}
    assert SIX[code] not in [m.rule.id for m in engine.diagnose(facts).matches]


STEERING = [
    ("4.4.312", {"context.domain_expired": True}, "domain-expired"),
    ("4.4.312", {"context.recent_dns_change": True}, "stale-dns-after-change"),
    ("4.4.312", {"dns.result": "servfail"}, "dns-hosting-problem"),
    ("4.4.312", {"context.destination": "partner"}, "partner-dns-problem"),
    ("4.4.315", {"context.server_healthy": False}, "server-down"),
    ("4.4.315", {"context.recent_network_change": True}, "network-changed"),
    ("4.4.315", {"context.server_healthy": True, "context.recent_network_change": False}, "wrong-smart-host"),
    ("4.4.315", {"context.destination": "partner"}, "partner-unreachable"),
    ("4.4.316", {"context.migrated_to_cloud": True}, "on-premises-retired"),
    ("4.4.316", {"context.migrated_to_cloud": False, "context.server_healthy": True}, "firewall-blocks-microsoft-365"),
    ("4.4.316", {"context.destination": "partner"}, "partner-refuses"),
    ("4.4.317", {"smtp.details_message": "UntrustedRoot"}, "incomplete-certificate-chain"),
    ("4.4.317", {"smtp.details_message": "451 4.4.0 TLS negotiation failed with error SocketError"}, "tls-negotiation-failed"),
    ("4.4.317", {"context.tls_required": True, "smtp.starttls_offered": False}, "tls-required-not-offered"),
    ("4.4.317", {"smtp.banner_code": 421}, "service-not-available"),
    ("4.4.317", {"context.destination": "partner"}, "partner-requirements"),
    ("4.4.318", {"context.smtp_inspection": True}, "firewall-smtp-inspection"),
    ("4.4.318", {"context.server_healthy": False, "context.smtp_inspection": False}, "server-unhealthy"),
    ("4.4.318", {"context.recent_network_change": True, "context.smtp_inspection": False}, "network-problem"),
    ("4.4.318", {"context.destination": "partner"}, "partner-drops"),
    ("4.7.320", {"tls.error": "certificate-expired"}, "certificate-expired"),
    ("4.7.320", {"tls.error": "name-mismatch"}, "certificate-name-mismatch"),
    ("4.7.320", {"tls.error": "untrusted-issuer"}, "certificate-untrusted"),
    ("4.7.320", {"tls.error": "revoked"}, "certificate-no-longer-valid"),
    ("4.7.320", {"context.destination": "partner"}, "partner-certificate"),
]


@pytest.mark.parametrize(("code", "context", "cause"), STEERING)
def test_context_steers_the_leading_cause(engine: Engine, code: str, context: dict[str, Any], cause: str) -> None:
    facts = {**parse_reply(f"450 {code} {TEXT[code]}"), **EXO, **context}
    match = top(engine, facts)
    assert match.rule.id == SIX[code]
    assert match.causes[0].cause.id == cause
    # The first fix offered is one that addresses the leading cause.
    assert cause in match.fixes[0].addresses


@pytest.mark.parametrize("code", sorted(SIX))
def test_every_connector_rule_offers_the_partner_route(engine: Engine, code: str) -> None:
    rule = engine.rules[SIX[code]]
    partner = [c for c in rule.causes if "partner" in c.id]
    assert len(partner) == 1
    assert any(partner[0].id in f.addresses for f in rule.fixes)


def test_other_connector_error_answers_only_when_the_six_cannot(engine: Engine) -> None:
    other = {**parse_reply("452 4.3.1 Insufficient system resources"), **EXO, **CONNECTOR}
    assert top(engine, other).rule.id == "exo-connector-other-error"
    for code in SIX:
        facts = {**parse_reply(f"450 {code} {TEXT[code]}"), **EXO, **CONNECTOR}
        assert "exo-connector-other-error" not in [m.rule.id for m in engine.diagnose(facts).matches]


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        ("550 4.4.7 QUEUE.Expired; message expired", "destination-unreachable"),
        ("550 4.4.7 QUEUE.Expired; message expired [Message=AmbiguousRecipientTransientException]", "ambiguous-recipient"),
        ("550 5.4.300 Message expired", "ndr-undeliverable"),
    ],
)
def test_generic_expiry_points_at_the_inner_attempt(engine: Engine, reply: str, cause: str) -> None:
    match = top(engine, {**parse_reply(reply), **EXO})
    assert match.rule.id == "exo-message-expired"
    assert match.causes[0].cause.id == cause
    assert match.fixes[0].id in {"read-inner-attempt", "fix-duplicate-addresses", "fix-original-sender"}


@pytest.mark.parametrize("rule_id", [*SIX.values(), "exo-connector-other-error", "exo-message-expired"])
def test_connector_rules_are_fully_translated(engine: Engine, rule_id: str) -> None:
    rule = engine.rules[rule_id]
    for lang in LANGUAGES:
        assert rule.is_translated(lang)
    assert rule.text("title", "pt-BR") != rule.text("title", "en")
