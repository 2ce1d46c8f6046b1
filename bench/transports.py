"""The HTTP transports the daemon can be given (``Daemon(transport=...)``)."""

from __future__ import annotations

import importlib.util

import httpx

DEFAULT = "httpx-default"
AIOHTTP = "httpx-aiohttp"


def available(name: str) -> bool:
    return name == DEFAULT or (name == AIOHTTP and importlib.util.find_spec("httpx_aiohttp") is not None)


def make(name: str, concurrency: int) -> httpx.AsyncBaseTransport | None:
    """None is the daemon's default (httpx's own pool, limits from the settings)."""
    if name == DEFAULT:
        return None
    if name == AIOHTTP:
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
    raise ValueError(f"unknown transport {name!r}")


def names() -> list[str]:
    return [n for n in (DEFAULT, AIOHTTP) if available(n)]
