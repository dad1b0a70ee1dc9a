"""Keep `POST /v1/probe` from becoming an SSRF proxy.

- Only names on the allow list (or below one) may be probed; IP literals never.
- Ports: 25, 465 and 587 unless the operator's policy says otherwise.
- Addresses are checked *after* resolution, at connect time, on the very address the socket then
  connects to: the probe resolves each name once (dnspython) and hands the address to our
  connect function, so a DNS server that answers differently on a second lookup (DNS rebinding)
  gains nothing; there is no second lookup.
- Refused address classes: loopback, private, link-local (and with it the cloud metadata address
  169.254.169.254), shared/CGNAT, multicast, reserved, unspecified, documentation, and anything
  else that is not globally routable, including IPv4 inside IPv6 (mapped, 6to4, Teredo).
- Per-client rate limit (a sliding window) and a cap on probes running at once.

`AddressPolicy` is the part the probe library is getting its own of (`mailtriage.probe.policy.
ProbePolicy`, branch hardsec, not on main when this was written). Once it lands, `refusal` can
delegate the class test to `probe.policy.classify` and the route can also pass
`policy=ProbePolicy.public_only(...)` to `run_probe`; keep this connector on top for the
operator's `allowed_networks` exceptions (the library's policy allows whole classes only, and the
tests need 127.0.0.1 allowed while 127.0.0.2 stays refused).
"""

from __future__ import annotations

import collections
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field

from ..errors import MailtriageError
from ..probe.smtp import ConnectFunction

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Metadata services that sit on otherwise routable-looking addresses (named for the message).
_METADATA = {
    ipaddress.ip_address("169.254.169.254"): "cloud metadata service",
    ipaddress.ip_address("100.100.100.200"): "cloud metadata service",
    ipaddress.ip_address("fd00:ec2::254"): "cloud metadata service",
}


class ProbeRefused(MailtriageError):
    """The probe may not go there (a name not allowed, a port, an address class)."""


class AddressRefused(ConnectionRefusedError):
    """Raised by the guarded connect function: an OSError, so the probe stops on that address."""


@dataclass(frozen=True)
class AddressPolicy:
    allowed_ports: frozenset[int] = frozenset({25, 465, 587})
    allowed_networks: tuple[IPNetwork, ...] = ()  # exceptions to the refused classes

    def refusal(self, address: str, port: int) -> str | None:
        """Why connecting to address:port is refused, or None when it is allowed."""
        if port not in self.allowed_ports:
            return f"port {port} is not allowed (allowed: {', '.join(str(p) for p in sorted(self.allowed_ports))})"
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return f"{address!r} is not an IP address"
        if any(ip in network for network in self.allowed_networks):
            return None
        return address_class_refusal(ip)

    def connector(self, refused: list[str]) -> ConnectFunction:
        """A connect function that checks the address it is given and then connects to exactly
        that address (numeric, no lookup); refusals are appended to `refused`."""

        def connect(target: tuple[str, int], timeout: float) -> socket.socket:
            address, port = target
            reason = self.refusal(address, port)
            if reason is not None:
                refused.append(f"{address} port {port}: {reason}")
                raise AddressRefused(f"refused by the service's probe policy: {reason}")
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            info = socket.getaddrinfo(address, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(info[0][4])
            except BaseException:
                sock.close()
                raise
            return sock

        return connect


def address_class_refusal(ip: IPAddress) -> str | None:
    if ip in _METADATA:
        return f"{ip} is a {_METADATA[ip]}"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            why = address_class_refusal(inner)
            return f"{ip} carries {inner}: {why}" if why else None
    for test, label in (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
    ):
        if test:
            return f"{ip} is a {label} address"
    if not ip.is_global:
        return f"{ip} is not a globally routable address"
    return None


def check_target_name(name: str, allowed_domains: list[str], where: str) -> str:
    """The name, lower-cased without the final dot, if it is an allowed domain or below one."""
    from ..probe.target import is_ip

    value = name.strip().rstrip(".").lower()
    host = value
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if is_ip(host):
        raise ProbeRefused(f"{where} {name!r}: IP addresses cannot be probed through the service; use an allowed name")
    for domain in allowed_domains:
        domain = domain.strip().rstrip(".").lower()
        if host == domain or host.endswith("." + domain):
            return value
    raise ProbeRefused(f"{where} {name!r} is not on the service's probe allow list")


@dataclass
class RateLimiter:
    """At most `per_minute` starts per client in any 60-second window; remembers at most
    `max_clients` clients (the oldest forgotten first), so it cannot grow without bound."""

    per_minute: int
    max_clients: int = 10_000
    _seen: collections.OrderedDict[str, collections.deque[float]] = field(default_factory=collections.OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, client: str, now: float | None = None) -> float:
        """0 when `client` may start now (and counts the start); otherwise seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            starts = self._seen.pop(client, None) or collections.deque()
            while starts and now - starts[0] >= 60.0:
                starts.popleft()
            wait = 0.0
            if len(starts) >= self.per_minute:
                wait = 60.0 - (now - starts[0])
            else:
                starts.append(now)
            self._seen[client] = starts
            while len(self._seen) > self.max_clients:
                self._seen.popitem(last=False)
            return wait


@dataclass
class ConcurrencyCap:
    limit: int
    running: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def try_enter(self) -> bool:
        with self._lock:
            if self.running >= self.limit:
                return False
            self.running += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.running -= 1
