"""Bluesky against the reference PDS: rows scheduled with plain SQL, published by the real
daemon on a real PostgreSQL, and checked on the PDS itself (getRecord, listRecords,
getBlob) — never on what the daemon says it did.

* rich text: facets equal what @atproto/api's ``RichText.detectFacets`` makes of the same
  text (mentions resolved on the PDS; an unknown handle stays plain text);
* link cards from Open Graph tags, images with alt text and identical bytes;
* graphemes: our count against the PDS's verdict at the 300 boundary, for scripts and
  emoji sequences; 200 × क्ष published, ``a‍😀`` × 200 refused before any call;
* an expired access token: one refresh, the rotated pair stored;
* a revoked session: one "reconnect" message carrying the PDS's reason;
* SIGKILL while the PDS's answer to ``putRecord`` is held: exactly one record, untouched;
* a late post's ``createdAt`` is its send time.

The in-process daemon's network is ``Web``: the PDS on 127.0.0.1 for real, through the
daemon's own guarded transport, which reaches it because the tests' settings allow
127.0.0.1/32 (``SCHEDULER_ALLOW_NETWORKS``); every other host is answered locally, so link
cards and media are served here and nothing leaves the machine. The crash test runs daemon
processes, which build their transport themselves (with the same setting).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import ClientSession, web

from scheduler_daemon.config import Settings
from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.due import due_instant
from scheduler_daemon.models import ScheduleKey
from scheduler_daemon.net.guard import Guard
from scheduler_daemon.net.transport import AiohttpTransport
from scheduler_daemon.platforms._rules import graphemes
from scheduler_daemon.platforms.bluesky import record_key
from support.helpers import Watcher, insert_post, row, soon
from support.procs import DaemonProcess

from .network import Account, ReferencePds

UTC = dt.timezone.utc


def png(seed: int, size: int = 4) -> bytes:
    """A small valid PNG whose pixels depend on ``seed``."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes((seed * 37 + x * 11 + y * 5) % 256 for x in range(size * 3)) for y in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class Web(httpx.AsyncBaseTransport):
    """The PDS for real (over loopback, through the daemon's ``AiohttpTransport``); a host
    in ``services`` is answered by its handler (a video service); any other host answers
    from ``pages`` (404 otherwise: Bluesky's video service too, so a video goes by
    ``uploadBlob``).

    The transport's guard is the one the daemon builds from ``settings``, without trusting
    the configured API base: the PDS passes because ``SCHEDULER_ALLOW_NETWORKS`` allows
    its address, as a tenant's private PDS would have to."""

    def __init__(self, settings: Settings) -> None:
        self.real = AiohttpTransport(max_connections=settings.concurrency, guard=Guard(settings.allow_networks))
        self.pages: dict[str, tuple[bytes, str]] = {}
        self.services: dict[str, Callable[[httpx.Request], Awaitable[httpx.Response]]] = {}
        self.xrpc: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "127.0.0.1":
            self.xrpc.append(request.url.path.removeprefix("/xrpc/"))
            return await self.real.handle_async_request(request)
        if (service := self.services.get(request.url.host)) is not None:
            await request.aread()
            return await service(request)
        content, mime = self.pages.get(str(request.url), (b"not here", "text/plain"))
        status = 200 if str(request.url) in self.pages else 404
        return httpx.Response(status, content=content, headers={"content-type": mime})

    async def aclose(self) -> None:
        await self.real.aclose()


@pytest.fixture
def pds(reference_pds: ReferencePds) -> ReferencePds:
    return reference_pds


@pytest.fixture
async def daemon(start_daemon: Any, pds: ReferencePds, settings: Settings) -> AsyncIterator[Web]:
    """An in-process daemon whose Bluesky API base is the PDS; yields its network."""
    network = Web(settings)
    await start_daemon(transport=network, platforms=PlatformSettings.from_env({"SCHEDULER_BLUESKY_API_BASE": pds.url}))
    yield network


