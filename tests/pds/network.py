"""The reference PDS as a process of the test session, and what tests ask it directly.

``running`` starts ``launcher.mjs`` and waits for its "ready" line (an event on its
standard output, under a deadline); closing its standard input stops it, so it also
ends with the test process however that ends. ``ReferencePds`` speaks plain XRPC to it:
accounts, records, blobs, sessions, and the official client's reading of a text
(``richtext.mjs``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import selectors
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .install import Install

HERE = Path(__file__).resolve().parent
READY_SECONDS = 120.0
POSTS = "app.bsky.feed.post"
_serial = itertools.count(1)


@dataclass(frozen=True)
class Account:
    did: str
    handle: str
    access_jwt: str
    refresh_jwt: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class ReferencePds:
    def __init__(self, install: Install, url: str, service_did: str, jwt_secret: str) -> None:
        self.install = install
        self.url = url
        self.service_did = service_did
        self._jwt_secret = jwt_secret

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"{self.url}/xrpc/", timeout=30.0)

    async def call(self, method: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """A POST (``json=``/``content=``) or, with ``params=``, a GET."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        verb = "GET" if "params" in kwargs else "POST"
        async with self._client() as client:
            return await client.request(verb, method, headers=headers, **kwargs)

    async def create_account(self, name: str) -> Account:
        handle = f"{name}-{next(_serial)}-{uuid.uuid4().hex[:6]}.test"
        response = await self.call(
            "com.atproto.server.createAccount",
            json={"handle": handle, "email": f"{handle}@example.com", "password": f"pw-{uuid.uuid4().hex}"},
        )
        assert response.status_code == 200, response.text
        data = response.json()
        return Account(data["did"], data["handle"], data["accessJwt"], data["refreshJwt"])

    async def get_record(self, did: str, rkey: str) -> dict[str, Any] | None:
        params = {"repo": did, "collection": POSTS, "rkey": rkey}
        response = await self.call("com.atproto.repo.getRecord", params=params)
        if response.status_code == 400 and response.json().get("error") == "RecordNotFound":
            return None
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def list_records(self, did: str) -> list[dict[str, Any]]:
        params = {"repo": did, "collection": POSTS, "limit": "100"}
        response = await self.call("com.atproto.repo.listRecords", params=params)
        assert response.status_code == 200, response.text
        return response.json()["records"]  # type: ignore[no-any-return]

    async def get_blob(self, did: str, cid: str) -> bytes:
        response = await self.call("com.atproto.sync.getBlob", params={"did": did, "cid": cid})
        assert response.status_code == 200, response.text
        return response.content

    async def write(self, account: Account, text: str) -> httpx.Response:
        """A post written straight to the PDS (its own validation, no daemon)."""
        record = {"$type": POSTS, "text": text, "createdAt": "2027-01-01T00:00:00.000Z"}
        return await self.call(
            "com.atproto.repo.createRecord", token=account.access_jwt,
            json={"repo": account.did, "collection": POSTS, "record": record},
        )

    def expired_access_jwt(self, account: Account) -> str:
        """An access JWT of ``account`` signed like the PDS's own, expired a minute ago."""
        now = int(time.time())
        header = _b64(json.dumps({"typ": "at+jwt", "alg": "HS256"}).encode())
        claims = {"scope": "com.atproto.access", "aud": self.service_did, "sub": account.did,
                  "iat": now - 7200, "exp": now - 60}
        signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(self._jwt_secret.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    async def official(self, texts: list[str]) -> list[dict[str, Any]]:
        """For each text, ``{"facets": RichText.detectFacets(...), "graphemes": n}`` from
        @atproto/api (mentions resolved on this PDS) and Intl.Segmenter."""
        proc = await asyncio.create_subprocess_exec(
            str(self.install.node), str(HERE / "richtext.mjs"), str(self.install.modules), self.url,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await proc.communicate(json.dumps(texts).encode())
        assert proc.returncode == 0, err.decode()[-2000:]
        return json.loads(out)  # type: ignore[no-any-return]


@contextmanager
def running(install: Install, log: Path) -> Iterator[ReferencePds]:
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [str(install.node), str(HERE / "launcher.mjs"), str(install.modules)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
        )
    try:
        ready = _ready_line(proc, log)
        yield ReferencePds(install, ready["pds"], ready["service_did"], ready["jwt_secret"])
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the launcher closes the network and exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready_line(proc: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_SECONDS
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if selector.select(left):
                line = proc.stdout.readline()
                if not line:
                    break  # the launcher exited
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("event") == "ready":
                    return event
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the reference PDS did not start:\n{log.read_text(errors='replace')[-3000:]}")
