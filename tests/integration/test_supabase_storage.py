"""Media given as a Supabase Storage path, through the real ``supabase`` async client,
against a local server that answers like Storage's sign endpoint."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.engine.media import MediaResolver
from scheduler_daemon.errors import ContentRejectedError
from scheduler_daemon.models import MediaItem
from scheduler_daemon.testing.receiver import Arrival, Receiver, Reply

pytest.importorskip("supabase", reason="the 'supabase' extra is not installed")

OWNER = uuid.UUID("0b6f3c2a-5d4e-4f1a-9b8c-7d6e5f4a3b2c")


def service_key() -> str:
    """A JWT-shaped service-role key (the client checks the shape, Storage here does not)."""
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'role': 'service_role'})}.c2lnbmF0dXJl"


def storage(arrival: Arrival) -> Reply:
    if arrival.path.startswith(f"/storage/v1/object/sign/media/{OWNER}/cats/"):
        name = arrival.path.rsplit("/", 1)[1]
        return Reply(200, {"signedURL": f"/object/sign/media/{OWNER}/cats/{name}?token=signed-token-123"})
    return Reply(400, {"statusCode": "404", "error": "not_found", "message": "Object not found"})


async def test_storage_path_is_signed_by_the_supabase_client() -> None:
    async with Receiver(storage) as rx, httpx.AsyncClient() as client:
        key = service_key()
        settings = PlatformSettings.from_env({"SUPABASE_URL": rx.url, "SUPABASE_SERVICE_KEY": key,
                                              "SUPABASE_STORAGE_BUCKET": "media", "SUPABASE_SIGNED_URL_SECONDS": "600"})
        resolver = MediaResolver(settings, client)
        url = await resolver.media_url(MediaItem(None, f"{OWNER}/cats/tom.png", "Tom", "image/png"), OWNER)
        [sign] = rx.arrivals
    assert url == f"{rx.url}/storage/v1/object/sign/media/{OWNER}/cats/tom.png?token=signed-token-123"
    assert sign.method == "POST" and int(sign.json()["expiresIn"]) == 600
    assert sign.headers["authorization"] == f"Bearer {key}"


async def test_an_object_storage_does_not_have_is_content_rejected() -> None:
    async with Receiver(storage) as rx, httpx.AsyncClient() as client:
        settings = PlatformSettings.from_env({"SUPABASE_URL": rx.url, "SUPABASE_SERVICE_KEY": service_key(),
                                              "SUPABASE_STORAGE_BUCKET": "media"})
        resolver = MediaResolver(settings, client)
        with pytest.raises(ContentRejectedError, match=rf"media/{OWNER}/dogs/rex\.png could not be signed"):
            await resolver.media_url(MediaItem(None, f"{OWNER}/dogs/rex.png", None, None), OWNER)


async def test_an_escaping_path_never_reaches_storage() -> None:
    """Dot segments would be normalised by the HTTP client into another object (or bucket)."""
    async with Receiver(storage) as rx, httpx.AsyncClient() as client:
        settings = PlatformSettings.from_env({"SUPABASE_URL": rx.url, "SUPABASE_SERVICE_KEY": service_key(),
                                              "SUPABASE_STORAGE_BUCKET": "media"})
        resolver = MediaResolver(settings, client)
        for path in (f"{OWNER}/../../private/secret.pdf", f"{OWNER}/cats/%2e%2e/%2e%2e/x", "cats/tom.png"):
            with pytest.raises(ContentRejectedError, match="is refused"):
                await resolver.media_url(MediaItem(None, path, None, None), OWNER)
    assert rx.arrivals == []
