"""Pasted SMTP replies and error strings -> facts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.errors import InputError
from mailtriage.facts import vocabulary
from mailtriage.intake import detect_kind, parse_input
from mailtriage.intake.reply import parse_reply, read_reply

EXO_REFUSED = (
    "550 5.4.316 Message expired, connection refused(Socket error code 10061); 450 4.4.316 Connection refused "
    "[Message=Socket error code 10061] [LastAttemptedServerName=mail.contoso.com] [LastAttemptedIP=192.0.2.10:25]"
)
EXO_DNS = (
    "550 5.4.312 Message expired, DNS query failed. Last attempt: 450 4.4.312 DNS query failed "
    "[Message=InfoNoRecords] [LastAttemptedServerName=smtp.fabrikam.example]"
)
EXO_TLS = (
    "450 4.4.317 Cannot connect to remote server [Message=451 4.4.0 TLS negotiation failed with error "
    "SocketError] [LastAttemptedServerName=mx.partner.example] [LastAttemptedIP=203.0.113.8:25]"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("450 4.4.316 Connection refused", {"smtp.reply_code": 450, "smtp.enhanced": "4.4.316",
                                            "smtp.text": "Connection refused", "tcp.state": "refused"}),
        (EXO_REFUSED, {"smtp.reply_code": 450, "smtp.enhanced": "4.4.316", "outer.reply_code": 550,
                       "outer.enhanced": "5.4.316", "outer.expired": True, "smtp.remote_host": "mail.contoso.com",
                       "smtp.remote_ip": "192.0.2.10", "smtp.remote_port": 25, "smtp.socket_error": 10061,
                       "tcp.state": "refused", "context.system": "exchange-online",
                       "smtp.details_message": "Socket error code 10061"}),
        (EXO_DNS, {"smtp.reply_code": 450, "smtp.enhanced": "4.4.312", "outer.enhanced": "5.4.312",
                   "outer.expired": True, "dns.detail": "InfoNoRecords", "smtp.remote_host": "smtp.fabrikam.example",
                   "context.system": "exchange-online"}),
        (EXO_TLS, {"smtp.enhanced": "4.4.317", "tls.error": "handshake-failed",
                   "smtp.details_message": "451 4.4.0 TLS negotiation failed with error SocketError",
                   "smtp.remote_ip": "203.0.113.8", "context.system": "exchange-online"}),
        ("550 5.4.316 Message expired, connection refused",
         {"smtp.reply_code": 550, "smtp.enhanced": "5.4.316", "outer.expired": True, "tcp.state": "refused",
          "context.system": "exchange-online"}),
        ("554 4.4.7 Message expired: unable to deliver in 840 minutes.<421 4.4.2 Connection timed out>",
         {"smtp.reply_code": 421, "smtp.enhanced": "4.4.2", "outer.reply_code": 554, "outer.enhanced": "4.4.7",
          "outer.expired": True, "tcp.state": "timeout"}),
        ("connect to mx.example.com[192.0.2.7]:25: Connection refused",
         {"tcp.state": "refused", "smtp.stage": "connect", "smtp.remote_host": "mx.example.com",
          "smtp.remote_ip": "192.0.2.7", "smtp.remote_port": 25}),
        ("host mx.example.net[192.0.2.25] said: 550 5.1.1 <bob@example.net>: Recipient address rejected: "
         "User unknown (in reply to RCPT TO command)",
         {"smtp.reply_code": 550, "smtp.enhanced": "5.1.1", "smtp.stage": "rcpt",
          "smtp.remote_host": "mx.example.net"}),
        ("550-5.7.26 Unauthenticated email is not accepted 550-5.7.26 due to DMARC 550 5.7.26 "
         "https://support.google.com/mail/?p=DmarcRejection - gsmtp",
         {"smtp.reply_code": 550, "smtp.enhanced": "5.7.26", "context.remote_provider": "gmail"}),
        ("remote host 192.0.2.32 said: 550 Unknown user kijitora (#5.1.1)",
         {"smtp.reply_code": 550, "smtp.enhanced": "5.1.1", "smtp.remote_ip": "192.0.2.32"}),
        ("Host or domain name not found. Name service error for name=nowhere.example type=MX: Host not found, "
         "try again", {"dns.result": "servfail", "dns.query_name": "nowhere.example"}),
        ("Host or domain name not found. Name service error for name=gone.example type=A: Host not found",
         {"dns.result": "nxdomain"}),
        ("Domain example.net does not accept mail (nullMX)", {"dns.result": "null-mx"}),
        ("550 5.4.310 DNS domain does not exist [Message=InfoDomainNonexistent]",
         {"dns.detail": "InfoDomainNonexistent", "dns.result": "nxdomain"}),
        ("450 4.4.312 DNS query failed [Message=ErrorRetry]", {"dns.detail": "ErrorRetry"}),
        ("450 4.4.317 Cannot connect [Message=UntrustedRoot]", {"tls.error": "missing-intermediate"}),
        ("450 4.7.320 Certificate validation failed: certificate expired", {"tls.error": "certificate-expired"}),
        ("450 4.4.317 STARTTLS is required to send mail", {"tls.error": "required-not-offered"}),
        ("TLS is required, but was not offered by host mx.example.com[192.0.2.1]",
         {"tls.error": "required-not-offered"}),
        ("Cannot start TLS: handshake failure", {"tls.error": "handshake-failed"}),
        ("lost connection with mx.example.com[192.0.2.1] while receiving the initial server greeting",
         {"smtp.closed_abruptly": True, "smtp.stage": "banner"}),
        ("451 4.4.0 Primary target IP address responded with: 421 Service not available",
         {"smtp.reply_code": 451, "smtp.enhanced": "4.4.0"}),
        # Gmail's own delay notice states a timeout in its bracket.
        ("The recipient server did not accept our requests to connect. [mx.example.jp 192.0.2.9: timed out]",
         {"tcp.state": "timeout"}),
        # Without one, it does not say how the connection failed.
        ("The recipient server did not accept our requests to connect. [mx.example.jp 192.0.2.9: socket error]",
         {"tcp.state": None}),
        ("421 Host not reachable", {"tcp.state": "unreachable"}),
        ("500 Remote server does not support TLS (state 6).", {"tls.error": "required-not-offered"}),
        ("DNS Error: 1234 DNS type 'mx' lookup of gone.example responded with code NOERROR 1234 DNS type 'mx' "
         "lookup of gone.example had no relevant answers. 1234 DNS type 'a' lookup of gone.example responded with "
         "code NOERROR 1234 DNS type 'a' lookup of gone.example had no relevant answers.",
         {"dns.result": "no-address", "dns.query_name": "gone.example"}),
        ("DNS Error: 1234 DNS type 'mx' lookup of web.example responded with code NOERROR 1234 DNS type 'mx' "
         "lookup of web.example had no relevant answers.", {"dns.result": "no-mx"}),
    ],
)
def test_reply_facts(text: str, expected: dict[str, object]) -> None:
    facts, _ = read_reply(text)  # the context its words show included
    assert {key: facts.get(key) for key in expected} == expected


@pytest.mark.parametrize(
    ("code", "state"), [(10060, "timeout"), (10061, "refused"), (10054, "reset"), (10065, "unreachable"),
                        (10051, "unreachable")]
)
def test_socket_error_numbers(code: int, state: str) -> None:
    facts = parse_reply(f"450 4.4.318 Connection failed [Message=Socket error code {code}]")
    assert facts["smtp.socket_error"] == code
    assert facts["tcp.state"] == state


def test_no_exchange_context_without_exchange_markers() -> None:
    assert "context.system" not in read_reply("550 5.1.1 User unknown")[0]
    assert "context.system" not in read_reply("450 4.4.316 Connection refused")[0]


@pytest.mark.parametrize(
    "text",
    ["", "   ", "hello world", "Postfix 2.11.3 on 192.0.2.1 at Thu, 29 Apr 2015 23:34:45 +0900",
     "see RFC 5321 section 4.2", "version 5.1.1 released"],
)
def test_text_without_an_error_gives_nothing(text: str) -> None:
    assert parse_reply(text) == {}


def test_parse_input_reply_record() -> None:
    [record] = parse_input(EXO_REFUSED)
    assert record.kind == "reply"
    assert record.facts["input.kind"] == "reply"
    assert record.facts["smtp.enhanced"] == "4.4.316"


def test_parse_input_unknown_kind() -> None:
    with pytest.raises(InputError):
        parse_input("550 5.1.1 x", kind="carrier-pigeon")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"550 5.1.1 User unknown", "reply"),
        (b"From: a@b.example\nTo: c@d.example\nSubject: x\n\nbody\n", "ndr"),
        (b"May 16 08:00:03 relay postfix/smtp[1]: X: to=<a@b.example>, dsn=5.1.1, status=bounced (x)\n", "log"),
        (b"2024-05-16 09:00:01 1sABCD-000123-EF ** a@b.example: Unrouteable address\n"
         b"2024-05-16 09:00:02 1sABCD-000123-EF Completed\n", "log"),
    ],
)
def test_detect_kind(data: bytes, kind: str) -> None:
    assert detect_kind(data) == kind


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_reply_only_known_fields(text: str) -> None:
    facts = parse_reply(text)
    assert set(facts) <= set(vocabulary())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["550", "5.4.316", "450 ", "4.4.3", "[Message=", "]", "[LastAttemptedIP=",
                                 ":25", "Message expired,", "10061", "(#5.1.1)", " ", "-", "'", "<", ">",
                                 "connection refused", "TLS", "InfoNoRecords", "MX", "\n"]), max_size=30))
def test_fuzz_reply_tokens(tokens: list[str]) -> None:
    facts = parse_reply("".join(tokens))
    assert set(facts) <= set(vocabulary())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["auto", "reply", "ndr", "log"]))
def test_fuzz_parse_input_never_raises(data: bytes, kind: str) -> None:
    for record in parse_input(data, kind=kind):
        assert set(record.facts) <= set(vocabulary())


# str input from the library API may hold any lone surrogate: the ones a surrogateescape decode
# makes (U+DC80-U+DCFF, original bytes) and others, which st.text() never generates by itself.
_WITH_SURROGATES = st.text(st.characters(codec=None, categories=["Cs", "Lu", "Ll", "Nd", "Zs", "Po"]), max_size=200)


@settings(max_examples=200, deadline=None)
@given(_WITH_SURROGATES, st.sampled_from(["auto", "reply", "ndr", "log"]))
def test_fuzz_str_input_with_lone_surrogates_never_raises(text: str, kind: str) -> None:
    for prefix in ("", "550 5.1.1 ", "From: a@b\nContent-Type: multipart/report\n\n"):
        for record in parse_input(prefix + text, kind=kind):
            assert set(record.facts) <= set(vocabulary())


def test_a_lone_surrogate_in_a_reply_still_gets_its_reply_read() -> None:
    (record,) = parse_input("550 5.1.1 \ud800 user unknown")
    assert record.facts["smtp.enhanced"] == "5.1.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("450 4.4.316 refused [LastAttemptedIP=192.0.2.1:²]", {"smtp.remote_ip": "192.0.2.1:²"}),
        ("45٣ 4.4.316 Connection refused", {"smtp.enhanced": "4.4.316"}),
    ],
)
def test_non_ascii_digits_are_not_codes_or_ports(text: str, expected: dict[str, object]) -> None:
    facts = parse_reply(text)
    assert "smtp.reply_code" not in facts or facts["smtp.reply_code"] == 450
    assert "smtp.remote_port" not in facts
    for key, value in expected.items():
        assert facts[key] == value
