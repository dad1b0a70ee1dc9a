"""Evaluate the answers to realistic pasted replies from Exchange Online, Gmail, Outlook.com, Yahoo,
Postfix and Exim, as people paste them (multi-line, with server stamps, as log lines): the share
that gets a specific rule, and the right one, and what the context step inferred for each.

Usage: PYTHONPATH=engine python benchmarks/eval_context.py [--show-all]

The replies below are written for this script in the layouts those systems use (addresses, hosts
and stamps are made up); they are not the shared corpus's texts. Each case names the rule ids that
are a right answer (an id ending in `*` accepts any rule id with that prefix). This is an
evaluation, not a test: issue 10's target is 95% specific and right.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from mailtriage.triage import default_engine, diagnose_text

EXO = "[BN8NAM12FT054.eop-nam12.prod.protection.outlook.com 2024-03-02T08:11:42.123Z 08DC3A4B5C6D7E8F]"
EXO_PROD = "[SA1PR12MB7777.namprd12.prod.outlook.com 2024-03-02T08:11:42.123Z 08DC3A4B5C6D7E8F]"
OLC = "[AM4PEPF00025F9A.EURPRD83.prod.outlook.com 2024-03-02T08:11:42.123Z 08DC3A4B5C6D7E8F]"
SYSLOG = "Mar  2 08:11:42 relay postfix/smtp[2211]: 4Tq0Vx1Kz2: "
EXIM = "2024-03-02 08:11:42 1rABCd-0001Xy-2Z "

CASES: list[tuple[str, str, tuple[str, ...]]] = [
    # --- Exchange Online / EOP ------------------------------------------------------------------
    ("exchange-online", "550 5.7.606 Access denied, banned sending IP [203.0.113.9]. To request removal from this list "
     "please visit https://sender.office.com/ and follow the directions. For more information please go to "
     f"http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) {EXO}", ("exo-ndr-banned-sending-ip",)),
    ("exchange-online", "550 5.7.1 Service unavailable, Client host [203.0.113.9] blocked using Spamhaus. To request "
     f"removal from this list see https://www.spamhaus.org/query/ip/203.0.113.9 (AS3130). {EXO}",
     ("exo-ndr-5-7-1-delivery-not-authorized", "common-dnsbl-listed")),
    ("exchange-online", "530 5.7.57 Client not authenticated to send mail. Error: 535 5.7.139 Authentication "
     f"unsuccessful, the user credentials were incorrect. {EXO_PROD}", ("exo-ndr-5-7-57-client-not-authenticated",)),
    ("exchange-online", "550 5.7.520 Access denied, Your organization does not allow external forwarding. Please "
     f"contact your administrator for further assistance. AS(7555) {EXO}", ("exo-*",)),
    ("exchange-online", f"550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup {EXO_PROD}",
     ("exo-ndr-5-1-10-recipient-not-found",)),
    ("exchange-online", f"451 4.7.500 Server busy. Please try again later from [203.0.113.9]. (AS761) {EXO}",
     ("exo-ndr-4-7-500-temporarily-restricted",)),
    ("exchange-online", "550 5.7.509 Access denied, sending domain example.org does not pass DMARC verification and "
     f"has a DMARC policy of reject. {EXO}", ("exo-ndr-5-7-509-dmarc-reject",)),
    ("exchange-online", "450 4.4.317 Cannot connect to remote server [Message=451 5.7.3 STARTTLS is required to send "
     f"mail] [LastAttemptedServerName=mail.contoso.example] [LastAttemptedIP=192.0.2.10:25] {EXO}",
     ("exo-connector-immediate-error",)),
    ("exchange-online", "550 5.4.316 Message expired, connection refused(Socket error code 10061)",
     ("exo-connector-connection-refused",)),
    ("exchange-online", f"554 5.4.14 Hop count exceeded - possible mail loop ATTR34 {EXO}", ("exo-ndr-5-4-14-routing-loop",)),
    ("exchange-online", "550 5.2.2 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process "
     "message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. "
     f"0.35250:0A000000[EndDiagnosticData] {EXO_PROD}", ("exo-ndr-5-2-2-submission-quota",)),
    ("exchange-online", f"550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. {EXO}",
     ("exo-ndr-5-7-700-tenant-sending-blocked",)),
    ("exchange-online", "Diagnostic information for administrators:\nGenerating server: SA1PR12MB7777.namprd12.prod.outlook.com\n"
     "alice@fabrikam.example\nRemote Server returned '550 5.7.1 RESOLVER.RST.AuthRequired; authentication required "
     "[Stage: CreateMessage]'", ("exo-ndr-5-7-1-delivery-not-authorized", "exo-ndr-sender-not-allowed-for-recipient")),
    ("exchange-online", "451 4.4.0 DNS query failed. The error was: DNS query failed with error ErrorRetry "
     "[LastAttemptedServerName=mail.contoso.example]", ("exo-connector-dns-query-failed", "exo-*")),
    # --- Gmail ------------------------------------------------------------------------------------
    ("gmail", "550-5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all\n"
     "550-5.7.26 senders to authenticate with either SPF or DKIM.\n550-5.7.26\n550-5.7.26  Authentication results:\n"
     "550-5.7.26  DKIM = did not pass\n550-5.7.26  SPF [example.org] with ip: [203.0.113.9] = did not pass\n"
     "550-5.7.26\n550-5.7.26  For instructions on setting up authentication, go to\n"
     "550 5.7.26  https://support.google.com/mail/answer/81126#authentication x1-20020a170906 - gsmtp",
     ("gmail-unauthenticated-sender",)),
    ("gmail", "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
     "550-5.1.1 double-checking the recipient's email address for typos or\n"
     "550-5.1.1 unnecessary spaces. For more information, go to\n"
     "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a2si1234567 - gsmtp", ("gmail-no-such-user",)),
    ("gmail", "452-4.2.2 The recipient's inbox is out of storage space. Please direct the\n452-4.2.2 recipient to\n"
     "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp b3si7654321 - gsmtp", ("gmail-mailbox-full",)),
    ("gmail", "421-4.7.0 This message is suspicious due to the very low reputation of the sending IP address.\n"
     "421-4.7.0 To protect our users from spam, mail sent from your IP address has been temporarily\n"
     "421-4.7.0 rate limited. For more information, go to\n"
     "421 4.7.0  https://support.google.com/mail/answer/188131 z9si1122334 - gsmtp", ("gmail-low-ip-reputation",)),
    ("gmail", "550-5.7.1 [203.0.113.9] Our system has detected that this message is likely unsolicited mail.\n"
     "550-5.7.1 To reduce the amount of spam sent to Gmail, this message has been blocked. For more information, go to\n"
     "550 5.7.1  https://support.google.com/mail/?p=UnsolicitedMessageError c4si5566778 - gsmtp", ("gmail-likely-spam",)),
    ("gmail", SYSLOG + "to=<bob@gmail.example>, relay=gmail-smtp-in.l.google.com[142.250.27.26]:25, delay=1.2, "
     "delays=0.1/0/0.5/0.6, dsn=5.7.26, status=bounced (host gmail-smtp-in.l.google.com[142.250.27.26] said: "
     "550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy. Please contact "
     "the administrator of example.org domain if this was a legitimate mail. 550 5.7.26 DMARC initiative "
     "https://support.google.com/mail/answer/2451690 d2si9988776 - gsmtp (in reply to end of DATA command))",
     ("gmail-dmarc-policy-reject",)),
    ("gmail", EXIM + "** bob@gmail.example R=dnslookup T=remote_smtp H=gmail-smtp-in.l.google.com [142.250.27.26] "
     "X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes: SMTP error from remote mail server after end of data: "
     "550-5.7.1 [203.0.113.9] Our system has detected that this message is likely unsolicited mail. To reduce the "
     "amount of spam sent to Gmail, this message has been blocked. 550 5.7.1 "
     "https://support.google.com/mail/?p=UnsolicitedMessageError e5si4433221 - gsmtp", ("gmail-likely-spam",)),
    # --- Outlook.com --------------------------------------------------------------------------------
    ("outlook-com", "550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't sent. Please contact your Internet "
     "service provider since part of their network is on our block list (S3150). You can also refer your provider "
     f"to http://mail.live.com/mail/troubleshooting.aspx#errors. {OLC}", ("outlook-com-network-blocklisted",)),
    ("outlook-com", "451 4.7.650 The mail server [203.0.113.9] has been temporarily rate limited due to IP reputation. "
     f"For e-mail delivery information, see https://postmaster.live.com (S775) {OLC}",
     ("outlook-com-ip-reputation-throttled",)),
    ("outlook-com", SYSLOG + "to=<x@hotmail.example>, relay=hotmail-com.olc.protection.outlook.com[52.101.8.44]:25, "
     "delay=2, dsn=5.7.1, status=bounced (host hotmail-com.olc.protection.outlook.com[52.101.8.44] said: 550 5.7.1 "
     "Unfortunately, messages from [203.0.113.9] weren't sent. Please contact your Internet service provider since "
     "part of their network is on our block list (S3140). You can also refer your provider to "
     f"http://mail.live.com/mail/troubleshooting.aspx#errors. {OLC} (in reply to MAIL FROM command))",
     ("outlook-com-network-blocklisted",)),
    ("outlook-com", SYSLOG + "to=<x@outlook.example>, relay=outlook-com.olc.protection.outlook.com[52.101.8.45]:25, "
     "delay=2, dsn=4.7.650, status=deferred (host outlook-com.olc.protection.outlook.com[52.101.8.45] said: 451 4.7.650 "
     "The mail server [203.0.113.9] has been temporarily rate limited due to IP reputation. For e-mail delivery "
     f"information, see https://postmaster.live.com (S775) {OLC} (in reply to MAIL FROM command))",
     ("outlook-com-ip-reputation-throttled",)),
    # --- Yahoo ------------------------------------------------------------------------------------
    ("yahoo", "421 4.7.0 [TSS04] Messages from 203.0.113.9 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", ("yahoo-deferred-volume-complaints",)),
    ("yahoo", "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
     ("yahoo-policy-content-block",)),
    ("yahoo", "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders "
     "to authenticate with either SPF or DKIM.", ("yahoo-unauthenticated-sender",)),
    ("yahoo", SYSLOG + "to=<carol@yahoo.example>, relay=mta6.am0.yahoodns.net[67.195.204.77]:25, delay=0.9, "
     "dsn=5.0.0, status=bounced (host mta6.am0.yahoodns.net[67.195.204.77] said: 554 delivery error: dd Sorry your "
     "message to carol@yahoo.example cannot be delivered. This mailbox is disabled (554.30). - "
     "mta4012.mail.gq1.yahoo.com (in reply to end of DATA command))", ("yahoo-no-such-account",)),
    ("yahoo", "421 4.7.0 [TSS09] All messages from 203.0.113.9 will be permanently deferred; Retrying will NOT succeed. "
     "See https://postmaster.yahooinc.com/error-codes", ("yahoo-permanently-deferred",)),
    # --- Postfix ------------------------------------------------------------------------------------
    ("postfix", "postfix/smtp[123]: ABC: to=<a@b.example>, relay=none, delay=30, status=deferred (connect to "
     "mx.b.example[192.0.2.1]:25: Connection refused)", ("postfix-connect-failed",)),
    ("postfix", SYSLOG + "to=<a@nowhere.example>, relay=none, delay=0.2, delays=0.1/0/0.1/0, dsn=5.4.4, "
     "status=bounced (Host or domain name not found. Name service error for name=nowhere.example type=A: Host not found)",
     ("postfix-host-not-found",)),
    ("postfix", SYSLOG + "to=<d@e.example>, relay=mx.e.example[192.0.2.8]:25, delay=300, dsn=4.4.2, status=deferred "
     "(conversation with mx.e.example[192.0.2.8] timed out while receiving the initial server greeting)",
     ("postfix-lost-connection",)),
    ("postfix", SYSLOG + "to=<d@e.example>, relay=mx.e.example[192.0.2.8]:25, delay=5, dsn=4.7.4, status=deferred "
     "(TLS is required, but was not offered by host mx.e.example[192.0.2.8])", ("postfix-tls-required-not-offered",)),
    ("postfix", SYSLOG + "to=<d@e.example>, relay=none, delay=0.1, dsn=5.1.10, status=bounced (Domain e.example does "
     "not accept mail (nullMX))", ("postfix-null-mx",)),
    ("postfix", SYSLOG + "to=<u@f.example>, relay=mx.f.example[192.0.2.2]:25, delay=1, dsn=5.1.1, status=bounced (host "
     "mx.f.example[192.0.2.2] said: 550 5.1.1 <u@f.example>: Recipient address rejected: User unknown in virtual "
     "mailbox table (in reply to RCPT TO command))", ("common-recipient-unknown",)),
    ("postfix", "Mar  2 08:11:42 relay postfix/smtp[2211]: Untrusted TLS connection established to "
     "mx.f.example[192.0.2.2]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
     + SYSLOG + "to=<u@f.example>, relay=mx.f.example[192.0.2.2]:25, delay=1, dsn=4.7.5, status=deferred (Server "
     "certificate not verified)", ("postfix-tls-failed",)),
    ("postfix", SYSLOG + "to=<u@f.example>, relay=mx.f.example[192.0.2.2]:25, delay=4, dsn=4.4.2, status=deferred "
     "(lost connection with mx.f.example[192.0.2.2] while sending RCPT TO)", ("postfix-lost-connection",)),
    # --- Exim ---------------------------------------------------------------------------------------
    ("exim", EXIM + "** d@e.example R=dnslookup T=remote_smtp H=mx.e.example [192.0.2.8]: SMTP error from remote mail "
     "server after RCPT TO:<d@e.example>: 550 5.1.1 <d@e.example>: Recipient address rejected: User unknown",
     ("common-recipient-unknown",)),
    ("exim", EXIM + "== d@e.example R=dnslookup T=remote_smtp defer (111): Connection refused",
     ("*connection-refused", "*connect-failed", "exim-*")),
    ("exim", EXIM + "** d@e.example R=dnslookup: all relevant MX records point to non-existent hosts",
     ("exim-dns-routing-failure",)),
    ("exim", EXIM + "== d@e.example R=dnslookup T=remote_smtp H=mx.e.example [192.0.2.8]: Remote host closed "
     "connection in response to initial connection", ("exim-remote-closed-connection",)),
    ("exim", EXIM + "== d@e.example R=dnslookup T=remote_smtp H=mx.e.example [192.0.2.8]: a TLS session is required, "
     "but the server did not offer TLS support", ("exim-tls-failure",)),
    ("exim", EXIM + "** d@e.example: retry timeout exceeded", ("exim-retry-timeout-exceeded",)),
]


def right(rule_id: str | None, accepted: tuple[str, ...]) -> bool:
    if rule_id is None:
        return False
    for want in accepted:
        if want.endswith("*") and rule_id.startswith(want[:-1]):
            return True
        if want.startswith("*") and rule_id.endswith(want[1:]):
            return True
        if rule_id == want:
            return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--show-all", action="store_true", help="print every case, not only the ones that fall through")
    args = parser.parse_args()
    engine = default_engine()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses: list[str] = []
    for provider, text, accepted in CASES:
        results = diagnose_text(text, engine=engine)
        diagnosis = results[-1].diagnosis if results else None
        rule_id = diagnosis.matches[0].rule.id if diagnosis and diagnosis.matches else None
        good = bool(diagnosis and diagnosis.specific and right(rule_id, accepted))
        totals[provider][0] += good
        totals[provider][1] += 1
        inferred = ", ".join(f"{f.field}={f.value}" for f in diagnosis.inferred) if diagnosis else "-"
        line = f"{'ok  ' if good else 'MISS'} {provider:15} {rule_id or '(nothing)':45} inferred: {inferred or '-'}"
        if not good:
            misses.append(f"{line}\n     text: {' '.join(text.split())[:150]}\n     wanted: {', '.join(accepted)}")
        elif args.show_all:
            print(line)
    good_all = sum(t[0] for t in totals.values())
    count = sum(t[1] for t in totals.values())
    print(f"specific and right: {good_all}/{count} = {100 * good_all / count:.1f}% (target 95%)")
    for provider, (good, total) in totals.items():
        print(f"  {provider:15} {good}/{total}")
    if misses:
        print("falls through:")
        print("\n".join(misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
