"""Media resolution: what a platform needs for a media item (a URL or the bytes).

Plain ``url`` items work as they are. ``storage_path`` items live in Supabase Storage:
with the ``supabase`` extra installed and ``SUPABASE_URL`` plus ``SUPABASE_SERVICE_KEY``
set, they become signed URLs (valid ``SUPABASE_SIGNED_URL_SECONDS``) made by the
``supabase`` package's async client, created once on first use. A ``storage_path`` is
``<bucket>/<object path>``, or just the object path when ``SUPABASE_STORAGE_BUCKET`` is
set.

``media_bytes`` streams the download and stops at the cap (the smaller of the platform's
limit and ``SCHEDULER_MAX_MEDIA_BYTES``). Messages name the item by its storage path or
its URL without the query string: a signed URL's token never reaches a message.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any, Protocol

import httpx

from .config.platforms import PlatformSettings
from .errors import ContentRejectedError, PlatformConfigError, TransientError
from .models import MediaItem


class SignedUrls(Protocol):
    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str: ...


class SupabaseStorage:
    """Signed URLs from Supabase Storage through the ``supabase`` async client."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self._key = key
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def _storage(self) -> Any:
        async with self._lock:
            if self._client is None:
                try:
                    module: Any = importlib.import_module("supabase")
                except ImportError:
                    raise PlatformConfigError(
                        "media with a storage_path needs the 'supabase' extra: pip install 'scheduler-daemon[supabase]'"
                    ) from None
                create = getattr(module, "acreate_client", None) or getattr(module, "create_async_client")
                self._client = await create(self.url, self._key)
            return self._client.storage

    async def signed_url(self, bucket: str, path: str, expires_in: int) -> str:
        storage = await self._storage()
        try:
            answer = await storage.from_(bucket).create_signed_url(path, expires_in)
        except httpx.TransportError as exc:
            raise TransientError(f"Supabase Storage unreachable while signing {bucket}/{path}") from exc
        except Exception as exc:  # storage3 raises its own StorageException (not found, denied, …)
            raise ContentRejectedError(f"media {bucket}/{path} could not be signed: {str(exc)[:200]}") from exc
        signed = _signed_field(answer)
        if not signed:
            raise ContentRejectedError(f"media {bucket}/{path}: Supabase returned no signed URL")
        return signed if signed.startswith("http") else f"{self.url}/storage/v1/{signed.lstrip('/')}"


def _signed_field(answer: Any) -> str | None:
    if isinstance(answer, dict):
        value = answer.get("signedURL") or answer.get("signedUrl") or answer.get("signed_url")
    else:
        value = getattr(answer, "signed_url", None)
    return value if isinstance(value, str) else None


def label(item: MediaItem) -> str:
    """How a message names the item (never a query string: signed URLs carry tokens)."""
    return (item.storage_path or (item.url or "").split("?", 1)[0])[:200]


class MediaResolver:
    def __init__(
        self, settings: PlatformSettings, client: httpx.AsyncClient, storage: SignedUrls | None = None
    ) -> None:
        self.settings = settings
        self.client = client
        self._storage = storage
        if storage is None and settings.supabase_url and settings.supabase_service_key:
            self._storage = SupabaseStorage(settings.supabase_url, settings.supabase_service_key)

    async def media_url(self, item: MediaItem) -> str:
        if item.url:
            return item.url
        if not item.storage_path:
            raise ContentRejectedError("a media item has neither url nor storage_path")
        if self._storage is None:
            raise PlatformConfigError(
                f"media {item.storage_path[:200]!r} is a Supabase storage path: install the 'supabase' extra "
                "and set SUPABASE_URL and SUPABASE_SERVICE_KEY"
            )
        bucket, path = self._locate(item.storage_path)
        return await self._storage.signed_url(bucket, path, self.settings.signed_url_seconds)

    def _locate(self, storage_path: str) -> tuple[str, str]:
        path = storage_path.lstrip("/")
        if self.settings.supabase_bucket:
            return self.settings.supabase_bucket, path
        bucket, _, rest = path.partition("/")
        if not bucket or not rest:
            raise PlatformConfigError(
                f"storage_path {storage_path[:200]!r} must be '<bucket>/<path>' (or set SUPABASE_STORAGE_BUCKET)"
            )
        return bucket, rest

    async def media_bytes(self, item: MediaItem, max_bytes: int) -> tuple[bytes, str]:
        url = await self.media_url(item)
        cap = min(max_bytes, self.settings.max_media_bytes)
        name = label(item)
        request = self.client.build_request("GET", url)
        try:  # a GET publishes nothing: every transport failure is retryable
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise TransientError(f"media {name} could not be downloaded ({type(exc).__name__})") from exc
        try:
            _check_status(response, name)
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > cap:
                raise ContentRejectedError(f"media {name} is larger than {cap} bytes ({declared})")
            content = await _read_capped(response, cap, name)
        finally:
            await response.aclose()
        mime = item.mime or response.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
        return content, mime


def _check_status(response: httpx.Response, name: str) -> None:
    status = response.status_code
    if response.is_success:
        return
    if status == 429 or status >= 500:
        raise TransientError(f"media {name} could not be downloaded (HTTP {status})")
    raise ContentRejectedError(f"media {name} could not be downloaded (HTTP {status})")


async def _read_capped(response: httpx.Response, cap: int, name: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > cap:
                raise ContentRejectedError(f"media {name} is larger than {cap} bytes")
            chunks.append(chunk)
    except httpx.TransportError as exc:
        raise TransientError(f"media {name}: the download broke off ({type(exc).__name__})") from exc
    return b"".join(chunks)
