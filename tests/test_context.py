"""Context from evidence (issue 10): who reported a failure, whose server answered and which way
the mail went, inferred from the input with the text that showed it; the ranking and wording
fixes; next checks only when their answer changes what is on screen."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtriage.cli import cli
from mailtriage.engine import Engine
from mailtriage.facts import vocabulary
from mailtriage.intake import detect_kind, parse_input
from mailtriage.intake.context import MARKERS, SOURCES, describe, infer, infer_context
from mailtriage.triage import diagnose_text

RULES = Path(__file__).resolve().parent.parent / "rules"

EXO_STAMP = "[BN8NAM12FT054.eop-nam12.prod.protection.outlook.com 2024-05-01T10:00:00.000Z 08DC6A1B2C3D4E5F]"
POSTFIX_LINE = ("postfix/smtp[123]: ABC: to=<a@b.example>, relay=none, delay=30, status=deferred "
                "(connect to mx.b.example[192.0.2.1]:25: Connection refused)")


def inferred_of(text: str, kind: str = "auto") -> dict[str, tuple[Any, str, str]]:
    records = parse_input(text, kind=kind)
    assert records, text
    return {f.field: (f.value, f.source, f.evidence) for f in records[0].inferred}


def ndr(headers: str, body: str, dsn: str = "") -> str:
    """A small multipart/report bounce with the given top headers, text and DSN fields."""
    parts = [
        headers.strip(),
        'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"',
        "",
        "--b\nContent-Type: text/plain\n\n" + body.strip() + "\n",
    ]
    if dsn:
        parts.append("--b\nContent-Type: message/delivery-status\n\n" + dsn.strip() + "\n")
    parts.append("--b--\n")
    return "\n".join(parts)


# --- inference, one case per kind of evidence ------------------------------------------------

@pytest.mark.parametrize(
    ("text", "field", "value", "source", "evidence"),
    [
        # Exchange Online / EOP server stamp at the end of a reply: EOP answered.
        (f"550 5.7.520 Access denied, Your organization does not allow external forwarding. AS(7555) {EXO_STAMP}",
         "context.remote_provider", "exchange-online", "text", "eop-nam12.prod.protection.outlook.com"),
        # Gmail signs its replies with gsmtp.
        ("550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy. "
         "550 5.7.26 https://support.google.com/mail/answer/2451690 d2-20020a05 - gsmtp",
         "context.remote_provider", "gmail", "text", "support.google.com/mail"),
        ("421 4.7.0 Try again later, closing connection. (EHLO) a1-20020a05 - gsmtp",
         "context.remote_provider", "gmail", "text", "gsmtp"),
        # Yahoo points at its postmaster site.
        ("421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user "
         "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
         "context.remote_provider", "yahoo", "text", "postmaster.yahooinc.com"),
        # Outlook.com's consumer servers: its troubleshooting link wins over the shared server stamp.
        ("550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service "
         "provider since part of their network is on our block list (S3150). You can also refer your provider to "
         "http://mail.live.com/mail/troubleshooting.aspx#errors. [AM4PEPF00025F9A.EURPRD83.prod.outlook.com 2024-05-01T10:00:00.000Z]",
         "context.remote_provider", "outlook-com", "text", "mail.live.com/mail/troubleshooting"),
        # The answering host's name.
        ("host gmail-smtp-in.l.google.com[192.0.2.3] said: 452 4.2.2 The recipient's inbox is out of storage space.",
         "context.remote_provider", "gmail", "remote-host", "gmail-smtp-in.l.google.com"),
        # Exchange Online's own bracketed details: it wrote the queue error.
        ("450 4.4.316 Connection refused [Message=Socket error code 10061] [LastAttemptedServerName=mail.contoso.com]",
         "context.system", "exchange-online", "text", "LastAttemptedServerName=mail.contoso.com"),
        ("550 5.4.316 Message expired, connection refused(Socket error code 10061)",
         "context.system", "exchange-online", "text", "5.4.316 Message expired"),
        # MTA log tags.
        (POSTFIX_LINE, "context.system", "postfix", "log-tag", "postfix/smtp"),
        ("Jan  5 10:00:00 mx sendmail[4242]: x05A0: to=<b@c.example>, delay=00:00:01, mailer=esmtp, pri=1, "
         "relay=mx.c.example. [192.0.2.9], dsn=5.1.1, stat=User unknown",
         "context.system", "sendmail", "log-tag", "sendmail"),
        ("2024-05-01 10:00:00 1rABCd-0001Xy-2Z ** d@e.example R=dnslookup T=remote_smtp H=mx.e.example [192.0.2.8]: "
         "SMTP error from remote mail server after RCPT TO:<d@e.example>: 550 5.1.1 No such user",
         "context.system", "exim", "log-tag", "1rABCd-0001Xy-2Z **"),
    ],
)
def test_inference_per_kind_of_evidence(text: str, field: str, value: str, source: str, evidence: str) -> None:
    got = inferred_of(text)
    assert field in got, got
    assert got[field][:2] == (value, source)
    assert evidence in got[field][2]


def test_dsn_fields_and_exchange_headers() -> None:
    message = ndr(
        "From: Mail Delivery System <MAILER-DAEMON@relay.example.org>\nTo: a@example.org\n"
        "Subject: Undelivered Mail Returned to Sender",
        "This is the mail system at host relay.example.org.\n\n<bob@yahoo.example>: host mta5.am0.yahoodns.net said: 554 5.7.9 Message not accepted",
        "Reporting-MTA: dns; relay.example.org\nX-Postfix-Queue-ID: 4F1\n\n"
        "Final-Recipient: rfc822; bob@yahoo.example\nAction: failed\nStatus: 5.7.9\n"
        "Remote-MTA: dns; mta5.am0.yahoodns.net\nDiagnostic-Code: smtp; 554 5.7.9 Message not accepted for policy reasons",
    )
    got = inferred_of(message, kind="ndr")
    assert got["context.system"][:2] == ("postfix", "notice")
    assert got["context.remote_provider"][:2] == ("yahoo", "remote-mta")
    # Yahoo answered someone else's delivery: outbound, to the internet.
    assert got["context.direction"][0] == "outbound-internet"
    assert got["context.destination"][0] == "internet"

    exo = ndr(
        "From: Microsoft Outlook <MicrosoftExchange329e71ec@contoso.onmicrosoft.com>\nTo: a@contoso.example\n"
        "Subject: Undeliverable: hello\nX-MS-Exchange-Message-Is-Ndr: \nX-MS-Exchange-CrossTenant-Id: 1234",
        "Delivery has failed to these recipients or groups:\n\nzed@fabrikam.example\n\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'",
        "Reporting-MTA: dns; BN8PR12MB1234.namprd12.prod.outlook.com\n\n"
        "Final-Recipient: rfc822; zed@fabrikam.example\nAction: failed\nStatus: 5.1.10\n"
        "Diagnostic-Code: smtp; 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    )
    got = inferred_of(exo, kind="ndr")
    assert got["context.system"][0] == "exchange-online"
    assert got["context.system"][1] in ("headers", "reporting-mta")


def test_a_bounce_delivered_to_a_gmail_mailbox_is_not_gmails_bounce() -> None:
    """The top Received header is the last hop: Google receiving the bounce for its user says
    nothing about who wrote it (an Exim bounce was read as Gmail's, and got a registry answer)."""
    exim = (
        "Received: by mx.google.com with ESMTPS id x1si123.2024.05.01.10.00.00\n"
        " for <alice@gmail.example>; Wed, 01 May 2024 10:00:00 -0700 (PDT)\n"
        "Received: from mailnull by relay.example.org with local (Exim 4.97)\n"
        "From: Mail Delivery System <Mailer-Daemon@relay.example.org>\nTo: alice@gmail.example\n"
        "Subject: Mail delivery failed: returning message to sender\nX-Failed-Recipients: bob@example.net\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its recipients. This is a\n"
        "permanent error. The following address(es) failed:\n\n"
        "  bob@example.net\n    retry timeout exceeded\n"
    )
    [record] = parse_input(exim, kind="ndr")
    assert record.facts["context.system"] == "exim"
    # Google's own bounce still says so where Google writes it.
    google = ndr(
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: a@example.org\nSubject: Delivery Status Notification (Failure)",
        "Your message wasn't delivered to bob@example.net because the address couldn't be found.",
        "Reporting-MTA: dns; mx.google.com\n\nFinal-Recipient: rfc822; bob@example.net\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach does not exist.",
    )
    assert inferred_of(google, kind="ndr")["context.system"][0] == "gmail"


def test_received_from_mta_and_reporting_mta_are_separate_sources() -> None:
    facts: dict[str, Any] = {}
    found = infer(facts, {"reporting-mta": "dns; mx.google.com", "remote-mta": "dns; mail.protection.outlook.com"})
    assert {(f.field, f.value, f.source) for f in found} >= {
        ("context.system", "gmail", "reporting-mta"),
        ("context.remote_provider", "exchange-online", "remote-mta"),
    }


def test_facts_already_known_are_never_inferred_over() -> None:
    facts: dict[str, Any] = {"context.system": "exim", "context.remote_provider": "yahoo"}
    _, inferred = infer_context(facts, {"log-tag": "postfix/smtp", "text": "x - gsmtp"})
    assert facts["context.system"] == "exim" and facts["context.remote_provider"] == "yahoo"
    assert all(f.field not in ("context.system", "context.remote_provider") for f in inferred)


def test_readers_facts_win_and_are_not_listed_as_inferred(engine: Engine) -> None:
    [result] = diagnose_text(POSTFIX_LINE, facts={"context.system": "exim"}, engine=engine)
    assert result.diagnosis.facts["context.system"] == "exim"
    assert [f.field for f in result.diagnosis.inferred] == []


def test_every_marker_names_a_known_source_and_a_vocabulary_value() -> None:
    fields = vocabulary()
    for marker in MARKERS:
        assert set(marker.sources) <= set(SOURCES) | {"clues"}, marker
        enum = fields[marker.field].enum
        assert enum is not None and marker.value in enum, marker


# --- the reply line, the JSON and the text report --------------------------------------------

def test_bare_log_line_is_read_as_a_log_line() -> None:
    assert detect_kind(POSTFIX_LINE.encode()) == "log"
    assert detect_kind(b"sendmail[77]: x: to=<a@b.example>, stat=Deferred: Connection refused") == "log"
    assert detect_kind(b"550 5.1.1 postfix/smtp said no") == "reply"


def test_smtp_reply_option_reads_a_postfix_log_line_with_its_context() -> None:
    result = CliRunner().invoke(cli, ["diagnose", "--smtp-reply", POSTFIX_LINE, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["facts"]["context.system"] == "postfix"
    assert data["specific"] is True
    assert data["matches"][0]["rule"].startswith("postfix-")
    assert {"field": "context.system", "value": "postfix", "evidence": "postfix/smtp", "source": "log-tag"} in data["inferred"]


def test_text_report_says_what_was_inferred_and_from_what() -> None:
    result = CliRunner().invoke(cli, ["diagnose", POSTFIX_LINE])
    assert "Inferred: context.system=postfix (from log tag postfix/smtp)" in result.output
    result = CliRunner().invoke(cli, ["diagnose", POSTFIX_LINE, "--format", "markdown"])
    assert "Inferred: context.system=postfix (from log tag postfix/smtp)" in result.output


def test_eop_stamped_replies_get_exchange_online_rules(engine: Engine) -> None:
    for reply, rule in [
        (f"530 5.7.57 Client not authenticated to send mail. {EXO_STAMP}", "exo-ndr-5-7-57-client-not-authenticated"),
        (f"550 5.7.606 Access denied, banned sending IP [192.0.2.55]. {EXO_STAMP}", "exo-ndr-banned-sending-ip"),
    ]:
        [result] = diagnose_text(reply, engine=engine)
        assert result.diagnosis.matches[0].rule.id == rule, reply


def test_describe_reads_like_the_report() -> None:
    [record] = parse_input(POSTFIX_LINE)
    assert describe(record.inferred[0]) == "context.system=postfix (from log tag postfix/smtp)"
    assert describe(record.inferred[0], "de", "pt-BR") == "context.system=postfix (de identificador do log postfix/smtp)"


def test_every_place_evidence_comes_from_is_named_in_both_languages() -> None:
    from mailtriage.intake.context import SOURCE_LABELS

    assert set(SOURCE_LABELS) == {"en", "pt-BR"}
    assert all(set(labels) == set(SOURCES) and all(labels.values()) for labels in SOURCE_LABELS.values())


# --- ranking and wording (issue 10 part 3) -----------------------------------------------------

def top(engine: Engine, text: str, **facts: Any) -> Any:
    [result] = diagnose_text(text, facts={k.replace("__", "."): v for k, v in facts.items()}, engine=engine)
    return result.diagnosis


def test_expired_refused_to_an_outside_domain_leads_with_the_cause_of_both_paths(engine: Engine) -> None:
    diagnosis = top(engine, "550 5.4.316 Message expired, connection refused(Socket error code 10061)")
    match = diagnosis.matches[0]
    assert match.rule.id == "exo-connector-connection-refused"
    first = [c.cause.id for c in match.causes][:2]
    assert "on-premises-retired" not in first and first[0] == "destination-refuses"
    assert diagnosis.next_checks[0].field == "context.direction"
    # Told it went straight to the internet, the migration cause drops to the bottom.
    direct = top(engine, "550 5.4.316 Message expired, connection refused", context__direction="outbound-internet")
    causes = [c.cause.id for c in direct.matches[0].causes]
    assert causes[0] == "destination-refuses" and causes.index("on-premises-retired") > causes.index("partner-refuses") - 1


@pytest.mark.parametrize(
    ("text", "rule", "cause"),
    [
        ("550 5.2.2 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message",
         "exo-ndr-5-2-2-submission-quota", "sender-over-limit"),
        ("550 5.7.24 SPF validation error: DNS lookup failed for example.org", None, "spf-lookup-error"),
        ("550 5.7.1 Message rejected", "iana-x-7-1", "blocked-sender"),
        ("550 5.7.1 Relay access denied", "iana-x-7-1", "relay-denied"),
    ],
)
def test_top_cause(engine: Engine, text: str, rule: str | None, cause: str) -> None:
    diagnosis = top(engine, text)
    match = diagnosis.matches[0] if rule is None else next(m for m in diagnosis.matches if m.rule.id == rule)
    assert match.causes[0].cause.id == cause


def test_x_7_13_is_not_a_disabled_recipient(engine: Engine) -> None:
    ids = [m.rule.id for m in top(engine, "525 5.7.13 User account disabled").matches]
    assert "common-mailbox-disabled" not in ids and "iana-x-7-13" in ids


def test_exchange_online_routing_loop_ranks_above_the_common_mail_loop(engine: Engine) -> None:
    ids = [m.rule.id for m in top(engine, f"554 5.4.14 Hop count exceeded - possible mail loop ATTR34 {EXO_STAMP}").matches]
    assert ids[0] == "exo-ndr-5-4-14-routing-loop"
    if "common-mail-loop" in ids:
        assert ids.index("common-mail-loop") > 0


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def fix_steps(rule: dict[str, Any]) -> list[str]:
    return [step for fix in rule.get("fixes", []) for step in fix.get("steps", [])]


def test_exchange_online_fixes_never_ask_to_retry_the_queue() -> None:
    for path in sorted((RULES / "exchange-online").glob("*.yaml")):
        if path.name.endswith(".pt-BR.yaml"):
            continue
        for step in fix_steps(load(path)):
            assert "retry the queue" not in step.lower() and "retry-queue" not in step.lower(), (path.name, step)


def test_wording_fixes_in_the_rules() -> None:
    banned = load(RULES / "exchange-online" / "ndr-banned-sending-ip.yaml")
    steps = " ".join(fix_steps(banned))
    assert "delist@microsoft.com" in steps and "https://sender.office.com" in steps
    assert "delist portal does not apply" in steps
    restricted = " ".join(fix_steps(load(RULES / "exchange-online" / "ndr-4-7-500-temporarily-restricted.yaml")))
    assert "use the delist portal" not in restricted
    timed_out = " ".join(fix_steps(load(RULES / "exchange-online" / "connector-connection-timed-out.yaml")))
    assert "Inbound SMTP Email test" in timed_out and "Outbound SMTP Email" not in timed_out
    exim = " ".join(fix_steps(load(RULES / "exim" / "tls-failure.yaml")))
    assert "tls_verify_hosts" in exim and "tls_verify_certificates" in exim and "hosts_verify_certificates" not in exim
    for path in sorted(RULES.glob("*/*.yaml")):
        if not path.name.endswith(".pt-BR.yaml") and path.parent.name != "schema":
            codes = " ".join(str(c) for c in load(path).get("codes", []))
            assert "5.7.320" not in codes and "5.4.320" not in codes, path.name


# --- next checks that fit (part 4) --------------------------------------------------------------

GMAIL_DMARC = ("550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy. "
               "Please contact the administrator of example.org domain. 550 5.7.26 https://support.google.com/mail/?p=DmarcRejection - gsmtp")


def test_gmail_dmarc_rejection_asks_nothing_about_connectors_tcp_or_tls(engine: Engine) -> None:
    fields = [c.field for c in top(engine, GMAIL_DMARC).next_checks]
    assert not [f for f in fields if f.startswith(("tcp.", "tls.", "dns.")) or f in (
        "context.direction", "context.destination", "context.smart_host", "context.tls_required")]


def ranking(engine: Engine, facts: dict[str, Any]) -> tuple[Any, ...]:
    diagnosis = engine.diagnose(facts)
    best = diagnosis.matches[0] if diagnosis.matches else None
    return (best.rule.id if best else None, tuple(c.cause.id for c in best.causes) if best else ())


@pytest.mark.parametrize(
    "text",
    [
        "550 5.4.316 Message expired, connection refused",
        "450 4.4.315 Connection timed out [LastAttemptedServerName=mail.contoso.com]",
        GMAIL_DMARC,
        POSTFIX_LINE,
        "550 5.7.1 Message rejected",
    ],
)
def test_every_next_check_has_an_answer_that_changes_the_ranking(engine: Engine, text: str) -> None:
    [result] = diagnose_text(text, engine=engine)
    facts = dict(result.diagnosis.facts)
    before = ranking(engine, facts)
    fields = vocabulary()
    for check in result.diagnosis.next_checks:
        spec = fields[check.field]
        answers = [True, False] if spec.type == "boolean" else list(spec.enum or ())
        assert answers, check.field
        assert any(ranking(engine, {**facts, check.field: a}) != before for a in answers), (text, check.field)


# --- hostile input --------------------------------------------------------------------------------

_PIECES = st.sampled_from([
    "postfix/smtp", "gsmtp", "[", "]", "(AS3130)", "AS(", ".prod.outlook.com", "protection.outlook.com", "yahoo",
    "x-ms-exchange", "outlook.com", "office365", " ", "\n", "\x1b[31m", "5.4.316 Message expired", "LastAttemptedIP=",
    "generating server: ", "\u202e", "é", "hotmail.com", "mail delivery software", "(8.15.2/8.15.2)", "exim",
])
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=30).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*SOURCES, "clues", "nonsense"]), _TEXT, max_size=8), st.booleans())
def test_inference_never_fails_and_stays_in_the_vocabulary(evidence: dict[str, str], known: bool) -> None:
    facts: dict[str, Any] = {"context.system": "postfix"} if known else {}
    started = time.monotonic()
    found = infer(facts, evidence)
    assert time.monotonic() - started < 2.0
    fields = vocabulary()
    seen = set()
    for fact in found:
        assert fact.field not in seen and fact.field not in facts
        seen.add(fact.field)
        enum = fields[fact.field].enum
        assert enum is not None and fact.value in enum
        assert fact.source in SOURCES and len(fact.evidence) <= 120
        assert all(ch.isprintable() for ch in fact.evidence)


