"""Media given as a Supabase Storage path, through the real ``supabase`` async client,
against a local server that answers like Storage's sign endpoint."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.errors import ContentRejectedError
from scheduler_daemon.media import MediaResolver
from scheduler_daemon.models import MediaItem
from scheduler_daemon.testing.receiver import Arrival, Receiver, Reply

pytest.importorskip("supabase", reason="the 'supabase' extra is not installed")


def service_key() -> str:
    """A JWT-shaped service-role key (the client checks the shape, Storage here does not)."""
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'role': 'service_role'})}.c2lnbmF0dXJl"


def storage(arrival: Arrival) -> Reply:
    if arrival.path.startswith("/storage/v1/object/sign/media/cats/"):
        name = arrival.path.rsplit("/", 1)[1]
        return Reply(200, {"signedURL": f"/object/sign/media/cats/{name}?token=signed-token-123"})
    return Reply(400, {"statusCode": "404", "error": "not_found", "message": "Object not found"})


async def test_storage_path_is_signed_by_the_supabase_client() -> None:
    async with Receiver(storage) as rx, httpx.AsyncClient() as client:
        key = service_key()
        settings = PlatformSettings.from_env({"SUPABASE_URL": rx.url, "SUPABASE_SERVICE_KEY": key,
                                              "SUPABASE_SIGNED_URL_SECONDS": "600"})
        resolver = MediaResolver(settings, client)
        url = await resolver.media_url(MediaItem(None, "media/cats/tom.png", "Tom", "image/png"))
        [sign] = rx.arrivals
    assert url == f"{rx.url}/storage/v1/object/sign/media/cats/tom.png?token=signed-token-123"
    assert sign.method == "POST" and int(sign.json()["expiresIn"]) == 600
    assert sign.headers["authorization"] == f"Bearer {key}"


async def test_an_object_storage_does_not_have_is_content_rejected() -> None:
    async with Receiver(storage) as rx, httpx.AsyncClient() as client:
        settings = PlatformSettings.from_env({"SUPABASE_URL": rx.url, "SUPABASE_SERVICE_KEY": service_key()})
        resolver = MediaResolver(settings, client)
        with pytest.raises(ContentRejectedError, match=r"media/dogs/rex\.png could not be signed"):
            await resolver.media_url(MediaItem(None, "media/dogs/rex.png", None, None))
