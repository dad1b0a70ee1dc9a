"""Turn TARGET / --smart-host into what to probe: a domain (MX lookup) or one host and port."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import ProbeError
from .dns import check_name
from .model import ProbeOptions

DEFAULT_PORT = 25


@dataclass(frozen=True)
class Endpoint:
    name: str  # host name or IP literal
    port: int | None  # None: not given

    @property
    def is_ip(self) -> bool:
        return is_ip(self.name)


@dataclass(frozen=True)
class Plan:
    mode: str  # "domain" | "host" | "smart-host"
    label: str  # what the report calls the target
    domain: str | None  # for mode "domain": the domain whose MX to look up
    endpoint: Endpoint | None  # for modes "host" and "smart-host"
    recipient_domain: str | None


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_endpoint(text: str, where: str) -> Endpoint:
    """`host`, `host:port`, `IPv4[:port]`, `[IPv6]:port` or a bare IPv6 address."""
    value = text.strip()
    if not value:
        raise ProbeError(f"{where} is empty")
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not is_ip(host) or (rest and not rest.startswith(":")):
            raise ProbeError(f"{where} {text!r}: expected [IPv6] or [IPv6]:PORT")
        return Endpoint(host, _port(rest[1:], where, text) if rest else None)
    if is_ip(value):
        return Endpoint(value, None)
    if value.count(":") == 1:
        host, _, port_text = value.partition(":")
        name = host if is_ip(host) else check_name(host, where)
        return Endpoint(name, _port(port_text, where, text))
    return Endpoint(check_name(value, where), None)


def _port(text: str, where: str, whole: str) -> int:
    if not text.isdecimal() or not 0 < int(text) < 65536:
        raise ProbeError(f"{where} {whole!r}: the port must be a number from 1 to 65535")
    return int(text)


def make_plan(options: ProbeOptions) -> Plan:
    if options.smart_host:
        endpoint = parse_endpoint(options.smart_host, "--smart-host")
        recipient = None
        if options.target:
            recipient = check_name(options.target, "TARGET (the recipient domain, with --smart-host)")
        label = endpoint.name if endpoint.port is None else f"{endpoint.name}:{endpoint.port}"
        return Plan("smart-host", label, None, endpoint, recipient)
    if not options.target:
        raise ProbeError("nothing to probe: give a TARGET (domain, host or host:port) or --smart-host HOST")
    endpoint = parse_endpoint(options.target, "TARGET")
    if endpoint.port is not None or endpoint.is_ip or options.as_host:
        return Plan("host", options.target.strip(), None, endpoint, None)
    return Plan("domain", endpoint.name, endpoint.name, None, endpoint.name)