def test_huge_evidence_is_bounded() -> None:
    started = time.monotonic()
    infer({}, {"text": "[A" * 500_000 + ".prod.outlook.com", "notice": "x" * 1_000_000, "log-tag": "postfix/" * 100_000})
    assert time.monotonic() - started < 5.0


_NEEDLED = [marker for marker in MARKERS if marker.needles]


@pytest.mark.parametrize("marker", _NEEDLED, ids=[f"{m.field}={m.value}:{m.pattern[:30]}" for m in _NEEDLED])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_marker_needles_are_in_every_text_the_pattern_finds(marker: Any, data: st.DataObject) -> None:
    """The needles only skip work: any text the marker's pattern finds (re.IGNORECASE, searched)
    holds one of them once folded, so a marker never misses evidence because of its needles."""
    import re

    from mailtriage.intake.context import needle_text

    pattern = re.compile(marker.pattern, re.I)
    text = data.draw(st.from_regex(pattern))
    assert pattern.search(text)
    assert any(needle in needle_text(text) for needle in marker.needles), (marker.pattern, text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aiksINVALIDKS \u0130\u0131\u017f\u212a\u0307é")), max_size=12),
       st.sampled_from(["invalid", "kisk", "ask", "sk", "i", "k", "s"]))
def test_needle_text_finds_every_word_re_ignorecase_finds(text: str, word: str) -> None:
    import re

    from mailtriage.intake.context import needle_text

    if re.search(word, text, re.I):
        assert word in needle_text(text)
