"""DNS steps: the MX lookup of a domain and the A/AAAA lookups of a host, with dnspython.

Results are the `dns.result` values of the fact vocabulary. The system resolver
(`socket.getaddrinfo`) is never used: it would ignore `--nameserver` and hide SERVFAIL versus
timeout behind one `gaierror`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from ..errors import ProbeError
from .budget import Budget

# dns.result values
NOERROR = "noerror"
NXDOMAIN = "nxdomain"
NO_MX = "no-mx"
NULL_MX = "null-mx"
NO_ADDRESS = "no-address"
SERVFAIL = "servfail"
REFUSED = "refused"
TIMEOUT = "timeout"

MAX_MX_HOSTS = 10  # more than this is never useful to probe; the rest are counted, not dropped silently


@dataclass(frozen=True)
class Nameserver:
    address: str
    port: int = 53


@dataclass
class MxOutcome:
    """The MX lookup: a result and, when it worked, the hosts in preference order."""

    result: str
    hosts: list[tuple[int, str]] = field(default_factory=list)
    detail: str = ""
    null_mx_mixed: bool = False
    skipped_hosts: int = 0


@dataclass
class AddressOutcome:
    """The A/AAAA lookups of one host."""

    result: str
    addresses: list[str] = field(default_factory=list)
    detail: str = ""


def parse_nameserver(text: str) -> Nameserver:
    """`IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; raises ProbeError otherwise."""
    value = text.strip()
    port = 53
    host = value
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ProbeError(f"--nameserver {text!r}: expected IP, IP:PORT or [IPv6]:PORT")
        if rest:
            port = _port(rest[1:], f"--nameserver {text!r}")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = _port(port_text, f"--nameserver {text!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ProbeError(f"--nameserver {text!r}: {host!r} is not an IP address") from None
    return Nameserver(host, port)


def _port(text: str, where: str) -> int:
    if not text.isdecimal() or not 0 < int(text) < 65536:
        raise ProbeError(f"{where}: port must be a number from 1 to 65535")
    return int(text)


def make_resolver(nameserver: Nameserver | None) -> dns.resolver.Resolver:
    """A resolver for the given server, or for the system's configured servers."""
    if nameserver is None:
        try:
            resolver = dns.resolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration:
            raise ProbeError("no DNS server configured on this system; pass --nameserver IP") from None
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [nameserver.address]
        resolver.port = nameserver.port
    resolver.retry_servfail = False
    return resolver


def _query(resolver: dns.resolver.Resolver, name: str, rdtype: str, budget: Budget) -> dns.resolver.Answer:
    limit = budget.limit()
    # One try may use the whole step timeout, but retry within it on a slow or lossy path.
    resolver.timeout = min(limit, 3.0)
    resolver.lifetime = limit
    return resolver.resolve(name, rdtype, search=False, raise_on_no_answer=True)


def classify_error(exc: dns.exception.DNSException) -> tuple[str, str]:
    """The dns.result value and a one-line detail for a dnspython exception."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return NXDOMAIN, "the name does not exist (NXDOMAIN)"
    if isinstance(exc, dns.resolver.NoAnswer):
        return NO_ADDRESS, "the name exists but has no record of this type"
    if isinstance(exc, dns.exception.Timeout):
        return TIMEOUT, "no answer from the DNS server before the timeout"
    if isinstance(exc, dns.resolver.NoNameservers):
        rcodes = [str(error[3]) for error in exc.kwargs.get("errors", []) if len(error) > 3]
        if any("REFUSED" in rcode for rcode in rcodes):
            return REFUSED, "the DNS server refused the query (REFUSED)"
        if any("SERVFAIL" in rcode for rcode in rcodes):
            return SERVFAIL, "the DNS server could not answer (SERVFAIL)"
        return SERVFAIL, "no DNS server could answer: " + ("; ".join(rcodes) or str(exc))
    return SERVFAIL, f"DNS lookup failed: {exc}"


def lookup_mx(resolver: dns.resolver.Resolver, domain: str, budget: Budget) -> MxOutcome:
    try:
        answer = _query(resolver, domain, "MX", budget)
    except dns.resolver.NoAnswer:
        return MxOutcome(
            NO_MX,
            [(0, domain)],
            "no MX record; falling back to the domain's own A/AAAA (implicit MX, RFC 5321 section 5.1)",
        )
    except dns.exception.DNSException as exc:
        result, detail = classify_error(exc)
        return MxOutcome(result, [], detail)
    records = sorted(
        ((int(rr.preference), rr.exchange.to_text(omit_final_dot=True)) for rr in answer),
        key=lambda pair: (pair[0], pair[1].lower()),
    )
    real = [(pref, host) for pref, host in records if host not in ("", ".")]
    if not real:
        return MxOutcome(NULL_MX, [], "null MX (RFC 7505): the domain accepts no mail")
    outcome = MxOutcome(NOERROR, real[:MAX_MX_HOSTS])
    outcome.skipped_hosts = max(0, len(real) - MAX_MX_HOSTS)
    outcome.null_mx_mixed = len(real) != len(records)
    names = ", ".join(f"{host} ({pref})" for pref, host in real)
    outcome.detail = f"{len(real)} MX host(s): {names}"
    return outcome


def lookup_addresses(resolver: dns.resolver.Resolver, host: str, budget: Budget) -> AddressOutcome:
    """A then AAAA. A name-level failure of the A query (NXDOMAIN, SERVFAIL, timeout) is not
    repeated for AAAA: it would fail the same way and double the wait."""
    addresses: list[str] = []
    try:
        addresses.extend(rr.to_text() for rr in _query(resolver, host, "A", budget))
    except dns.resolver.NoAnswer:
        pass
    except dns.exception.DNSException as exc:
        result, detail = classify_error(exc)
        return AddressOutcome(result, [], detail)
    notes = ""
    try:
        addresses.extend(rr.to_text() for rr in _query(resolver, host, "AAAA", budget))
    except dns.resolver.NoAnswer:
        pass
    except dns.exception.DNSException as exc:
        result, detail = classify_error(exc)
        if not addresses:
            return AddressOutcome(result, [], detail)
        notes = f" (AAAA lookup failed: {detail})"
    if not addresses:
        return AddressOutcome(NO_ADDRESS, [], "the name exists but has no A or AAAA record")
    return AddressOutcome(NOERROR, addresses, ", ".join(addresses) + notes)


def check_name(name: str, where: str) -> str:
    """A host or domain name as typed, without the final dot; raises ProbeError when it is not one."""
    text = name.strip().rstrip(".")
    if not text or any(ch.isspace() for ch in text) or "/" in text or "@" in text:
        raise ProbeError(f"{where} {name!r} is not a host or domain name")
    try:
        dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise ProbeError(f"{where} {name!r} is not a valid DNS name ({exc})") from None
    return text
