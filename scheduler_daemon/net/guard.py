"""The outbound guard: which addresses a request may connect to.

Tenants choose many of the URLs the daemon calls: webhook ``metadata.url``, media
``url``s, Mastodon ``instance_url``, Bluesky ``pds_url``, the hops a media download is
redirected through, upload URLs a platform's answer names. The transport asks a ``Guard``
before every new connection:

* a host and port the operator configured (``SCHEDULER_<P>_API_BASE``, ``SUPABASE_URL``)
  is trusted as configured: not checked;
* anything else is checked address by address, for every address the host resolves to
  (or the IP literal itself):

  - inside a network of ``SCHEDULER_ALLOW_NETWORKS``: allowed, on any port;
  - an address in a special-purpose range (``refusal``: loopback, private, link-local,
    CGNAT, multicast, reserved, unspecified, documentation, benchmarking, and their
    IPv4-mapped, NAT64 and 6to4 forms): refused;
  - a port other than 80 and 443: refused;
  - otherwise allowed.

The transport connects only to the addresses that passed, the very ones it checked: it
resolves a host once per connection and never again, so a second DNS answer cannot point
the connection elsewhere (DNS rebinding). When no address passes, ``AddressNotAllowedError``
ends the publish as a draft with a message naming ``SCHEDULER_ALLOW_NETWORKS``, and no
byte has left.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config.env import Network
from ..errors import AddressNotAllowedError

__all__ = ["Address", "Guard", "Network", "refusal"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SETTING = "SCHEDULER_ALLOW_NETWORKS"
PORTS = frozenset({80, 443})


def _table(*rows: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(net), what) for net, what in rows)


# IANA's IPv4 and IPv6 special-purpose registries, plus multicast and the reserved blocks:
# every range here is refused whatever the Python version's ``is_global`` says.
_IPV4 = _table(
    ("0.0.0.0/8", "unspecified"),  # "this network"; 0.0.0.0 reaches the host itself
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),  # the cloud metadata service lives at 169.254.169.254
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # with 255.255.255.255, the broadcast address
)
_IPV6 = _table(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved (IPv4-compatible)"),  # deprecated; never routed
    ("64:ff9b:1::/48", "private (local-use NAT64)"),
    ("100::/64", "reserved (discard-only)"),
    ("2001::/23", "reserved (IETF protocol assignments)"),  # Teredo 2001::/32 among them
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved (site-local)"),
    ("ff00::/8", "multicast"),
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # the only IPv6 space allocated for use
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix: the low 32 bits are IPv4
_6TO4 = ipaddress.IPv6Network("2002::/16")  # bits 16..48 are the IPv4 address


def refusal(address: Address) -> str | None:
    """What makes ``address`` unfit as a public destination, or None if it is public.

    An IPv6 address that embeds an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
    ``64:ff9b::a.b.c.d``, 6to4 ``2002:aabb:ccdd::``) reaches that IPv4 address, and is
    judged by it.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal(embedded)
            return None if reason is None else f"{reason}, embedded as IPv4 {embedded}"
        for network, what in _IPV6:
            if address in network:
                return what
        if address not in _GLOBAL_UNICAST:
            return "reserved"
    else:
        for network, what in _IPV4:
            if address in network:
                return what
    # The standard library's view as a second opinion (it may know a newer range).
    return None if address.is_global else "reserved"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _6TO4:
        return address.sixtofour
    return None


def _canonical(address: Address) -> Address:
    """An IPv4-mapped IPv6 address is its IPv4 address (a socket connects to that)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Guard:
    """The outbound rules for one daemon: allowed networks and the configured origins."""

    allow: tuple[Network, ...] = ()
    # (host, port) pairs of URLs the operator configured; hosts in lower case.
    trusted: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def build(cls, allow: Iterable[Network], configured_urls: Iterable[str | None]) -> Guard:
        import httpx  # only to parse the URLs exactly as requests to them will be parsed

        origins = set()
        for url in configured_urls:
            if url:
                parsed = httpx.URL(url)
                host = parsed.raw_host.decode("ascii")  # IDNA-encoded, as the resolver sees it
                origins.add((host, parsed.port or (443 if parsed.scheme == "https" else 80)))
        return cls(tuple(allow), frozenset(origins))

    def trusts(self, host: str, port: int) -> bool:
        return (host.lower(), port) in self.trusted

    def verdict(self, address: Address, port: int) -> str | None:
        """Why a connection to ``address``:``port`` is refused, or None if it may be made."""
        address = _canonical(address)
        if any(address in network for network in self.allow):
            return None
        reason = refusal(address)
        if reason is not None:
            return reason
        if port not in PORTS:
            return f"port {port}"
        return None

    def refuse(self, host: str, port: int, reason: str) -> AddressNotAllowedError:
        target = host if port in PORTS else f"{host}:{port}"
        return AddressNotAllowedError(
            f"{target[:120]} is not an allowed address ({reason}): requests go only to public addresses "
            f"on ports 80 and 443, unless the operator allows the network in {SETTING}"
        )

    def check_literal(self, host: str, port: int) -> bool:
        """For an IP-literal host: raise unless it may be connected to, and return True.
        For a name: False (its addresses are checked as it is resolved, by ``resolved``)."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            # Numeric yet not a canonical address ("127.1", "2130706433"): the socket layer
            # would read it as some address, so it is never treated as a name.
            if ":" in host or host.replace(".", "").isdigit():
                raise self.refuse(host, port, "not a canonical IP address") from None
            return False
        reason = self.verdict(address, port)
        if reason is not None:
            raise self.refuse(host, port, reason)
        return True

    def resolved(self, host: str, port: int, addresses: Iterable[str]) -> list[str]:
        """The addresses ``host`` resolved to that may be connected to; raises if none."""
        allowed, first_reason = [], None
        for text in addresses:
            reason = self.verdict(ipaddress.ip_address(text), port)
            if reason is None:
                allowed.append(text)
            elif first_reason is None:
                first_reason = reason
        if not allowed:
            raise self.refuse(host, port, first_reason or "it resolves to no address")
        return allowed
