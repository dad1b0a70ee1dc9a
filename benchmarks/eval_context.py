"""Evaluate the answers to realistic pasted replies from Exchange Online, Gmail, Outlook.com, Yahoo,
Postfix and Exim, as people paste them (multi-line, with server stamps, as log lines): the share
that gets a specific rule, and the right one, and what the context step inferred for each.

Usage: PYTHONPATH=engine python benchmarks/eval_context.py [--show-all]

The replies below (153) are written for this script in the layouts those systems use (addresses, hosts
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


def postfix_said(rcpt: str, relay: str, ip: str, dsn: str, reply: str, stage: str = "RCPT TO",
                 status: str = "bounced") -> str:
    """A Postfix smtp(8) delivery line quoting the remote server's reply, as syslog writes it."""
    return (f"{SYSLOG}to=<{rcpt}>, relay={relay}[{ip}]:25, delay=1.4, delays=0.1/0/0.6/0.7, dsn={dsn}, "
            f"status={status} (host {relay}[{ip}] said: {reply} (in reply to {stage} command))")


def exim_said(rcpt: str, host: str, ip: str, reply: str, after: str = "RCPT TO", defer: bool = False) -> str:
    """An Exim main-log delivery failure (** bounced, == deferred) quoting the remote reply."""
    after_text = f"RCPT TO:<{rcpt}>" if after == "RCPT TO" else after
    return (f"{EXIM}{'==' if defer else '**'} {rcpt} R=dnslookup T=remote_smtp H={host} [{ip}] "
            f"X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes: SMTP error from remote mail server after {after_text}: {reply}")


