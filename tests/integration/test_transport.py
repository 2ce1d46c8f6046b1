"""The aiohttp transport behind httpx: same answers, and failures mapped by whether the
request can have reached the platform (retry only what certainly did not)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from scheduler_daemon.errors import OutcomeUnknownError, TransientError
from scheduler_daemon.platforms.http import send
from scheduler_daemon.testing.receiver import Receiver, Reply
from scheduler_daemon.transport import AiohttpTransport


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=httpx.Timeout(0.5)) as c:
        yield c


async def raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/"


async def test_request_and_answer_round_trip(client: httpx.AsyncClient) -> None:
    async with Receiver(lambda a: Reply(201, {"id": "x1"}, headers={"X-Rate": "7"})) as rx:
        response = await client.post(rx.url + "/p?q=1", json={"a": "é"}, headers={"Authorization": "Bearer t"})
        [arrival] = rx.arrivals
    assert response.status_code == 201 and response.json() == {"id": "x1"} and response.headers["x-rate"] == "7"
    assert arrival.method == "POST" and arrival.path == "/p?q=1" and arrival.json() == {"a": "é"}
    assert arrival.headers["authorization"] == "Bearer t" and arrival.headers["content-type"] == "application/json"
    assert int(arrival.headers["content-length"]) == len(arrival.body)


async def test_multipart_and_streamed_download(client: httpx.AsyncClient) -> None:
    async with Receiver(lambda a: Reply(200, {"size": len(a.body)})) as rx:
        response = await client.post(rx.url, files={"media": ("a.png", b"\x89PNG" * 1000, "image/png")})
        assert response.json()["size"] > 4000 and b"\x89PNG" in rx.arrivals[0].body
        async with client.stream("GET", rx.url) as streamed:
            assert b"".join([chunk async for chunk in streamed.aiter_bytes()]).startswith(b"{")


async def test_refused_connection_was_not_sent(client: httpx.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    request = client.build_request("POST", f"http://127.0.0.1:{port}/")
    with pytest.raises(TransientError, match="could not connect"):
        await send(client, request, what="test")


async def test_no_answer_is_an_unknown_outcome(client: httpx.AsyncClient) -> None:
    async with Receiver(lambda a: Reply(hang=True)) as rx:
        with pytest.raises(OutcomeUnknownError, match="no answer before the timeout"):
            await send(client, client.build_request("POST", rx.url, json={}), what="test")


async def test_connection_dropped_after_the_request_is_an_unknown_outcome(client: httpx.AsyncClient) -> None:
    got_request = asyncio.Event()

    async def read_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        got_request.set()
        writer.close()

    server, url = await raw_server(read_then_close)
    async with server:
        with pytest.raises(OutcomeUnknownError, match="connection lost"):
            await send(client, client.build_request("POST", url, json={"a": 1}), what="test")
    assert got_request.is_set()


async def test_malformed_answer_is_an_unknown_outcome(client: httpx.AsyncClient) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    server, url = await raw_server(garbage)
    async with server:
        with pytest.raises(OutcomeUnknownError):
            await send(client, client.build_request("GET", url), what="test")
