"""The aiohttp transport behind httpx: same answers; failures mapped by whether the
request can have reached the platform (retry only what certainly did not); the outbound
guard at every connection; a total deadline; a size cap on the decoded answer."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from scheduler_daemon.errors import AddressNotAllowedError, OutcomeUnknownError, TransientError
from scheduler_daemon.net.guard import Guard
from scheduler_daemon.net.transport import MAX_BYTES, AiohttpTransport, ResponseTooLarge
from scheduler_daemon.platforms._http import body_excerpt, excerpt, send
from scheduler_daemon.testing.receiver import Receiver, Reply

LOCAL = Guard((ipaddress.ip_network("127.0.0.1/32"),))  # the test servers' host, and no other


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=AiohttpTransport(guard=LOCAL), timeout=httpx.Timeout(0.5)) as c:
        yield c


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def raw_server(handle: Handler, host: str = "127.0.0.1") -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handle, host, 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


async def answer(writer: asyncio.StreamWriter, head: bytes, body: bytes = b"") -> None:
    writer.write(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + body)
    await writer.drain()


async def test_request_and_answer_round_trip(client: httpx.AsyncClient) -> None:
    async with Receiver(lambda a: Reply(201, {"id": "x1"}, headers={"X-Rate": "7"})) as rx:
        response = await client.post(rx.url + "/p?q=1", json={"a": "é"}, headers={"Authorization": "Bearer t"})
        [arrival] = rx.arrivals
    assert response.status_code == 201 and response.json() == {"id": "x1"} and response.headers["x-rate"] == "7"
    assert arrival.method == "POST" and arrival.path == "/p?q=1" and arrival.json() == {"a": "é"}
    assert arrival.headers["authorization"] == "Bearer t" and arrival.headers["content-type"] == "application/json"
    assert int(arrival.headers["content-length"]) == len(arrival.body)
    assert arrival.headers["accept-encoding"] == "gzip, deflate"  # what the transport itself decodes


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


# -- the guard at the connection ---------------------------------------------------------


class Counting:
    """A raw server that counts connections (a request that never connects counts 0)."""

    def __init__(self) -> None:
        self.connections = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        await answer(writer, b"Content-Length: 2\r\n", b"ok")
        writer.close()


@pytest.mark.parametrize("host", ["127.0.0.2", "::1"])
async def test_a_refused_literal_never_connects(client: httpx.AsyncClient, host: str) -> None:
    target = Counting()
    server, url = await raw_server(target, host)
    async with server:
        with pytest.raises(AddressNotAllowedError, match=r"test: .* is not an allowed address \(loopback\)"):
            await send(client, client.build_request("POST", url), what="test")
    assert target.connections == 0


async def test_a_name_connects_only_to_the_addresses_that_passed(client: httpx.AsyncClient) -> None:
    """localhost resolves to ::1 and 127.0.0.1: only 127.0.0.1 is allowed, and used."""
    v4, v6 = Counting(), Counting()
    server4, url = await raw_server(v4, "127.0.0.1")
    port = int(url.rsplit(":", 1)[1].strip("/"))
    server6 = await asyncio.start_server(v6, "::1", port)  # the same port on the other family
    async with server4, server6:
        for _ in range(3):
            response = await client.get(f"http://localhost:{port}/")
            assert response.text == "ok"
    assert v4.connections == 3 and v6.connections == 0


class Rebinding:
    """A DNS that answers an allowed address first and a refused one afterwards."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:  # type: ignore[type-arg]
        address = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


async def test_a_name_resolving_to_a_refused_address_is_refused_before_connecting() -> None:
    target = Counting()
    server, url = await raw_server(target, "127.0.0.2")
    port = int(url.rsplit(":", 1)[1].strip("/"))
    dns = Rebinding("127.0.0.2")
    async with server, httpx.AsyncClient(transport=AiohttpTransport(guard=LOCAL, resolver=dns)) as c:
        with pytest.raises(AddressNotAllowedError, match=r"hooks\.test:\d+ is not an allowed address \(loopback\)"):
            await send(c, c.build_request("POST", f"http://hooks.test:{port}/"), what="test")
    assert target.connections == 0 and dns.asked == 1


async def test_a_configured_origin_is_trusted_as_configured() -> None:
    target = Counting()
    server, url = await raw_server(target, "127.0.0.2")
    guard = Guard.build((), [url.rstrip("/")])  # as SCHEDULER_<P>_API_BASE=http://127.0.0.2:<port>
    async with server, httpx.AsyncClient(transport=AiohttpTransport(guard=guard)) as c:
        assert (await c.get(url + "api")).text == "ok"
        other_port = int(url.rsplit(":", 1)[1].strip("/")) + 1
        with pytest.raises(AddressNotAllowedError):
            await c.get(f"http://127.0.0.2:{other_port}/")  # only that origin
    assert target.connections == 1


