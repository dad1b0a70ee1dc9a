"""Generate realistic MTA logs for the bulk-scan benchmarks: a relay's Postfix and Exim logs.

Usage: python benchmarks/gen_logs.py OUT_DIR [--lines 1000000] [--files 16] [--failure-share 0.15] [--seed 7]

Writes `--files` log files (rotated logs of two relays: `postfix-NN.log` and `exim-NN.log`, 60/40)
with `--lines` lines in all. A share of `--failure-share` of the lines are delivery failures, about
two thirds deferrals and one third bounces (plus Postfix's expired messages and connection-attempt
lines), with the codes and texts real providers send: unknown users, full mailboxes, greylisting,
rate limits, Gmail's authentication and rate rules, Microsoft's blocklist and tenant codes,
Spamhaus listings, refused and timed-out connections, DNS failures, TLS handshake failures. The
rest are what fills a busy relay's log: connections, queue lines, successful deliveries, cleanup.
Domains follow a long tail (a few big providers and thousands of small domains). Deterministic for
a seed. Prints the number of lines and failure lines written.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

# (weight, code, enhanced status, reply text template, bounce?) per failure kind, SMTP replies.
REPLIES = [
    (14, 550, "5.1.1", "<{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table", True),
    (6, 550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the "
                      "recipient's email address for typos or unnecessary spaces. For more information, go to "
                      "https://support.google.com/mail/?p=NoSuchUser {gid} - gsmtp", True),
    (5, 452, "4.2.2", "The recipient's inbox is out of storage space. Please direct the recipient to "
                      "https://support.google.com/mail/?p=OverQuotaTemp {gid} - gsmtp", False),
    (4, 552, "5.2.2", "<{rcpt}>: Mailbox full", True),
    (10, 450, "4.7.1", "<{rcpt}>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/{domain}.html",
     False),
    (6, 421, "4.7.28", "Gmail has detected an unusual rate of unsolicited mail originating from your IP address. "
                       "To protect our users from spam, mail sent from your IP address has been temporarily rate "
                       "limited. For more information, go to https://support.google.com/mail/?p=UnsolicitedRateLimitError "
                       "{gid} - gsmtp", False),
    (4, 550, "5.7.26", "Unauthenticated email from {sender_domain} is not accepted due to domain's DMARC policy. "
                       "Please contact the administrator of {sender_domain} domain. "
                       "https://support.google.com/mail/answer/2451690 {gid} - gsmtp", True),
    (4, 550, "5.7.606", "Access denied, banned sending IP [{our_ip}]. To request removal from this list please visit "
                        "https://sender.office.com/ and follow the directions. For more information please go to "
                        "http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430)", True),
    (3, 550, "5.4.1", "Recipient address rejected: Access denied. For more information see "
                      "https://aka.ms/EXOSmtpErrors [AM0PR01MB1234.eurprd01.prod.exchangelabs.com]", True),
    (3, 421, "4.7.0", "[TSS04] Messages from {our_ip} temporarily deferred due to unexpected volume or user "
                      "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", False),
    (3, 554, "5.7.1", "Service unavailable; Client host [{our_ip}] blocked using zen.spamhaus.org; "
                      "https://www.spamhaus.org/query/ip/{our_ip}", True),
    (2, 451, "4.3.0", "Temporary local problem - please try later", False),
    (2, 550, "5.7.1", "Relaying denied", True),
]
# Postfix failures that are not an SMTP reply: (weight, dsn, status, text template).
POSTFIX_TRANSPORT = [
    (9, "4.4.1", "deferred", "connect to {host}[{ip}]:25: Connection timed out"),
    (5, "4.4.1", "deferred", "connect to {host}[{ip}]:25: Connection refused"),
    (4, "4.4.3", "deferred", "Host or domain name not found. Name service error for name={domain} type=MX: "
                             "Host not found, try again"),
    (2, "5.4.4", "bounced", "Host or domain name not found. Name service error for name={domain} type=A: "
                            "Host not found"),
    (3, "4.4.2", "deferred", "lost connection with {host}[{ip}] while receiving the initial server greeting"),
    (2, "4.7.5", "deferred", "Cannot start TLS: handshake failure"),
    (1, "4.4.1", "expired", "delivery temporarily suspended: connect to {host}[{ip}]:25: Connection timed out"),
]
EXIM_TRANSPORT = [
    (6, "defer (110): Connection timed out"),
    (4, "defer (111): Connection refused"),
    (2, "defer (-53): retry time not reached for any host"),
]
BIG_PROVIDERS = [
    ("gmail.com", "gmail-smtp-in.l.google.com"),
    ("outlook.com", "outlook-com.olc.protection.outlook.com"),
    ("contoso.com", "contoso-com.mail.protection.outlook.com"),
    ("yahoo.com", "mta7.am0.yahoodns.net"),
]


def _weighted(rng: random.Random, table: list[tuple]) -> tuple:  # type: ignore[type-arg]
    return rng.choices(table, weights=[row[0] for row in table])[0]


class Relay:
    """The random state of one generated log: names, addresses and queue ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.our_ip = f"198.51.100.{rng.randrange(2, 250)}"

    def destination(self) -> tuple[str, str, str, str]:
        """(recipient, domain, mx host, mx ip): big providers for 45% of the mail, a long tail else."""
        rng = self.rng
        if rng.random() < 0.45:
            domain, host = rng.choice(BIG_PROVIDERS)
        else:
            domain = f"{rng.choice(['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark'])}{min(int(rng.paretovariate(0.4)), 9999)}.example"
            host = f"mx{rng.randrange(1, 3)}.{domain}"
        ip = f"203.0.{rng.randrange(0, 114)}.{rng.randrange(1, 255)}"
        return f"{rng.choice(['ana', 'joao', 'maria', 'pat', 'lee', 'kim', 'sam'])}.{rng.randrange(100000)}@{domain}", domain, host, ip

    def reply(self, rcpt: str, domain: str) -> tuple[int, str, str, bool]:
        _, code, status, text, bounce = _weighted(self.rng, REPLIES)
        gid = f"{self.rng.getrandbits(40):x}si{self.rng.randrange(99)}"
        text = text.format(rcpt=rcpt, domain=domain, gid=gid, our_ip=self.our_ip, sender_domain="news.example.org")
        return code, status, text, bounce


