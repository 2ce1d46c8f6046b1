"""The HTTP transports the daemon can be given (``Daemon(transport=...)``).

``daemon-default`` passes none: the daemon picks its own (what production runs).
The others are explicit, so their names hold whatever the daemon's default is.
"""

from __future__ import annotations

import importlib.util

import httpx

DAEMON_DEFAULT = "daemon-default"
HTTPX_DEFAULT = "httpx-default"
HTTPX_AIOHTTP = "httpx-aiohttp"
DAEMON_TRANSPORT = "daemon-transport"  # the package's own transport, when it has one


def available(name: str) -> bool:
    if name == HTTPX_AIOHTTP:
        return importlib.util.find_spec("httpx_aiohttp") is not None
    if name == DAEMON_TRANSPORT:
        return importlib.util.find_spec("scheduler_daemon.net.transport") is not None
    return name in (DAEMON_DEFAULT, HTTPX_DEFAULT)


def make(name: str, concurrency: int) -> httpx.AsyncBaseTransport | None:
    """The transport called ``name``; None for the daemon's own choice."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if name == DAEMON_DEFAULT:
        return None
    if name == HTTPX_DEFAULT:
        return httpx.AsyncHTTPTransport(limits=limits)
    if name == HTTPX_AIOHTTP:
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits)
    if name == DAEMON_TRANSPORT:
        import ipaddress

        import scheduler_daemon.net.transport as own
        from scheduler_daemon.net.guard import Guard

        guard = Guard((ipaddress.ip_network("127.0.0.1/32"),))  # the receiver
        made: httpx.AsyncBaseTransport = own.AiohttpTransport(max_connections=concurrency, guard=guard)
        return made
    raise ValueError(f"unknown transport {name!r}")


def daemon_variants() -> list[str]:
    return [n for n in (DAEMON_DEFAULT, HTTPX_DEFAULT, HTTPX_AIOHTTP) if available(n)]


def bare_variants() -> list[str]:
    """httpx clients for the bare comparison (plain aiohttp is measured besides)."""
    return [n for n in (HTTPX_DEFAULT, HTTPX_AIOHTTP, DAEMON_TRANSPORT) if available(n)]


def class_name(transport: object) -> str:
    return f"{type(transport).__module__}.{type(transport).__name__}"
