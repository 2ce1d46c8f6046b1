"""The outbound guard as pure functions: explicit addresses, ports, allowed networks,
configured origins, and SCHEDULER_ALLOW_NETWORKS as the daemon reads it."""

from __future__ import annotations

import ipaddress

import pytest

from scheduler_daemon.config import Settings
from scheduler_daemon.errors import AddressNotAllowedError, ConfigError, PlatformConfigError
from scheduler_daemon.net.guard import Guard, refusal

REFUSED = [
    # IPv4
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("127.0.0.1", "loopback"),
    ("127.0.0.2", "loopback"),
    ("127.255.255.255", "loopback"),
    ("169.254.169.254", "link-local"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.10", "documentation"),
    ("192.88.99.1", "6to4 relay"),
    ("192.168.1.1", "private"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::7f00:1", "IPv4-compatible"),  # ::127.0.0.1
    ("::808:808", "IPv4-compatible"),  # ::8.8.8.8: deprecated, never routed
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:7f00:2", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.1.2.3", "private"),
    ("::ffff:0:0", "unspecified"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("64:ff9b:1::1", "local-use NAT64"),
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::", "link-local"),
    ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
    ("100::1", "discard-only"),
    ("2001::1", "IETF"),  # Teredo
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "IETF"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local"),
    ("fe80::1", "link-local"),
    ("fe80::1%lo", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("::ffff:0:7f00:1", "reserved"),  # IPv4-translated (RFC 2765): outside 2000::/3
    ("4000::1", "reserved"),
    ("5f00::1", "reserved"),  # SRv6 SIDs
]
PUBLIC = [
    "1.1.1.1", "8.8.8.8", "93.184.216.34", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0",
    "192.0.3.1", "192.169.0.1", "198.17.255.255", "198.20.0.0", "223.255.255.255",
    "2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001:81b::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_special_addresses_are_refused(address: str, reason: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None and reason in found, (address, found)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_only_ports_80_and_443_outside_the_allowed_networks() -> None:
    guard = Guard()
    public = ipaddress.ip_address("93.184.216.34")
    assert guard.verdict(public, 443) is None and guard.verdict(public, 80) is None
    for port in (22, 8080, 8443, 6379, 1):
        assert guard.verdict(public, port) == f"port {port}"
    assert guard.verdict(ipaddress.ip_address("127.0.0.1"), 443) == "loopback"


def test_an_allowed_network_lifts_both_rules_inside_it_only() -> None:
    guard = Guard(tuple(map(ipaddress.ip_network, ("10.20.0.0/16", "127.0.0.1/32", "fd00:1::/64"))))
    for address in ("10.20.3.4", "127.0.0.1", "::ffff:127.0.0.1", "fd00:1::5"):
        assert guard.verdict(ipaddress.ip_address(address), 6379) is None, address
    for address, reason in (("10.21.0.1", "private"), ("127.0.0.2", "loopback"), ("::1", "loopback"),
                            ("fd00:2::5", "unique local"), ("169.254.169.254", "link-local")):
        found = guard.verdict(ipaddress.ip_address(address), 443)
        assert found is not None and reason in found, address
    assert guard.verdict(ipaddress.ip_address("93.184.216.34"), 8080) == "port 8080"


def test_resolved_addresses_are_filtered_and_all_refused_raises() -> None:
    guard = Guard((ipaddress.ip_network("127.0.0.1/32"),))
    assert guard.resolved("localhost", 8000, ["::1", "127.0.0.1"]) == ["127.0.0.1"]
    assert guard.resolved("cdn.test", 443, ["10.0.0.1", "93.184.216.34"]) == ["93.184.216.34"]
    with pytest.raises(AddressNotAllowedError) as refused:
        guard.resolved("metadata.internal", 80, ["169.254.169.254", "fd00::1"])
    message = str(refused.value)
    assert "metadata.internal is not an allowed address (link-local)" in message
    assert "SCHEDULER_ALLOW_NETWORKS" in message
    assert isinstance(refused.value, PlatformConfigError)  # the post goes back to draft
    with pytest.raises(AddressNotAllowedError, match=r"hook\.test:8080 .*\(port 8080\)"):
        guard.resolved("hook.test", 8080, ["93.184.216.34"])


@pytest.mark.parametrize("host", ["127.0.0.2", "::1", "169.254.169.254", "::ffff:127.0.0.1", "0.0.0.0", "fe80::1"])
def test_ip_literals_are_checked_as_they_are(host: str) -> None:
    with pytest.raises(AddressNotAllowedError, match="not an allowed address"):
        Guard().check_literal(host, 80)


@pytest.mark.parametrize("host", ["127.1", "2130706433", "017700000001", "0177.0.0.1", "1.2.3.4.5", "::zz"])
def test_numeric_hosts_that_are_no_canonical_address_are_refused(host: str) -> None:
    with pytest.raises(AddressNotAllowedError, match="not a canonical IP address"):
        Guard().check_literal(host, 80)


def test_names_are_left_to_the_resolver_and_public_literals_pass() -> None:
    assert Guard().check_literal("hooks.example.com", 443) is False
    assert Guard().check_literal("93.184.216.34", 443) is True
    assert Guard().check_literal("2606:4700:4700::1111", 80) is True


def test_configured_origins_are_trusted_exactly() -> None:
    guard = Guard.build((), ["http://127.0.0.1:8081/api", "https://Storage.Example.test", None])
    assert guard.trusts("127.0.0.1", 8081) and guard.trusts("storage.example.test", 443)
    assert not guard.trusts("127.0.0.1", 8082) and not guard.trusts("storage.example.test", 80)
    assert not guard.trusts("127.0.0.2", 8081)


def test_allow_networks_setting() -> None:
    assert Settings.from_env({}).allow_networks == ()
    settings = Settings.from_env({"SCHEDULER_ALLOW_NETWORKS": " 10.0.0.0/8,192.168.5.7 , fd00::/8,"})
    assert [str(n) for n in settings.allow_networks] == ["10.0.0.0/8", "192.168.5.7/32", "fd00::/8"]


@pytest.mark.parametrize("raw", ["10.0.0.1/8", "localhost", "10.0.0.0/33", "10.0.0.0/8;11.0.0.0/8", "*"])
def test_a_malformed_allow_networks_is_a_config_error_naming_it(raw: str) -> None:
    with pytest.raises(ConfigError, match="SCHEDULER_ALLOW_NETWORKS"):
        Settings.from_env({"SCHEDULER_ALLOW_NETWORKS": raw})


def test_attempt_timeout_default_follows_the_poll_timeout_and_request_deadline() -> None:
    assert Settings.from_env({}).attempt_timeout_seconds == 120 + 6 * 30
    derived = Settings.from_env({"SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS": "60", "SCHEDULER_HTTP_TIMEOUT_SECONDS": "10"})
    assert derived.attempt_timeout_seconds == 60 + 6 * 10
    assert Settings.from_env({"SCHEDULER_ATTEMPT_TIMEOUT_SECONDS": "45"}).attempt_timeout_seconds == 45
    with pytest.raises(ConfigError, match="SCHEDULER_ATTEMPT_TIMEOUT_SECONDS"):
        Settings.from_env({"SCHEDULER_ATTEMPT_TIMEOUT_SECONDS": "0"})