def postfix_line(relay: Relay, n: int, failure: bool) -> str:
    rng = relay.rng
    stamp = f"May {1 + (n // 40000) % 28:2d} {(n // 1700) % 24:02d}:{(n // 28) % 60:02d}:{n % 60:02d}"
    head = f"{stamp} relay1 postfix"
    queue_id = f"{rng.getrandbits(44):011X}"
    pid = 1000 + n % 30000
    rcpt, domain, host, ip = relay.destination()
    if failure:
        if rng.random() < 0.55:
            code, status, text, bounce = relay.reply(rcpt, domain)
            word = "bounced" if bounce else "deferred"
            stage = "RCPT TO" if status.startswith(("5.1", "4.2", "5.2", "4.7.1")) else "end of DATA"
            return (f"{head}/smtp[{pid}]: {queue_id}: to=<{rcpt}>, relay={host}[{ip}]:25, delay=1.4, "
                    f"delays=0.1/0/0.6/0.7, dsn={status}, status={word} (host {host}[{ip}] said: {code} {status} "
                    f"{text} (in reply to {stage} command))")
        _, dsn, word, text = _weighted(rng, POSTFIX_TRANSPORT)
        text = text.format(host=host, ip=ip, domain=domain)
        if rng.random() < 0.2 and text.startswith("connect to"):
            return f"{head}/smtp[{pid}]: {text}"  # the attempt line, without a queue id or status
        relay_field = "none" if "not found" in text or "connect to" in text else f"{host}[{ip}]:25"
        return (f"{head}/smtp[{pid}]: {queue_id}: to=<{rcpt}>, relay={relay_field}, delay=31, "
                f"delays=0.1/0/30/0, dsn={dsn}, status={word} ({text})")
    roll = rng.random()
    if roll < 0.35:
        return (f"{head}/smtp[{pid}]: {queue_id}: to=<{rcpt}>, relay={host}[{ip}]:25, delay=0.6, "
                f"delays=0.1/0/0.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 OK {rng.getrandbits(32)} - gsmtp)")
    if roll < 0.55:
        return f"{head}/smtpd[{pid}]: connect from client{n % 900}.example.org[192.0.2.{n % 250 + 1}]"
    if roll < 0.75:
        return (f"{head}/qmgr[900]: {queue_id}: from=<news{n % 77}@news.example.org>, size={n % 90000 + 900}, "
                "nrcpt=1 (queue active)")
    if roll < 0.9:
        return f"{head}/cleanup[{pid}]: {queue_id}: message-id=<{n}.{rng.getrandbits(24)}@news.example.org>"
    return f"{head}/qmgr[900]: {queue_id}: removed"


