"""The machinery every platform's fake shares (one module per platform beside this one).

The fakes work at the httpx transport.

Each fake checks method, path, headers and body of what the adapter sends (an
``AssertionError`` inside the handler fails the test) and answers with the documented
success and error bodies. Shared behaviour:

* ``valid_token``: the token the platform accepts now. Another token gets the
  platform's "expired" answer (or its auth failure where nothing can be refreshed);
  ``revoked = True`` makes every call, refresh included, answer the auth failure.
* ``fail``: failure kinds consumed by the publishing call: ``rate``, ``transient``,
  ``content``, ``config`` answer the documented error and publish nothing. The kinds in
  ``AFTER_COMMIT`` publish and then fail the answer, the failure that hurts most:
  ``unknown`` raises ``httpx.ReadTimeout`` (the answer is lost), ``reset`` drops the
  connection (``httpx.RemoteProtocolError``), ``committed-5xx`` answers the platform's
  own 5xx (its ``transient`` answer), as a gateway does after the backend committed.
* ``fail_at``: path fragment → failure kinds played by the first requests whose path
  contains it, before they do anything (uploads, containers): ``transient`` answers the
  platform's 5xx, ``timeout`` raises ``httpx.ReadTimeout``.
* ``posts``: what the platform really published; ``media_refs``: what it received as
  media (bytes, or the URL it was told to fetch).
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..context import IMAGE, IMAGE_URL

__all__ = ["AFTER_COMMIT", "IMAGE", "IMAGE_URL", "Fake", "Published", "bearer", "body", "form", "jwt", "reply"]


@dataclass
class Published:
    text: str
    media: list[Any] = field(default_factory=list)


def form(request: httpx.Request) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.content.decode()))


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def bearer(request: httpx.Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


def reply(status: int, data: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    if data is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=data, headers=headers)


_jti = iter(range(1, 1_000_000))


def jwt(exp: float) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'exp': int(exp), 'jti': next(_jti), 'scope': 'com.atproto.access'})}.c2ln"


AFTER_COMMIT = ("unknown", "reset", "committed-5xx")


class Fake:
    name = ""
    refreshable = False

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.fail: list[str] = []
        self.valid_token = "good-token"
        self.revoked = False
        self.refresh_calls = 0
        self.publish_calls = 0
        self.posts: list[Published] = []
        self.media_refs: list[Any] = []
        self.fail_at: dict[str, list[str]] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        for fragment, kinds in self.fail_at.items():
            if kinds and fragment in request.url.path:
                if kinds.pop(0) == "timeout":
                    raise httpx.ReadTimeout("timed out", request=request)
                return self.error("transient")
        return await self.route(request)

    async def route(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def error(self, kind: str) -> httpx.Response:
        raise NotImplementedError

    def token_error(self, token: str | None) -> httpx.Response | None:
        if self.revoked:
            return self.error("auth")
        if token != self.valid_token:
            return self.error("expired" if self.refreshable else "auth")
        return None

    def gate(self, request: httpx.Request) -> str | None:
        """At the publishing call: the failure to play, if any (``AFTER_COMMIT`` ones are
        played after publishing; ``refused`` fails to connect: the request never arrived)."""
        kind = self.fail.pop(0) if self.fail else None
        if kind == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        self.publish_calls += 1
        return kind

    def commit_then(self, kind: str | None, request: httpx.Request, answer: httpx.Response) -> httpx.Response:
        """The answer to a publish the platform has committed, as ``kind`` spoils it."""
        if kind == "unknown":
            raise httpx.ReadTimeout("timed out", request=request)
        if kind == "reset":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if kind == "committed-5xx":
            return self.error("transient")
        return answer

    async def new_tokens(self) -> str:
        for _ in range(3):  # let a concurrent publish reach the row lock meanwhile
            await asyncio.sleep(0)
        self.refresh_calls += 1
        self.valid_token = f"fresh-{self.refresh_calls}"
        return self.valid_token
