from __future__ import annotations

import httpx
import pytest

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.errors import ContentRejectedError, PlatformConfigError, TransientError
from scheduler_daemon.media import MediaResolver
from scheduler_daemon.models import MediaItem


class Signer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        self.calls.append((bucket, path, expires_in))
        return f"https://proj.supabase.test/storage/v1/object/sign/{bucket}/{path}?token=secret-jwt"


def item(url: str | None = None, path: str | None = None) -> MediaItem:
    return MediaItem(url=url, storage_path=path, alt=None, mime=None)


def resolver(handler, env: dict[str, str] | None = None, storage: Signer | None = None) -> MediaResolver:  # type: ignore[no-untyped-def]
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return MediaResolver(PlatformSettings.from_env(env or {}), client, storage)


async def test_storage_path_becomes_a_signed_url() -> None:
    signer = Signer()
    media = resolver(
        lambda r: httpx.Response(200, content=b"img", headers={"content-type": "image/png"}), storage=signer
    )
    url = await media.media_url(item(path="posts/u1/cat.png"))
    assert url.endswith("/posts/u1/cat.png?token=secret-jwt") and signer.calls == [("posts", "u1/cat.png", 3600)]
    assert await media.media_bytes(item(path="posts/u1/cat.png"), 100) == (b"img", "image/png")


async def test_storage_path_without_supabase_names_the_settings() -> None:
    media = resolver(lambda r: httpx.Response(200))
    with pytest.raises(PlatformConfigError, match="SUPABASE_URL and SUPABASE_SERVICE_KEY"):
        await media.media_url(item(path="posts/cat.png"))


async def test_download_is_capped_while_streaming() -> None:
    def big(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"x" * 5000))  # no content-length to trust

    media = resolver(big)
    with pytest.raises(ContentRejectedError, match="larger than 1000 bytes") as caught:
        await media.media_bytes(item(url="https://cdn.test/a.png?sig=secret"), 1000)
    assert "secret" not in str(caught.value)
    assert (await media.media_bytes(item(url="https://cdn.test/a.png"), 6000))[0] == b"x" * 5000


async def test_download_failures_are_classified() -> None:
    media = resolver(lambda r: httpx.Response(503))
    with pytest.raises(TransientError):
        await media.media_bytes(item(url="https://cdn.test/a.png"), 100)
    media = resolver(lambda r: httpx.Response(404))
    with pytest.raises(ContentRejectedError, match="HTTP 404"):
        await media.media_bytes(item(url="https://cdn.test/a.png"), 100)