# -- the deadline ------------------------------------------------------------------------


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A valid answer, one byte of body every 0.1 s: each read is quick, the whole is not."""
    await reader.readuntil(b"\r\n\r\n")
    await answer(writer, b"Content-Length: 1000\r\n")
    try:
        for _ in range(1000):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.1)
    except ConnectionError:
        pass


async def slow_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    try:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)
    except ConnectionError:
        pass


@pytest.mark.parametrize("handler", [trickle, slow_headers])
async def test_a_trickling_answer_ends_at_the_deadline(client: httpx.AsyncClient, handler: Handler) -> None:
    server, url = await raw_server(handler)
    async with server:
        began = time.monotonic()
        with pytest.raises(OutcomeUnknownError, match="no answer before the timeout"):
            await send(client, client.build_request("POST", url, json={}), what="test")
        spent = time.monotonic() - began
    assert 0.45 <= spent < 1.5, f"the 0.5 s deadline ended the request after {spent:.2f} s"


async def test_the_deadline_before_a_connection_means_not_sent() -> None:
    """The pool's only connection is busy: the second request never gets one, and its
    deadline (no separate pool timeout here) passes while it waits: it was not sent."""
    async with Receiver(lambda a: Reply(hang=True)) as rx, httpx.AsyncClient(
        transport=AiohttpTransport(guard=LOCAL, max_connections=1), timeout=httpx.Timeout(0.5, pool=None)
    ) as c:
        # The first request has a deadline of its own far beyond the second's, so its
        # connection stays busy however slowly this machine runs.
        first = asyncio.ensure_future(c.post(rx.url, json={}, timeout=httpx.Timeout(60)))
        await rx.wait_for(1)
        with pytest.raises(TransientError, match=r"could not connect \(ConnectTimeout\)"):
            await send(c, c.build_request("POST", rx.url, json={}), what="second")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    assert len(rx.arrivals) == 1


# -- the size cap ------------------------------------------------------------------------


async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A chunked answer that never ends, and declares no length."""
    await reader.readuntil(b"\r\n\r\n")
    await answer(writer, b"Transfer-Encoding: chunked\r\n")
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"z" * 64 * 1024)
    try:
        while True:
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass


async def test_an_answer_past_the_cap_stops_being_read(client: httpx.AsyncClient) -> None:
    server, url = await raw_server(endless)
    async with server:
        with pytest.raises(OutcomeUnknownError, match="answer is larger than 1048576 bytes"):
            await send(client, client.build_request("POST", url, json={}), what="test")
        async with client.stream("GET", url, extensions={MAX_BYTES: 200_000}) as response:
            got = 0
            with pytest.raises(ResponseTooLarge):
                async for chunk in response.aiter_bytes():
                    got += len(chunk)
        assert got <= 200_000


async def test_a_declared_length_past_the_cap_is_refused_before_reading(client: httpx.AsyncClient) -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await answer(writer, b"Content-Length: 300000000\r\n", b"x" * 1000)
        await asyncio.sleep(5)

    server, url = await raw_server(huge)
    async with server:
        began = time.monotonic()
        with pytest.raises(OutcomeUnknownError, match="larger than 1048576"):
            await send(client, client.build_request("GET", url), what="test")
        assert time.monotonic() - began < 0.4


async def test_a_compressed_answer_is_capped_by_its_decoded_size(client: httpx.AsyncClient) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in about 64 KiB
    small = gzip.compress(b'{"id": "z1"}')

    def handler(body: bytes) -> Handler:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await answer(writer, b"Content-Encoding: gzip\r\nContent-Length: %d\r\n" % len(body), body)
            writer.close()
        return serve

    server, url = await raw_server(handler(small))
    async with server:
        response = await client.get(url)
        assert response.json() == {"id": "z1"} and "content-encoding" not in response.headers
    server, url = await raw_server(handler(bomb))
    async with server:
        assert len(bomb) < 1024 * 1024
        with pytest.raises(OutcomeUnknownError, match="larger than 1048576"):
            await send(client, client.build_request("GET", url), what="test")


# -- what an answer may put in a message -----------------------------------------------


def test_an_excerpt_is_short_and_printable() -> None:
    hostile = "Error\r\nSet-Cookie: a=b\x1b[31m red \u202egnp.exe\u200b\x00 " + "x" * 5000
    text = excerpt(hostile)
    assert text.startswith("Error Set-Cookie: a=b [31m red gnp.exe ") and text.endswith("…")
    assert len(text) <= 201 and text.isprintable() and "\n" not in text
    assert excerpt("  fine\n\tanswer ") == "fine answer"


def test_a_body_excerpt_never_holds_headers() -> None:
    response = httpx.Response(422, headers={"X-Secret": "hdr-value"}, content=b"bad\x07 input")
    assert body_excerpt(response) == "bad input"