def exim_line(relay: Relay, n: int, failure: bool) -> str:
    rng = relay.rng
    stamp = f"2024-05-{1 + (n // 40000) % 28:02d} {(n // 1700) % 24:02d}:{(n // 28) % 60:02d}:{n % 60:02d}"
    message_id = f"1s{rng.getrandbits(16):04X}-{rng.getrandbits(24):06X}-{rng.getrandbits(8):02X}"
    rcpt, domain, host, ip = relay.destination()
    if failure:
        if rng.random() < 0.6:
            code, status, text, bounce = relay.reply(rcpt, domain)
            flag = "**" if bounce else "=="
            return (f"{stamp} {message_id} {flag} {rcpt} R=dnslookup T=remote_smtp H={host} [{ip}]: SMTP error "
                    f"from remote mail server after RCPT TO:<{rcpt}>: {code} {status} {text}")
        _, text = _weighted(rng, EXIM_TRANSPORT)
        return f"{stamp} {message_id} == {rcpt} R=dnslookup T=remote_smtp {text}"
    roll = rng.random()
    if roll < 0.4:
        return f"{stamp} {message_id} => {rcpt} R=dnslookup T=remote_smtp H={host} [{ip}] X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=yes C=\"250 2.0.0 OK\""
    if roll < 0.75:
        return (f"{stamp} {message_id} <= news{n % 77}@news.example.org H=app{n % 9}.example.org [192.0.2.{n % 250 + 1}] "
                f"P=esmtps S={n % 90000 + 900}")
    return f"{stamp} {message_id} Completed"


def generate(out: Path, lines: int, files: int, failure_share: float, seed: int) -> tuple[int, int]:
    """Write the logs; (lines, failure lines) written."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    written = failures = 0
    postfix_files = max(1, round(files * 0.6)) if files > 1 else 1
    for index in range(files):
        count = lines // files + (1 if index < lines % files else 0)
        relay = Relay(random.Random(rng.getrandbits(64)))
        is_postfix = index < postfix_files
        name = f"postfix-{index:02d}.log" if is_postfix else f"exim-{index:02d}.log"
        make = postfix_line if is_postfix else exim_line
        with open(out / name, "w", encoding="utf-8") as handle:
            for n in range(count):
                failure = relay.rng.random() < failure_share
                failures += failure
                handle.write(make(relay, written + n, failure) + "\n")
        written += count
    return written, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--failure-share", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    written, failures = generate(args.out, args.lines, args.files, args.failure_share, args.seed)
    print(f"{written:,} lines in {args.files} files under {args.out}, {failures:,} failure lines "
          f"({failures / max(written, 1):.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
