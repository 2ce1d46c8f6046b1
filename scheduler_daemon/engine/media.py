"""Media resolution: what a platform needs for a media item (a URL or the bytes).

Plain ``url`` items work as they are. ``storage_path`` items live in Supabase Storage:
with the ``supabase`` extra installed and ``SUPABASE_URL``, ``SUPABASE_SERVICE_KEY`` and
``SUPABASE_STORAGE_BUCKET`` set, they become signed URLs (valid
``SUPABASE_SIGNED_URL_SECONDS``) made by the ``supabase`` package's async client, created
once on first use.

The service key can sign any object, so a ``storage_path`` is scoped to the post's owner
(the campaign's user) before anything is signed: it is ``<owner's user id>/<path>`` inside
``SUPABASE_STORAGE_BUCKET`` (a leading ``<bucket>/`` is accepted), printable ASCII, with no
empty, ``.`` or ``..`` segment and none of ``%``, ``\\``, ``?``, ``#`` (nothing an HTTP
client or Storage could normalise into another object). Anything else is refused with the
reason.

``media_bytes`` streams the download through the daemon's transport, capped at the
smaller of the platform's limit and ``SCHEDULER_MAX_MEDIA_BYTES``
(``net.transport.MAX_BYTES``: past it nothing more is read), and follows at most
``MAX_REDIRECTS`` redirects, each hop a new request that the outbound guard checks again.
Messages name the item by its storage path or its URL without the query string: a signed
URL's token never reaches a message.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from typing import Any, Protocol

import httpx

from ..config.platforms import PlatformSettings
from ..errors import AddressNotAllowedError, ContentRejectedError, PlatformConfigError, TransientError
from ..models import MediaItem
from ..net.transport import MAX_BYTES, ResponseTooLarge

MAX_REDIRECTS = 5
_UNSAFE = frozenset("%\\?#")


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
                create = getattr(module, "acreate_client", None) or module.create_async_client
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


def owned_object(storage_path: str, owner: uuid.UUID | None, bucket: str) -> str:
    """The object path inside ``bucket`` that ``storage_path`` names, if it is ``owner``'s;
    ``ContentRejectedError`` with the reason otherwise."""
    shown = repr(storage_path[:200])

    def refuse(why: str) -> ContentRejectedError:
        return ContentRejectedError(
            f"storage_path {shown} is refused: {why}; it must be '<your user id>/<file>' in the {bucket} bucket"
        )

    if owner is None:
        raise refuse("the post has no campaign, so no owner")
    if not storage_path.isascii() or not storage_path.isprintable():
        raise refuse("only printable ASCII characters are allowed")
    if bad := sorted(_UNSAFE.intersection(storage_path)):
        raise refuse(f"{' '.join(bad)} may not appear in it")
    segments = storage_path.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise refuse("empty, '.' and '..' segments are not allowed")
    if len(segments) > 2 and segments[0] == bucket and segments[1] == str(owner):
        segments = segments[1:]  # '<bucket>/<user id>/…' names the same object
    if segments[0] != str(owner):
        raise refuse(f"it does not start with the post owner's user id ({owner}/)")
    if len(segments) < 2:
        raise refuse("it names no file")
    return "/".join(segments)


class MediaResolver:
    def __init__(
        self, settings: PlatformSettings, client: httpx.AsyncClient, storage: SignedUrls | None = None
    ) -> None:
        self.settings = settings
        self.client = client
        self._storage = storage
        if storage is None and settings.supabase_url and settings.supabase_service_key:
            self._storage = SupabaseStorage(settings.supabase_url, settings.supabase_service_key)

    async def media_url(self, item: MediaItem, owner: uuid.UUID | None) -> str:
        """A URL for the item; a ``storage_path`` must be ``owner``'s (``owned_object``)."""
        if item.url:
            return item.url
        if not item.storage_path:
            raise ContentRejectedError("a media item has neither url nor storage_path")
        bucket = self.settings.supabase_bucket
        if self._storage is None or not bucket:
            raise PlatformConfigError(
                f"media {item.storage_path[:200]!r} is a Supabase storage path: install the 'supabase' extra "
                "and set SUPABASE_URL, SUPABASE_SERVICE_KEY and SUPABASE_STORAGE_BUCKET"
            )
        path = owned_object(item.storage_path, owner, bucket)
        return await self._storage.signed_url(bucket, path, self.settings.signed_url_seconds)

    async def media_bytes(self, item: MediaItem, max_bytes: int, owner: uuid.UUID | None) -> tuple[bytes, str]:
        cap = min(max_bytes, self.settings.max_media_bytes)
        name = label(item)
        request = self.client.build_request("GET", await self.media_url(item, owner), extensions={MAX_BYTES: cap})
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._get(request, name)
            try:
                if response.next_request is None:
                    _check_status(response, name)
                    content = await _read(response, cap, name)
                    mime = item.mime or response.headers.get("content-type", "application/octet-stream")
                    return content, mime.split(";")[0].strip()
                request = response.next_request
            finally:
                await response.aclose()
            if request.url.scheme not in ("http", "https"):
                raise ContentRejectedError(f"media {name} redirects to a {request.url.scheme[:20]!r} URL")
        raise ContentRejectedError(f"media {name} redirects more than {MAX_REDIRECTS} times")

    async def _get(self, request: httpx.Request, name: str) -> httpx.Response:
        try:  # a GET publishes nothing: every transport failure is retryable
            return await self.client.send(request, stream=True)
        except AddressNotAllowedError as exc:
            raise AddressNotAllowedError(f"media {name}: {exc}") from None
        except ResponseTooLarge as exc:  # its declared length
            raise ContentRejectedError(f"media {name} is larger than {exc.limit} bytes") from None
        except httpx.TransportError as exc:
            raise TransientError(f"media {name} could not be downloaded ({type(exc).__name__})") from exc


def _check_status(response: httpx.Response, name: str) -> None:
    status = response.status_code
    if response.is_success:
        return
    if status == 429 or status >= 500:
        raise TransientError(f"media {name} could not be downloaded (HTTP {status})")
    raise ContentRejectedError(f"media {name} could not be downloaded (HTTP {status})")


async def _read(response: httpx.Response, cap: int, name: str) -> bytes:
    try:
        content = await response.aread()
    except ResponseTooLarge as exc:
        raise ContentRejectedError(f"media {name} is larger than {exc.limit} bytes") from None
    except httpx.TransportError as exc:
        raise TransientError(f"media {name}: the download broke off ({type(exc).__name__})") from exc
    if len(content) > cap:  # a transport without the MAX_BYTES extension (a test's)
        raise ContentRejectedError(f"media {name} is larger than {cap} bytes")
    return content
