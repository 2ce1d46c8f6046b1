"""A fake's transport that notes how each request's body was handed to httpx: bytes held in
memory (``httpx.ByteStream``) or a stream read chunk by chunk as it is sent (a spooled
video). MockTransport reads every body before its handler runs, so this looks first."""

from __future__ import annotations

import httpx

from .fakes.base import Fake


class StreamNoting(httpx.AsyncBaseTransport):
    def __init__(self, fake: Fake) -> None:
        self.fake = fake
        self.streamed: dict[str, bool] = {}  # request URL → its body was a stream

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.streamed[str(request.url)] = not isinstance(request.stream, httpx.ByteStream)
        return await self.fake.transport().handle_async_request(request)
