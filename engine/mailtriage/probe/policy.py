"""Which addresses and ports a probe may connect to.

The command line may reach anything its user can. A service that probes on behalf of others (an
HTTP API, a helpdesk tool) must not become a way into its own network: it passes a policy that
refuses loopback, private, link-local and cloud-metadata addresses. The policy is checked on
the address each host name *resolved to*, and the probe then connects to that very address
(no second lookup), so a name that resolves to 127.0.0.1, or re-resolves differently (DNS
rebinding), cannot get past it. IPv4 addresses embedded in IPv6 (`::ffff:127.0.0.1`, NAT64,
6to4) are judged as the IPv4 address they carry.

The policy covers the SMTP connections; a service should not let its users choose the DNS
server (`nameserver`) or the CA file either.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressClass(enum.Enum):
    """What kind of address a resolved address is (the first that applies, in this order)."""

    METADATA = "metadata"  # cloud instance metadata services
    LOOPBACK = "loopback"
    LINK_LOCAL = "link-local"
    PRIVATE = "private"  # RFC 1918, unique local IPv6, shared address space (CGNAT)
    RESERVED = "reserved"  # unspecified, multicast, broadcast, reserved, documentation ranges
    PUBLIC = "public"


# Instance metadata endpoints of the big clouds (AWS, GCP, Azure, OpenStack: 169.254.169.254;
# AWS IPv6: fd00:ec2::254; AWS ECS task metadata: 169.254.170.2; Alibaba: 100.100.100.200).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def classify(address: str | IPAddress) -> AddressClass:
    """The class of an IP address (text or object); ValueError for something else."""
    ip = embedded_ipv4(ipaddress.ip_address(address) if isinstance(address, str) else address)
    if ip in METADATA_ADDRESSES:
        return AddressClass.METADATA
    if ip.is_loopback:
        return AddressClass.LOOPBACK
    if ip.is_link_local:
        return AddressClass.LINK_LOCAL
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved or (isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255")):
        return AddressClass.RESERVED
    if ip in _SHARED or (ip.is_private and not ip.is_global):
        # is_private also covers the documentation ranges; they are not routable either way.
        return AddressClass.PRIVATE
    return AddressClass.PUBLIC


@dataclass(frozen=True)
class ProbePolicy:
    """The address classes and ports a probe may connect to. The default allows everything (the
    command line's behaviour); `ProbePolicy.public_only()` is what a service should use."""

    allowed_classes: frozenset[AddressClass] = field(default_factory=lambda: frozenset(AddressClass))
    allowed_ports: frozenset[int] | None = None  # None: any port

    @classmethod
    def public_only(cls, ports: frozenset[int] | None = frozenset({25, 465, 587})) -> ProbePolicy:
        """Public addresses only, on the SMTP ports (25, 465, 587) unless `ports` says otherwise."""
        return cls(frozenset({AddressClass.PUBLIC}), ports)

    def refusal(self, address: str, port: int) -> str | None:
        """Why connecting to `address`:`port` is not allowed, or None when it is."""
        try:
            kind = classify(address)
        except ValueError:
            return f"{address} is not an IP address"
        if kind not in self.allowed_classes:
            return f"{address} is a {kind.value} address, which this probe's policy does not allow"
        if self.allowed_ports is not None and port not in self.allowed_ports:
            allowed = ", ".join(str(p) for p in sorted(self.allowed_ports))
            return f"port {port} is not allowed by this probe's policy (allowed: {allowed})"
        return None

    def to_dict(self) -> dict[str, object]:
        return {
            "allowed_classes": sorted(c.value for c in self.allowed_classes),
            "allowed_ports": sorted(self.allowed_ports) if self.allowed_ports is not None else None,
        }


ALLOW_ALL = ProbePolicy()