async def connect(db: asyncpg.Connection, account: Account, *, access_token: str | None = None,
                  expires_at: dt.datetime | None = None, **metadata: str) -> uuid.UUID:
    """The account's connection row, as the app stores it after createSession; its campaign."""
    user = uuid.uuid4()
    campaign: uuid.UUID = await db.fetchval(
        "INSERT INTO content_campaigns (user_id) VALUES ($1) RETURNING id", user)
    await db.execute(
        "INSERT INTO platform_connections (user_id, platform, account_id, access_token, refresh_token,"
        " token_expires_at, metadata) VALUES ($1, 'bluesky', $2, $3, $4, $5, $6::jsonb)",
        user, account.did, access_token or account.access_jwt, account.refresh_jwt, expires_at,
        json.dumps({"handle": account.handle, **metadata}),
    )
    return campaign


async def published(db: asyncpg.Connection, watcher: Watcher, campaign: uuid.UUID, *contents: str,
                    media: str = "[]") -> list[asyncpg.Record]:
    """Schedule ``contents`` soon, wait for the daemon, and return their rows."""
    ids = [await insert_post(db, campaign, soon(0.3), platform="bluesky", content=c, media=media) for c in contents]
    await watcher.wait_all(ids, "published", "draft", timeout=30)
    rows = [await row(db, i) for i in ids]
    for r in rows:
        assert r["status"] == "published", r["error_message"]
    return rows


async def stored(pds: ReferencePds, account: Account, r: asyncpg.Record) -> dict[str, Any]:
    """The record the PDS holds for a published row."""
    assert r["platform_post_id"].startswith(f"at://{account.did}/app.bsky.feed.post/")
    found = await pds.get_record(account.did, r["platform_post_id"].rsplit("/", 1)[1])
    assert found is not None and found["uri"] == r["platform_post_id"]
    return found


