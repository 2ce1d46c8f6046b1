"""Media resolution through the daemon's transport against local servers: signed storage
paths scoped to the post's owner, capped downloads, redirects followed hop by hop under
the outbound guard."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.engine.media import MAX_REDIRECTS, MediaResolver, owned_object
from scheduler_daemon.errors import AddressNotAllowedError, ContentRejectedError, PlatformConfigError, TransientError
from scheduler_daemon.models import MediaItem
from scheduler_daemon.net.guard import Guard
from scheduler_daemon.net.transport import AiohttpTransport
from support.servers import Server, endless

OWNER = uuid.UUID("6f1d2a3b-0000-4000-8000-000000000001")
OTHER = uuid.UUID("7e2c3b4a-0000-4000-8000-000000000002")
IMAGE = b"\x89PNG\r\n\x1a\n" + b"p" * 5000


class Signer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        self.calls.append((bucket, path, expires_in))
        return f"https://proj.supabase.test/storage/v1/object/sign/{bucket}/{path}?token=secret-jwt"


def item(url: str | None = None, path: str | None = None) -> MediaItem:
    return MediaItem(url=url, storage_path=path, alt=None, mime=None)


async def image(request: web.Request) -> web.StreamResponse:
    return web.Response(body=IMAGE, content_type="image/png")


async def hop(request: web.Request) -> web.StreamResponse:
    n = int(request.path.rsplit("/", 1)[1])
    raise web.HTTPFound(f"/hop/{n - 1}" if n > 1 else "/img")


async def to(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(request.query["url"])


async def status(request: web.Request) -> web.StreamResponse:
    return web.Response(status=int(request.path.rsplit("/", 1)[1]))


def media_site(host: str = "127.0.0.1") -> Server:
    """/img (the image), /big (no length, endless), /hop/<n> (a chain of n redirects to
    /img), /to?url= (one redirect to anywhere), /status/<code>; ``hits`` lists requests."""
    return Server(host, {"/img": image, "/big": endless("image/png"), "/hop/": hop, "/to": to, "/status/": status})


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = AiohttpTransport(guard=Guard((ipaddress.ip_network("127.0.0.1/32"),)))
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0)) as c:
        yield c


def resolver(
    client: httpx.AsyncClient, env: dict[str, str] | None = None, storage: Signer | None = None
) -> MediaResolver:
    return MediaResolver(PlatformSettings.from_env(env or {}), client, storage)


async def test_a_download_follows_up_to_five_redirects(client: httpx.AsyncClient) -> None:
    async with media_site() as site:
        media = resolver(client)
        got = await media.media_bytes(item(url=f"{site.url}/hop/{MAX_REDIRECTS}"), 10**6, OWNER)
        assert got == (IMAGE, "image/png")
        site.hits.clear()
        with pytest.raises(ContentRejectedError, match=r"redirects more than 5 times"):
            await media.media_bytes(item(url=f"{site.url}/hop/{MAX_REDIRECTS + 1}?sig=secret"), 10**6, OWNER)
        assert len(site.hits) == MAX_REDIRECTS + 1 and "/img" not in site.hits


@pytest.mark.parametrize("target_host", ["127.0.0.2", "::1"])
async def test_every_hop_is_guarded(client: httpx.AsyncClient, target_host: str) -> None:
    async with media_site() as site, media_site(target_host) as internal:
        media = resolver(client)
        url = f"{site.url}/to?url={internal.url}/img"
        with pytest.raises(AddressNotAllowedError, match=r"media .*/to: .* is not an allowed address \(loopback\)"):
            await media.media_bytes(item(url=url), 10**6, OWNER)
    assert site.hits and internal.hits == []


async def test_a_redirect_to_another_scheme_is_refused(client: httpx.AsyncClient) -> None:
    async with media_site() as site:
        with pytest.raises(ContentRejectedError, match="redirects to a 'file' URL"):
            await resolver(client).media_bytes(item(url=f"{site.url}/to?url=file:///etc/passwd"), 10**6, OWNER)


async def test_a_download_is_capped_while_streaming(client: httpx.AsyncClient) -> None:
    async with media_site() as site:
        media = resolver(client)
        with pytest.raises(ContentRejectedError, match="larger than 100000 bytes") as caught:
            await media.media_bytes(item(url=f"{site.url}/big?sig=secret"), 100_000, OWNER)
        assert "secret" not in str(caught.value)
        with pytest.raises(ContentRejectedError, match="larger than 1000 bytes"):  # its declared length
            await media.media_bytes(item(url=f"{site.url}/img"), 1000, OWNER)
        capped = resolver(client, {"SCHEDULER_MAX_MEDIA_BYTES": "2000"})  # the smaller cap wins
        with pytest.raises(ContentRejectedError, match="larger than 2000 bytes"):
            await capped.media_bytes(item(url=f"{site.url}/img"), 10**6, OWNER)


async def test_download_failures_are_classified(client: httpx.AsyncClient) -> None:
    async with media_site() as site:
        media = resolver(client)
        with pytest.raises(TransientError, match="HTTP 503"):
            await media.media_bytes(item(url=f"{site.url}/status/503"), 100, OWNER)
        with pytest.raises(ContentRejectedError, match="HTTP 404"):
            await media.media_bytes(item(url=f"{site.url}/status/404"), 100, OWNER)


# -- storage paths ------------------------------------------------------------------------

BUCKET_ENV = {"SUPABASE_STORAGE_BUCKET": "media"}


async def test_an_owned_storage_path_becomes_a_signed_url(client: httpx.AsyncClient) -> None:
    signer = Signer()
    media = resolver(client, BUCKET_ENV, signer)
    url = await media.media_url(item(path=f"{OWNER}/cats/tom.png"), OWNER)
    assert url.endswith(f"/media/{OWNER}/cats/tom.png?token=secret-jwt")
    assert await media.media_url(item(path=f"media/{OWNER}/tom.png"), OWNER)  # the bucket may lead
    assert signer.calls == [("media", f"{OWNER}/cats/tom.png", 3600), ("media", f"{OWNER}/tom.png", 3600)]


@pytest.mark.parametrize(("path", "why"), [
    (f"{OTHER}/cat.png", "does not start with the post owner's user id"),
    (f"{OWNER}x/cat.png", "does not start with the post owner's user id"),
    (f"private/{OWNER}/cat.png", "does not start with the post owner's user id"),  # another bucket
    (f"{OWNER}/../{OTHER}/cat.png", "'..' segments"),
    (f"{OWNER}/./cat.png", "'.' and '..'"),
    (f"{OWNER}//cat.png", "empty"),
    (f"/{OWNER}/cat.png", "empty"),
    (f"{OWNER}/", "empty"),
    (f"{OWNER}", "names no file"),
    (f"{OWNER}/%2e%2e/{OTHER}/cat.png", "% may not appear"),
    (f"{OWNER}/..%2fx.png", "% may not appear"),
    (f"{OWNER}\\..\\{OTHER}\\cat.png", "\\ may not appear"),
    (f"{OWNER}/cat.png?download=../../x", "? may not appear"),
    (f"{OWNER}/cat.png#x", "# may not appear"),
    (f"{OWNER}/\uff0e\uff0e/cat.png", "printable ASCII"),  # fullwidth dots
    (f"{OWNER}/cat\n.png", "printable ASCII"),
])
def test_a_storage_path_outside_the_owners_folder_is_refused(path: str, why: str) -> None:
    with pytest.raises(ContentRejectedError, match=r"storage_path .* is refused") as refused:
        owned_object(path, OWNER, "media")
    assert why in str(refused.value) and "in the media bucket" in str(refused.value)


async def test_nothing_is_signed_for_a_refused_path_or_without_an_owner(client: httpx.AsyncClient) -> None:
    signer = Signer()
    media = resolver(client, BUCKET_ENV, signer)
    with pytest.raises(ContentRejectedError):
        await media.media_url(item(path=f"{OTHER}/cat.png"), OWNER)
    with pytest.raises(ContentRejectedError, match="no owner"):
        await media.media_url(item(path=f"{OWNER}/cat.png"), None)
    assert signer.calls == []


async def test_a_storage_path_needs_supabase_and_a_bucket(client: httpx.AsyncClient) -> None:
    with pytest.raises(PlatformConfigError, match="SUPABASE_URL, SUPABASE_SERVICE_KEY and SUPABASE_STORAGE_BUCKET"):
        await resolver(client).media_url(item(path=f"{OWNER}/cat.png"), OWNER)
    with pytest.raises(PlatformConfigError, match="SUPABASE_STORAGE_BUCKET"):
        await resolver(client, storage=Signer()).media_url(item(path=f"{OWNER}/cat.png"), OWNER)