def exo_ndr(recipient: str, reply: str, server: str = "SA1PR12MB7777.namprd12.prod.outlook.com") -> str:
    """The "Diagnostic information for administrators" block of an Exchange Online NDR."""
    return (f"Diagnostic information for administrators:\nGenerating server: {server}\n\n{recipient}\n"
            f"Remote server returned '{reply}'\n\nOriginal message headers:\n")

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
    # --- more Exchange Online / EOP: as NDRs, stamped replies and MTA log lines -----------------
    ("exchange-online", exo_ndr("bob@contoso.example", "550 5.7.703 Your message can't be delivered because messages "
     "to bob@contoso.example were blocked by your organization using Tenant Allow Block List. [BN8NAM12FT054.eop-nam12."
     "prod.protection.outlook.com 2024-03-02T08:11:42.123Z 08DC3A4B5C6D7E8F]"), ("exo-ndr-5-7-703-tenant-block-list",)),
    ("exchange-online", "550 5.7.703 Your message can't be delivered because messages to bob@contoso.example, contoso.example "
     "have been blocked by your organization's tenant allow/block list policy.", ("exo-ndr-5-7-703-tenant-block-list",)),
    ("exchange-online", exo_ndr("team@contoso.example", "550 5.7.193 UserFromOutsideOfOrganization; Sender is not allowed "
     "to send to this group [Stage: CreateMessage]"), ("exo-ndr-5-7-193-group-external-senders",)),
    ("exchange-online", postfix_said("team@contoso.example", "contoso-example.mail.protection.outlook.com", "52.101.40.7",
     "5.7.193", f"550 5.7.193 UnauthenticatedSenderAllowList; sender is not on the list of senders authorized to send "
     f"messages to this group {EXO}"), ("exo-ndr-5-7-193-group-external-senders",)),
    ("exchange-online", f"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit "
     f"https://aka.ms/smtp_auth_disabled for more information. {EXO_PROD}", ("exo-ndr-5-7-139-smtp-auth-disabled",)),
    ("exchange-online", "535 5.7.139 Authentication unsuccessful, the user credentials were incorrect. "
     f"{EXO_PROD}", ("exo-ndr-5-7-139-smtp-auth-disabled", "exo-ndr-5-7-57-client-not-authenticated")),
    ("exchange-online", f"550 5.7.60 SMTP; Client does not have permissions to send as this sender {EXO_PROD}",
     ("exo-ndr-send-as-denied",)),
    ("exchange-online", exo_ndr("alice@contoso.example", "554 5.2.252 SendAsDenied; alice@contoso.example not allowed to "
     "send as shared@contoso.example; STOREDRV.Submit; Send As permission denied before submit."),
     ("exo-ndr-send-as-denied",)),
    ("exchange-online", f"451 4.7.0 Temporary server error. Please try again later. PRX5 {EXO_PROD}",
     ("exchange-prx-proxy-session-failed",)),
    ("exchange-online", "450 4.7.0 Proxy session setup failed on Frontend with '451 4.4.0 Primary target IP address "
     "responded with: \"421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing transmission "
     "channel.\" Attempted failover to alternate host, but that did not succeed.'", ("exchange-prx-proxy-session-failed",)),
    ("exchange-online", postfix_said("kim@contoso.example", "contoso-example.mail.protection.outlook.com", "52.101.40.7",
     "4.4.62", "451 4.4.62 Mail sent to the wrong Office 365 region. ATTR35. For more information please go to "
     f"https://go.microsoft.com/fwlink/?LinkId=526653 {EXO}", status="deferred"), ("exo-ndr-4-4-62-wrong-region",)),
    ("exchange-online", exo_ndr("kim@contoso.example", "432 4.3.2 STOREDRV.Deliver; recipient thread limit exceeded"),
     ("exo-ndr-4-3-2-recipient-thread-limit",)),
    ("exchange-online", exo_ndr("kim@contoso.example", "550 5.6.211 SMTPSEND.BareLinefeedsAreIllegal; Invalid MIME Content: "
     "Single text value size (32780) exceeded allowed maximum (32768) for the 'X-Legacy-Data' header."),
     ("exo-ndr-5-6-211-invalid-mime", "exo-ndr-5-6-11-invalid-characters")),
    ("exchange-online", exo_ndr("kim@contoso.example", "550 5.7.129 RESOLVER.RST.RestrictedToRecipientsPermission; not "
     "authorized to send to recipient because the sender isn't on the recipient's list of senders to accept mail from "
     "[Stage: CreateMessage]"), ("exo-ndr-5-7-129-restricted-to-recipients",)),
    ("exchange-online", "550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the "
     "message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or "
     "RestrictDomainsToCertificate set [DM6NAM12FT041.eop-nam12.prod.protection.outlook.com 2024-03-02T08:11:42.123Z "
     "08DC3A4B5C6D7E8F]", ("exo-ndr-5-7-51-connector-restriction",)),
    ("exchange-online", "550 5.4.310 DNS domain contoso.example does not exist [Message=InfoDomainNonexistent] "
     f"[LastAttemptedServerName=contoso.example] {EXO_PROD}", ("exo-ndr-5-4-310-domain-does-not-exist",)),
    ("exchange-online", f"550 5.7.512 Access denied, message must be RFC 5322 section 3.6.2 compliant and include a valid "
     f"From address. {EXO}", ("exo-ndr-5-7-512-from-not-compliant",)),
    ("exchange-online", f"550 5.7.800 Access denied, sending domain contoso.example is banned. {EXO}",
     ("exo-ndr-5-7-800-banned-sender-domain",)),
    ("exchange-online", exo_ndr("kim@fabrikam.example", "550 5.0.350 Generic error occurred at the recipient's "
     "organization"), ("exo-ndr-5-0-350-recipient-org-error",)),
    ("exchange-online", exo_ndr("kim@fabrikam.example", "550 5.3.190 Journaling on-premises messages to Microsoft 365 or "
     "Office 365 not supported when Journaling Archive is disabled"), ("exo-ndr-5-3-190-journaling-not-supported",)),
    ("exchange-online", f"550 5.7.506 Access Denied, Bad HELO {EXO}", ("exo-ndr-5-7-50x-access-denied",)),
    ("exchange-online", postfix_said("kim@contoso.example", "contoso-example.mail.protection.outlook.com", "52.101.40.7",
     "5.7.508", f"550 5.7.508 Access denied, sending IP [203.0.113.9] was rejected {EXO}"),
     ("exo-ndr-5-7-50x-access-denied",)),
    ("exchange-online", f"550 5.7.501 Service unavailable. Spam abuse detected from IP range. For more information please "
     f"go to http://go.microsoft.com/fwlink/?LinkId=526653. S(2017052602) {EXO}",
     ("exo-ndr-5-7-501-banned-sender", "exo-ndr-banned-sending-ip")),
    ("exchange-online", f"550 5.7.64 TenantAttribution; Relay Access Denied {EXO}", ("exo-ndr-5-7-64-tenant-attribution",)),
    ("exchange-online", exo_ndr("kim@fabrikam.example", "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
     "[DM6NAM12FT015.eop-nam12.prod.protection.outlook.com 2024-03-02T08:11:42.123Z 08DC3A4B5C6D7E8F]"),
     ("exo-ndr-5-4-1-relay-access-denied",)),
    ("exchange-online", exim_said("kim@contoso.example", "contoso-example.mail.protection.outlook.com", "52.101.40.7",
     f"550 5.4.1 Recipient address rejected: Access denied. AS(201806281) {EXO}"), ("exo-ndr-5-4-1-relay-access-denied",)),
    ("exchange-online", exo_ndr("sales@contoso.example", "550 5.1.8 Access denied, bad outbound sender. AS(42004)"),
     ("exo-ndr-5-1-8-bad-outbound-sender",)),
    ("exchange-online", f"550 5.7.23 The message was rejected because of Sender Policy Framework violation {EXO}",
     ("exo-ndr-5-7-23-spf-violation",)),
    ("exchange-online", postfix_said("kim@contoso.example", "contoso-example.mail.protection.outlook.com", "52.101.40.7",
     "5.7.513", "550 5.7.513 Service unavailable, Client host [203.0.113.9] blocked by contoso.example using Customer "
     f"Block list (AS16012607) {EXO}"), ("exo-ndr-5-7-513-customer-block-list",)),
    ("exchange-online", exo_ndr("kim@fabrikam.example", "550 5.7.750 Service unavailable. Client blocked from sending from "
     "unregistered domains."), ("exo-ndr-5-7-700-tenant-sending-blocked",)),
    ("exchange-online", exo_ndr("kim@fabrikam.example", "550 5.1.90 Your message can't be sent because you've reached your "
     "daily limit for message recipients."), ("exo-ndr-5-1-90-recipient-limit",)),
    ("exchange-online", exo_ndr("kim@contoso.example", "550 5.2.121 RecipientThrottled; Recipient's per sender limit for "
     "number of messages per hour has been reached."), ("exo-ndr-5-2-121-recipient-receive-limit",)),
    ("exchange-online", f"550 5.1.0 Sender denied [{EXO[1:]}", ("exo-ndr-5-1-0-sender-denied",)),
    ("exchange-online", exo_ndr("kim@fabrikam.example", "550 5.7.57 Client was not authenticated to send anonymous mail "
     "during MAIL FROM [SA1PR12MB7777.namprd12.prod.outlook.com 2024-03-02T08:11:42.123Z 08DC3A4B5C6D7E8F]"),
     ("exo-ndr-5-7-57-client-not-authenticated",)),
    ("exchange-online", "451 4.4.0 Primary target IP address responded with: \"421 4.4.2 Connection dropped due to "
     "SocketError.\" Attempted failover to alternate host, but that did not succeed. Either there are no alternate hosts, "
     "or delivery failed to all alternate hosts. The last endpoint attempted was 192.0.2.10:25",
     ("exo-connector-closed-abruptly", "exo-connector-*", "*connection-closed-abruptly")),
    # --- more Gmail: multi-line replies with the gsmtp trailer, and quoted in MTA logs ----------
    ("gmail", "550-5.2.1 The email account that you tried to reach is disabled. For more information, go to\n"
     "550 5.2.1  https://support.google.com/mail/?p=DisabledUser f7si1234567 - gsmtp", ("gmail-account-disabled",)),
    ("gmail", "552-5.2.2 The recipient's inbox is out of storage space and inactive. Please direct the\n"
     "552-5.2.2 recipient to\n552 5.2.2  https://support.google.com/mail/?p=OverQuotaPerm g8si2233445 - gsmtp",
     ("gmail-mailbox-full-inactive",)),
    ("gmail", "552-5.3.4 Your message exceeded Google's message size limits. For more information, go to\n"
     "552 5.3.4  https://support.google.com/mail/?p=MaxSizeError h9si3344556 - gsmtp", ("gmail-message-too-large",)),
    ("gmail", "550-5.7.1 [203.0.113.9] Messages missing a valid Message-ID header are not\n550-5.7.1 accepted. For more "
     "information, go to\n550 5.7.1  https://support.google.com/mail/?p=RfcMessageNonCompliant i1si4455667 - gsmtp",
     ("gmail-not-rfc5322-compliant", "gmail-malformed-message")),
    ("gmail", "550-5.7.25 [203.0.113.9] The IP address sending this message does not have a\n550-5.7.25 PTR record setup, "
     "or the corresponding forward DNS entry does not point to the\n550-5.7.25 sending IP. As a policy, Gmail does not "
     "accept messages from IPs with\n550-5.7.25 missing PTR records. For more information, go to\n"
     "550 5.7.25  https://support.google.com/mail/answer/81126#ip-practices j2si5566778 - gsmtp", ("gmail-no-ptr-record",)),
    ("gmail", "421-4.7.30 Your email has been rate limited because DKIM authentication didn't\n421-4.7.30 pass for this "
     "message. Gmail requires all bulk email senders to\n421-4.7.30 authenticate with DKIM.\n421-4.7.30\n"
     "421-4.7.30  Authentication results:\n421-4.7.30  DKIM = did not pass\n421-4.7.30\n"
     "421 4.7.30  https://support.google.com/mail/answer/81126#authentication k3si6677889 - gsmtp",
     ("gmail-bulk-dkim-failed",)),
    ("gmail", "550-5.7.27 Your email has been blocked because the sender is unauthenticated. Gmail requires\n"
     "550-5.7.27 all bulk email senders to authenticate with SPF.\n550-5.7.27\n550-5.7.27  Authentication results:\n"
     "550-5.7.27  SPF [example.org] with ip: [203.0.113.9] = did not pass\n550-5.7.27\n"
     "550 5.7.27  https://support.google.com/mail/answer/81126#authentication l4si7788990 - gsmtp",
     ("gmail-bulk-spf-failed",)),
    ("gmail", "421-4.7.32 Your email has been rate limited because the From: header (RFC5322) in\n421-4.7.32 this message "
     "isn't aligned with either the authenticated SPF or DKIM\n421-4.7.32 organizational domain.\n"
     "421 4.7.32  https://support.google.com/mail/answer/81126#authentication m5si8899001 - gsmtp",
     ("gmail-from-not-aligned",)),
    ("gmail", "421-4.7.29 Your email has been rate limited because this message wasn't sent over\n421-4.7.29 a TLS "
     "connection. Gmail requires all bulk email senders to use TLS/SSL\n421-4.7.29 for SMTP connections.\n"
     "421 4.7.29  https://support.google.com/mail/answer/81126#authentication n6si9900112 - gsmtp",
     ("gmail-bulk-not-tls",)),
    ("gmail", "421-4.7.40 Your email has been rate limited because the sending domain example.org\n421-4.7.40 doesn't "
     "have a DMARC record or the DMARC record doesn't specify a policy.\n421-4.7.40 Gmail requires all bulk email "
     "senders to publish a DMARC record.\n"
     "421 4.7.40  https://support.google.com/mail/answer/81126#authentication o7si0011223 - gsmtp",
     ("gmail-bulk-dmarc-missing",)),
    ("gmail", "552-5.7.0 This message was blocked because its content presents a potential\n552-5.7.0 security issue. "
     "Please visit\n552-5.7.0  https://support.google.com/mail/?p=BlockedMessage to review our\n"
     "552 5.7.0 message content and attachment content guidelines. p8si1122334 - gsmtp", ("gmail-blocked-attachment",)),
    ("gmail", "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating\n421-4.7.28 from your IP address. "
     "To protect our users from spam, mail sent from your IP\n421-4.7.28 address has been temporarily rate limited. "
     "For more information, go to\n421 4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError "
     "q9si2233445 - gsmtp", ("gmail-unusual-rate",)),
    ("gmail", "550-5.7.28 Our system has detected an unusual rate of unsolicited mail\n550-5.7.28 originating from your IP "
     "address. To protect our users from spam, mail sent\n550-5.7.28 from your IP address has been blocked.\n"
     "550 5.7.28  https://support.google.com/mail/?p=UnsolicitedIPError r1si3344556 - gsmtp", ("gmail-unusual-rate",)),
    ("gmail", "421-4.7.28 This message has been rate limited because the sender's domain has an unusual rate of\n"
     "421-4.7.28 mail. To protect our users from spam, mail sent from your domain has been temporarily\n"
     "421 4.7.28 rate limited. s2si4455667 - gsmtp", ("gmail-unusual-rate",)),
    ("gmail", "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\n550-5.4.5 sending limits go to\n"
     "550 5.4.5  https://support.google.com/a/answer/166852 t3si5566778 - gsmtp", ("gmail-daily-sending-limit",)),
    ("gmail", "530-5.7.0 Must issue a STARTTLS command first. For more information, go to\n"
     "530 5.7.0  https://support.google.com/a/answer/3221692 u4si6677889 - gsmtp", ("gmail-starttls-required-first",)),
    ("gmail", "535-5.7.8 Username and Password not accepted. For more information, go to\n"
     "535 5.7.8  https://support.google.com/mail/?p=BadCredentials v5sm7788990 - gsmtp", ("gmail-bad-credentials",)),
    ("gmail", "534-5.7.9 Application-specific password required. For more information, go to\n"
     "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor w6sm8899001 - gsmtp",
     ("gmail-web-login-or-app-password",)),
    ("gmail", "550-5.7.26 This message does not have authentication information or fails to\n550-5.7.26 pass "
     "authentication checks. To best protect our users from spam, the\n550-5.7.26 message has been blocked. Please "
     "visit\n550 5.7.26  https://support.google.com/mail/answer/81126#authentication x7si9900112 - gsmtp",
     ("gmail-unauthenticated-sender",)),
    ("gmail", "450-4.2.1 The user you are trying to contact is receiving mail at a rate that\n450-4.2.1 prevents additional "
     "messages from being delivered. Please resend your\n450-4.2.1 message at a later point. For more information, go to\n"
     "450 4.2.1  https://support.google.com/mail/?p=ReceivingRate y8si0011223 - gsmtp", ("gmail-recipient-rate-limited",)),
    ("gmail", postfix_said("bob@gmail.example", "gmail-smtp-in.l.google.com", "142.250.27.26", "5.1.1",
     "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the "
     "recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more information, go to 550 5.1.1  "
     "https://support.google.com/mail/?p=NoSuchUser z9si1122334 - gsmtp"), ("gmail-no-such-user",)),
    ("gmail", postfix_said("bob@gmail.example", "gmail-smtp-in.l.google.com", "142.250.27.26", "4.7.28",
     "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail originating 421-4.7.28 from your IP address. To "
     "protect our users from spam, mail sent from your IP 421-4.7.28 address has been temporarily rate limited. "
     "421 4.7.28  https://support.google.com/mail/?p=UnsolicitedRateLimitError a1si2233445 - gsmtp",
     stage="end of DATA", status="deferred"), ("gmail-unusual-rate",)),
    ("gmail", exim_said("bob@gmail.example", "gmail-smtp-in.l.google.com", "142.250.27.26",
     "452-4.2.2 The recipient's inbox is out of storage space. Please direct the 452-4.2.2 recipient to 452 4.2.2  "
     "https://support.google.com/mail/?p=OverQuotaTemp b2si3344556 - gsmtp", defer=True), ("gmail-mailbox-full",)),
    ("gmail", exim_said("bob@gmail.example", "gmail-smtp-in.l.google.com", "142.250.27.26",
     "550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's 550-5.7.26 DMARC policy. Please "
     "contact the administrator of example.org domain if 550-5.7.26 this was a legitimate mail. 550 5.7.26 "
     "https://support.google.com/mail/answer/2451690 c3si4455667 - gsmtp", after="end of data"),
     ("gmail-dmarc-policy-reject",)),
    ("gmail", "421-4.7.0 [203.0.113.9 15] Our system has detected that this message is\n421-4.7.0 suspicious due to the "
     "very low reputation of the sending domain. To\n421-4.7.0 best protect our users from spam, the message has been "
     "blocked.\n421 4.7.0  https://support.google.com/mail/answer/188131 d4si5566778 - gsmtp",
     ("gmail-low-domain-reputation",)),
    ("gmail", "421-4.7.26 This email has been rate limited because it is unauthenticated. Gmail\n421-4.7.26 requires "
     "all senders to authenticate with either SPF or DKIM.\n421 4.7.26  "
     "https://support.google.com/mail/answer/81126#authentication e5si6677889 - gsmtp", ("gmail-unauthenticated-sender",)),
    ("gmail", "451-4.7.26 Unauthenticated email from example.org is not accepted due to domain's\n451-4.7.26 DMARC policy, "
     "but temporary DNS failures prevented authentication. f6si7788990 - gsmtp", ("gmail-dmarc-temp-dns-failure",)),
    # --- more Outlook.com -----------------------------------------------------------------------
    ("outlook-com", "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [AM4PEPF00025F9A.EURPRD83."
     "prod.outlook.com 2024-03-02T08:11:42.123Z 08DC3A4B5C6D7E8F]", ("outlook-com-5-5-0-mailbox-unavailable",)),
    ("outlook-com", postfix_said("x@hotmail.example", "hotmail-com.olc.protection.outlook.com", "52.101.8.44", "5.5.0",
     "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [AM4PEPF00025F9A.EURPRD83.prod.outlook.com "
     "2024-03-02T08:11:42.123Z 08DC3A4B5C6D7E8F]"), ("outlook-com-5-5-0-mailbox-unavailable",)),
    ("outlook-com", "550 OU-002 (COL004-MC2F12) Unfortunately, messages from 203.0.113.9 weren't sent. Please contact your "
     "Internet service provider. You can tell them that Hotmail does not relay dynamically-assigned IP ranges. You can "
     "also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.",
     ("outlook-com-policy-reputation-block",)),
    ("outlook-com", "550 SC-001 (BAY004-MC1F41) Unfortunately, messages from 203.0.113.9 weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list. You can also refer your provider to "
     "http://mail.live.com/mail/troubleshooting.aspx#errors.", ("outlook-com-policy-reputation-block",)),
    ("outlook-com", "550 SC-004 (SNT004-MC3F7) Mail rejected by Outlook.com for policy reasons. A block has been placed "
     "against your IP address because we have received complaints concerning mail coming from that IP address.",
     ("outlook-com-complaints",)),
    ("outlook-com", "550 DY-001 (COL004-MC4F22) Unfortunately, messages from 203.0.113.9 weren't sent. Please contact your "
     "Internet service provider. You can tell them that Hotmail does not relay dynamically-assigned IP ranges.",
     ("outlook-com-dynamic-ip",)),
    ("outlook-com", "421 RP-001 (BAY004-MC1F23) Unfortunately, some messages from 203.0.113.9 weren't sent. Please try "
     "again. We have limits for how many messages can be sent per hour and per day.", ("outlook-com-rate-limited",)),
    ("outlook-com", exim_said("x@outlook.example", "outlook-com.olc.protection.outlook.com", "52.101.8.45",
     "421 RP-002 (SNT004-MC2F9) Unfortunately, some messages from 203.0.113.9 weren't sent. Please try again. We have "
     "limits for how many messages can be sent per hour and per day.", defer=True), ("outlook-com-rate-limited",)),
    ("outlook-com", "550 5.7.515 Access denied, sending domain [example.org] doesn't meet the required authentication level. "
     "The sender's domain in the 5322.From address doesn't meet the authentication requirements defined for the sender. "
     f"{OLC}", ("outlook-com-domain-authentication-required",)),
    ("outlook-com", postfix_said("x@outlook.example", "outlook-com.olc.protection.outlook.com", "52.101.8.45", "5.7.1",
     "550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't sent. Please contact your Internet service provider "
     "since part of their network is on our block list (S3150). You can also refer your provider to "
     f"http://mail.live.com/mail/troubleshooting.aspx#errors. {OLC}", stage="MAIL FROM"),
     ("outlook-com-network-blocklisted",)),
    ("outlook-com", "550 OU-001 (SNT004-MC1F17) Unfortunately, messages from 203.0.113.9 weren't sent. Please contact your "
     "Internet service provider. You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.",
     ("outlook-com-spamhaus-block",)),
    ("outlook-com", "550 SC-002 (COL004-MC3F18) Mail rejected by Outlook.com for policy reasons. The mail server IP "
     "connecting to Outlook.com has exhibited namespace mining behavior.", ("outlook-com-namespace-mining",)),
    # --- more Yahoo -----------------------------------------------------------------------------
    ("yahoo", postfix_said("carol@yahoo.example", "mta7.am0.yahoodns.net", "67.195.204.77", "4.7.0",
     "421 4.7.0 [TSS04] Messages from 203.0.113.9 temporarily deferred due to unexpected volume or user complaints - "
     "4.16.55.1; see https://postmaster.yahooinc.com/error-codes", stage="MAIL FROM", status="deferred"),
     ("yahoo-deferred-volume-complaints",)),
    ("yahoo", "553 5.7.2 [TSS09] All messages from 203.0.113.9 will be permanently deferred; Retrying will NOT succeed. "
     "See https://postmaster.yahooinc.com/error-codes", ("yahoo-permanently-deferred",)),
    ("yahoo", "554 Message not allowed - Headers are not RFC compliant[291]", ("yahoo-headers-not-rfc-compliant",)),
    ("yahoo", postfix_said("carol@yahoo.example", "mta5.am0.yahoodns.net", "67.195.204.72", "5.0.0",
     "554 Message not allowed - Headers are not RFC compliant[291]", stage="end of DATA"),
     ("yahoo-headers-not-rfc-compliant",)),
    ("yahoo", "553 5.7.1 [BL21] Connections will not be accepted from 203.0.113.9, because the ip is in Spamhaus's list; "
     "see http://postmaster.yahoo.com/550-bl23.html", ("yahoo-spamhaus-listed",)),
    ("yahoo", exim_said("carol@yahoo.example", "mta6.am0.yahoodns.net", "67.195.204.77",
     "554 delivery error: dd This user doesn't have a yahoo.example account (carol@yahoo.example) [0] - "
     "mta1234.mail.ne1.yahoo.com", after="end of data"), ("yahoo-no-such-account",)),
    ("yahoo", "554 Message not allowed - [PH01] Email not accepted for policy reasons. Please visit "
     "https://postmaster.yahooinc.com/error-codes", ("yahoo-policy-content-block",)),
    ("yahoo", postfix_said("carol@yahoo.example", "mta6.am0.yahoodns.net", "67.195.204.77", "4.7.0",
     "451 Message temporarily deferred due to unresolvable RFC.5321 from domain. See "
     "https://senders.yahooinc.com/error-codes#unresolvable-from-domain", stage="MAIL FROM", status="deferred"),
     ("yahoo-unresolvable-from-domain",)),
    ("yahoo", "421 Max message per connection reached, closing transmission channel - mta4012.mail.gq1.yahoo.com",
     ("yahoo-connection-limits",)),
    ("yahoo", "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders "
     "to authenticate with either SPF or DKIM. - mta4012.mail.gq1.yahoo.com", ("yahoo-unauthenticated-sender",)),
    # --- more Postfix ---------------------------------------------------------------------------
    ("postfix", SYSLOG + "to=<d@e.example>, relay=none, delay=0.1, delays=0.1/0/0/0, dsn=5.4.6, status=bounced (mail "
     "for e.example loops back to myself)", ("postfix-loops-back-to-myself",)),
    ("postfix", SYSLOG + "to=<d@e.example>, relay=none, delay=31, delays=0.1/0/31/0, dsn=4.4.1, status=deferred (connect "
     "to mx.e.example[192.0.2.8]:25: Connection timed out)", ("postfix-connect-failed", "*connection-timed-out")),
    ("postfix", SYSLOG + "to=<d@e.example>, relay=none, delay=0.2, dsn=4.4.1, status=deferred (connect to "
     "mx.e.example[2001:db8::8]:25: Network is unreachable)", ("postfix-connect-failed", "*network-unreachable")),
    ("postfix", SYSLOG + "to=<d@e.example>, relay=none, delay=0.3, dsn=4.4.3, status=deferred (Host or domain name not "
     "found. Name service error for name=e.example type=MX: Host not found, try again)",
     ("postfix-host-not-found", "common-dns-lookup-failed")),
    ("postfix", SYSLOG + "to=<d@e.example>, relay=mx.e.example[192.0.2.8]:25, delay=2, dsn=4.7.5, status=deferred "
     "(Server certificate not trusted)", ("postfix-tls-failed",)),
    ("postfix", SYSLOG + "to=<d@e.example>, relay=mx.e.example[192.0.2.8]:25, delay=2, dsn=4.7.5, status=deferred "
     "(Server certificate not verified)", ("postfix-tls-failed",)),
    ("postfix", SYSLOG + "to=<d@e.example>, relay=mx.e.example[192.0.2.8]:25, delay=2, dsn=4.7.5, status=deferred "
     "(TLS is required, but our TLS engine is unavailable)", ("postfix-local-tls-problem",)),
    ("postfix", postfix_said("u@f.example", "mx.f.example", "192.0.2.2", "4.2.2", "452 4.2.2 <u@f.example>: Recipient "
     "address rejected: Mailbox full", status="deferred"), ("common-mailbox-full",)),
    ("postfix", postfix_said("u@f.example", "mx.f.example", "192.0.2.2", "5.7.1", "554 5.7.1 Service unavailable; Client "
     "host [203.0.113.9] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.9"),
     ("common-dnsbl-listed",)),
    ("postfix", postfix_said("u@f.example", "mx.f.example", "192.0.2.2", "4.7.1", "450 4.7.1 <u@f.example>: Recipient "
     "address rejected: Greylisted, see https://postgrey.schweikert.ch/help/f.example.html", status="deferred"),
     ("common-greylisted",)),
    ("postfix", postfix_said("u@f.example", "mx.f.example", "192.0.2.2", "5.7.1", "554 5.7.1 <u@f.example>: Relay access "
     "denied"), ("common-relay-denied",)),
    ("postfix", postfix_said("u@f.example", "mx.f.example", "192.0.2.2", "5.3.4", "552 5.3.4 Message size exceeds fixed "
     "limit", stage="end of DATA"), ("common-message-too-large",)),
    ("postfix", postfix_said("u@f.example", "mx.f.example", "192.0.2.2", "5.1.8", "553 5.1.8 <root@web01.localdomain>: "
     "Sender address rejected: Domain not found", stage="MAIL FROM"), ("common-sender-rejected",)),
    ("postfix", SYSLOG + "to=<u@f.example>, relay=mx.f.example[192.0.2.2]:25, delay=301, dsn=4.4.2, status=deferred "
     "(conversation with mx.f.example[192.0.2.2] timed out while sending end of data -- message may be sent more than "
     "once)", ("postfix-lost-connection",)),
    ("postfix", SYSLOG + "to=<u@f.example>, relay=none, delay=432000, dsn=4.4.1, status=expired, returned to sender",
     ("common-message-expired-in-queue", "postfix-*")),
    # --- more Exim ------------------------------------------------------------------------------
    ("exim", EXIM + "** d@e.example: Unrouteable address", ("exim-dns-routing-failure",)),
    ("exim", EXIM + "== d@e.example R=dnslookup T=remote_smtp defer (-53): retry time not reached for any host for "
     "'e.example'", ("exim-retry-time-not-reached",)),
    ("exim", EXIM + "** d@e.example R=dnslookup: lowest numbered MX record points to local host",
     ("exim-mx-points-to-local-host",)),
    ("exim", EXIM + "== d@e.example R=dnslookup T=remote_smtp defer (110): Connection timed out",
     ("*connection-timed-out", "exim-*")),
    ("exim", exim_said("d@e.example", "mx.e.example", "192.0.2.8", "452 4.2.2 <d@e.example>: Recipient address "
     "rejected: Mailbox full", defer=True), ("common-mailbox-full",)),
    ("exim", exim_said("d@e.example", "mx.e.example", "192.0.2.8", "550 5.7.1 Service unavailable; Client host "
     "[203.0.113.9] blocked using bl.spamcop.net", after="MAIL FROM:<a@example.org> SIZE=2048"), ("common-dnsbl-listed",)),
    ("exim", EXIM + "== d@e.example R=dnslookup T=remote_smtp H=mx.e.example [192.0.2.8]: SMTP error from remote mail "
     "server after RCPT TO:<d@e.example>: 451 4.7.1 Greylisting in action, please come back later", ("common-greylisted",)),
    ("exim", EXIM + "** d@e.example R=dnslookup T=remote_smtp H=mx.e.example [192.0.2.8]: SMTP error from remote mail "
     "server after MAIL FROM:<a@example.org> SIZE=31457280: 552 5.3.4 Message size exceeds maximum permitted",
     ("common-message-too-large",)),
    ("exim", EXIM + "== d@e.example R=dnslookup T=remote_smtp H=mx.e.example [192.0.2.8]: TLS session: (certificate "
     "verification failed): certificate has expired", ("exim-tls-failure", "common-tls-certificate-expired")),
    ("exim", EXIM + "** d@e.example R=dnslookup T=remote_smtp H=mx.e.example [192.0.2.8]: SMTP error from remote mail "
     "server after RCPT TO:<d@e.example>: 550 relay not permitted", ("common-relay-denied",)),
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