def official_facets(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """detectFacets' facets as a record holds them: without the optional ``$type``, and
    without the mentions it could not resolve (it would send an empty DID)."""
    kept = [{k: v for k, v in f.items() if k != "$type"} for f in answer["facets"]]
    return [f for f in kept if not any(x.get("did") == "" for x in f["features"])]


# -- rich text -------------------------------------------------------------------------------


async def test_facets_are_what_the_official_client_makes(
    db: asyncpg.Connection, watcher: Watcher, daemon: Web, pds: ReferencePds
) -> None:
    alice, bob = await pds.create_account("alice"), await pds.create_account("bob")
    campaign = await connect(db, alice)
    texts = [
        f"Hello @{bob.handle} and @nobody-{uuid.uuid4().hex[:6]}.test! #python #2026 #日本語 $TSLA",
        "Read https://en.wikipedia.org/wiki/Python_(programming_language) (or https://example.com/docs).",
        "ünï 日本語 https://example.com/ünï?q=1#frag — see example.org/path too",
        f"(@{alice.handle}) #tag, #end. x#no ＃全角 #️⃣ done",
        f"bsky.app www.example.com/x x.co/abc config.py node.js https://a.com/b?c=(d) #tag1#tag2 #ﾃｽﾄ！ $AAPL's (#t)"
        f" @{bob.handle}'s",
    ]
    rows = await published(db, watcher, campaign, *texts)
    official = await pds.official(texts)
    for text, r, answer in zip(texts, rows, official, strict=True):
        value = (await stored(pds, alice, r))["value"]
        assert value["text"] == text
        assert value.get("facets", []) == official_facets(answer), text
    mention = (await stored(pds, alice, rows[0]))["value"]["facets"][0]["features"][0]
    assert mention == {"$type": "app.bsky.richtext.facet#mention", "did": bob.did}


async def test_link_card_from_open_graph_and_images_with_alt_text(
    db: asyncpg.Connection, watcher: Watcher, daemon: Web, pds: ReferencePds
) -> None:
    alice = await pds.create_account("alice")
    campaign = await connect(db, alice)
    cover, first, second = png(1, 8), png(2), png(3)
    daemon.pages["https://news.example.com/story"] = (
        b'<html><head><meta property="og:title" content="Storm &amp; sun">'
        b'<meta property="og:description" content="What the week brings.">'
        b'<meta property="og:image" content="https://cdn.example.com/cover.png"></head><body>x</body></html>',
        "text/html; charset=utf-8")
    daemon.pages["https://cdn.example.com/cover.png"] = (cover, "image/png")
    daemon.pages["https://cdn.example.com/1.png"] = (first, "image/png")
    daemon.pages["https://cdn.example.com/2.png"] = (second, "image/png")
    [card_row] = await published(db, watcher, campaign, "Storm warning: https://news.example.com/story")
    media = json.dumps([{"url": "https://cdn.example.com/1.png", "alt": "the first one", "mime": "image/png"},
                        {"url": "https://cdn.example.com/2.png", "alt": "ünï second", "mime": "image/png"}])
    [images_row] = await published(db, watcher, campaign, "Two pictures https://news.example.com/story", media=media)

    embed = (await stored(pds, alice, card_row))["value"]["embed"]
    assert embed["$type"] == "app.bsky.embed.external"
    external = embed["external"]
    assert (external["uri"], external["title"], external["description"]) == (
        "https://news.example.com/story", "Storm & sun", "What the week brings.")
    assert await pds.get_blob(alice.did, external["thumb"]["ref"]["$link"]) == cover

    embed = (await stored(pds, alice, images_row))["value"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"  # images win over the card
    assert [i["alt"] for i in embed["images"]] == ["the first one", "ünï second"]
    assert [await pds.get_blob(alice.did, i["image"]["ref"]["$link"]) for i in embed["images"]] == [first, second]


# -- graphemes -------------------------------------------------------------------------------

UNITS = {
    "Devanagari conjunct": "क्ष",
    "Devanagari word": "नमस्ते",
    "Thai": "น้ำ",
    "Thai sara am": "กำ",
    "Arabic with harakat": "بِسْمِ",
    "Arabic prepend": "\u0600\u0661",
    "ZWJ family": "👨\u200d👩\u200d👧\u200d👦",
    "ZWJ after a letter": "a\u200d😀",
    "flag": "🇫🇷",
    "odd regional indicators": "🇫🇷🇩",
    "tag sequence flag": "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "skin tone": "👍🏽",
    "keycap": "1\ufe0f\u20e3",
    "Hangul jamo": "\u1100\u1161\u11a8",
    "CR LF": "\r\n",
    "combining acute": "e\u0301",
}


def at_limit(unit: str) -> str:
    """``unit`` repeated, padded with "a" to exactly 300 graphemes by our count."""
    text = unit * min(60, 2_400 // len(unit.encode()))
    while graphemes(text) > 290:
        text = text[: -len(unit)]
    return text + "a" * (300 - graphemes(text))


async def test_our_grapheme_count_agrees_with_the_pds(pds: ReferencePds) -> None:
    alice = await pds.create_account("alice")
    official = await pds.official(list(UNITS.values()))
    disagreements = []
    for (name, unit), answer in zip(UNITS.items(), official, strict=True):
        text = at_limit(unit)
        accepted = (await pds.write(alice, text)).status_code == 200
        over = await pds.write(alice, text + "a")
        refused = over.status_code == 400 and "grapheme too big (maximum 300, got 301)" in over.json()["message"]
        if (graphemes(unit), accepted, refused) != (answer["graphemes"], True, True):
            disagreements.append(f"{name} {unit!r}: ours {graphemes(unit)}, Intl.Segmenter {answer['graphemes']}; "
                                 f"at 301 by our count the PDS said {over.status_code} {over.text[:120]}")
    assert not disagreements, "\n".join(disagreements)


async def test_graphemes_through_the_daemon(
    db: asyncpg.Connection, watcher: Watcher, daemon: Web, pds: ReferencePds
) -> None:
    alice = await pds.create_account("alice")
    campaign = await connect(db, alice)
    [conjuncts] = await published(db, watcher, campaign, "क्ष" * 200)
    assert (await stored(pds, alice, conjuncts))["value"]["text"] == "क्ष" * 200

    zwj = "a\u200d😀" * 200
    calls = len(daemon.xrpc)
    refused = await insert_post(db, campaign, soon(0.3), platform="bluesky", content=zwj)
    assert await watcher.wait(refused, "published", "draft") == "draft"
    assert (await row(db, refused))["error_message"] == "Bluesky allows 300 graphemes; this post has 400"
    assert daemon.xrpc[calls:] == []  # refused before any call
    answer = await pds.write(alice, zwj)  # …as the PDS itself refuses it
    assert answer.status_code == 400 and "grapheme too big (maximum 300, got 400)" in answer.json()["message"]
    assert len(await pds.list_records(alice.did)) == 1


# -- sessions --------------------------------------------------------------------------------


async def test_expired_access_token_refreshes_once_and_the_rotated_pair_is_stored(
    db: asyncpg.Connection, watcher: Watcher, start_daemon: Any, pds: ReferencePds, settings: Settings
) -> None:
    """The row says the token is good for a day; the PDS says it expired: one refresh,
    the same write again, the new pair in platform_connections. The PDS comes from the
    connection's metadata.pds_url here (the daemon's default API base is untouched)."""
    alice = await pds.create_account("alice")
    expired = pds.expired_access_jwt(alice)
    answer = await pds.call("com.atproto.server.getSession", token=expired, params={})
    assert answer.status_code == 400 and answer.json()["error"] == "ExpiredToken"
    campaign = await connect(db, alice, access_token=expired, expires_at=dt.datetime.now(UTC) + dt.timedelta(days=1),
                             pds_url=pds.url)
    network = Web(settings)
    await start_daemon(transport=network)
    [r] = await published(db, watcher, campaign, "after a refresh")

    assert network.xrpc.count("com.atproto.server.refreshSession") == 1
    assert network.xrpc.count("com.atproto.repo.putRecord") == 2  # ExpiredToken, then the same write
    assert (await stored(pds, alice, r))["value"]["text"] == "after a refresh"
    access, refresh = await db.fetchrow(
        "SELECT access_token, refresh_token FROM platform_connections WHERE account_id = $1", alice.did)
    assert access != expired and refresh != alice.refresh_jwt  # (an access JWT minted in the same second as
    # createAccount's is the same string: HS256 over the same claims)
    session = await pds.call("com.atproto.server.getSession", token=access, params={})
    assert session.status_code == 200 and session.json()["did"] == alice.did
    renewed = await pds.call("com.atproto.server.refreshSession", token=refresh)
    assert renewed.status_code == 200, renewed.text  # the stored refresh token is the live one


async def test_revoked_session_ends_as_draft_with_one_message_carrying_the_pds_reason(
    db: asyncpg.Connection, watcher: Watcher, daemon: Web, pds: ReferencePds
) -> None:
    alice = await pds.create_account("alice")
    revoked = await pds.call("com.atproto.server.deleteSession", token=alice.refresh_jwt)
    assert revoked.status_code == 200, revoked.text
    campaign = await connect(db, alice, access_token=pds.expired_access_jwt(alice))
    post = await insert_post(db, campaign, soon(0.3), platform="bluesky", content="never")
    assert await watcher.wait(post, "published", "draft") == "draft"
    message = (await row(db, post))["error_message"]
    assert message == (
        "reconnect bluesky: Bluesky refused the credentials: the refresh token was refused (Token has been revoked)"
    )
    assert await db.fetchval("SELECT needs_reconnect FROM platform_connections WHERE account_id = $1", alice.did)
    assert await pds.list_records(alice.did) == []


# -- createdAt -------------------------------------------------------------------------------


async def test_late_post_is_created_at_its_send_time(
    db: asyncpg.Connection, watcher: Watcher, daemon: Web, pds: ReferencePds
) -> None:
    alice = await pds.create_account("alice")
    campaign = await connect(db, alice)
    due = dt.datetime.now(UTC) - dt.timedelta(minutes=20)
    before = dt.datetime.now(UTC)
    post = await insert_post(db, campaign, due, platform="bluesky", content="twenty minutes late")
    assert await watcher.wait(post, "published", "draft") == "published"
    after = dt.datetime.now(UTC)
    r = await row(db, post)
    created = dt.datetime.fromisoformat((await stored(pds, alice, r))["value"]["createdAt"])
    assert before - dt.timedelta(milliseconds=1) <= created <= after
    scheduled = due_instant(ScheduleKey(r["scheduled_date"], r["scheduled_time"], r["timezone"]))
    assert r["platform_post_id"].endswith(record_key(post, scheduled))  # the key still names the post


# -- a crash during putRecord ----------------------------------------------------------------


class HoldingProxy:
    """Forwards everything to the PDS; the answer to the first ``putRecord`` is taken
    from the PDS (the record is written) and then held until ``release``."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.committed = asyncio.Event()
        self.release = asyncio.Event()
        self.held: dict[str, Any] = {}
        self.methods: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> HoldingProxy:
        self._session = ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self._runner is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        method = request.path.removeprefix("/xrpc/")
        self.methods.append(method)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with self._session.request(request.method, self.target + request.path_qs, headers=headers,
                                         data=await request.read()) as answer:
            body, status, kind = await answer.read(), answer.status, answer.content_type
        if method == "com.atproto.repo.putRecord" and not self.committed.is_set():
            self.held = json.loads(body)
            self.committed.set()
            await self.release.wait()
        return web.Response(body=body, status=status, content_type=kind)


async def test_sigkill_while_the_pds_answer_is_held_leaves_exactly_one_record(
    dsn: str, db: asyncpg.Connection, watcher: Watcher, pds: ReferencePds, tmp_path: Path
) -> None:
    """The PDS wrote the record; its answer is held; the daemon is SIGKILLed and restarted
    with the same instance id (as systemd does). The retry finds the record by its fixed
    key: one record, the one first written, and the row published with its uri."""
    alice = await pds.create_account("alice")
    campaign = await connect(db, alice)
    async with HoldingProxy(pds.url) as proxy:
        env = dict(SCHEDULER_BLUESKY_API_BASE=proxy.url, SCHEDULER_ALLOW_NETWORKS="127.0.0.0/8",
                   SCHEDULER_HEARTBEAT_SECONDS="0.5", SCHEDULER_HEARTBEAT_TIMEOUT_SECONDS="1",
                   SCHEDULER_RECOVERY_AFTER_SECONDS="1", SCHEDULER_HTTP_TIMEOUT_SECONDS="30")
        proc = DaemonProcess(dsn, "vm-1", tmp_path, **env)
        await proc.start()
        try:
            await proc.wait_ready()
            post = await insert_post(db, campaign, soon(0.3), platform="bluesky", content="exactly once")
            async with asyncio.timeout(20):
                await proxy.committed.wait()
            proc.kill()
            await proc.wait()
            proxy.release.set()  # the answer goes to a dead socket
            await proc.start()
            await proc.wait_ready()
            status = await watcher.wait(post, "published", "draft", timeout=30)
        finally:
            await proc.stop()
    r = await row(db, post)
    assert status == "published", r["error_message"]
    records = await pds.list_records(alice.did)
    assert [(x["uri"], x["cid"]) for x in records] == [(proxy.held["uri"], proxy.held["cid"])]
    assert r["platform_post_id"] == proxy.held["uri"]
    assert proxy.methods.count("com.atproto.repo.putRecord") == 1  # found by getRecord, not written again
    assert "com.atproto.repo.getRecord" in proxy.methods
