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
``media_file`` is the same download spooled to an unlinked temporary file in the spool
directory (``mediafile.Spool``), capped at the smaller of the platform's limit and
``SCHEDULER_MAX_MEDIA_FILE_BYTES``, and probed: video, never held whole in memory. Its
request may last the attempt's deadline, not one request's (a large video takes longer than
``SCHEDULER_HTTP_TIMEOUT_SECONDS`` to arrive; the attempt's deadline still bounds it).

Messages name the item by its storage path or its URL without the query string: a signed
URL's token never reaches a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import httpx

from ..config.platforms import PlatformSettings
from ..errors import (
    AddressNotAllowedError,
    ContentRejectedError,
    MediaTooLargeError,
    PlatformConfigError,
    TransientError,
)
from ..mediafile import MediaFile, MediaTooLarge, Spool
from ..models import MediaItem
from ..net.transport import MAX_BYTES, ResponseTooLarge
from ..platforms._calls import filename

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
        self, settings: PlatformSettings, client: httpx.AsyncClient, storage: SignedUrls | None = None, *,
        spool_dir: Path | None = None, download_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.spool_dir = spool_dir or Path(tempfile.gettempdir()) / "scheduler-daemon-spool"
        self.download_seconds = download_seconds  # a spooled download's deadline (None: the client's)
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
        async with self._download(item, cap, owner, None) as response:
            return await _read(response, cap, label(item)), _mime(item, response)

    @contextlib.asynccontextmanager
    async def media_file(self, item: MediaItem, max_bytes: int, owner: uuid.UUID | None) -> AsyncIterator[MediaFile]:
        """The item spooled to a private temporary file and probed; freed on exit."""
        cap = min(max_bytes, self.settings.max_media_file_bytes)
        name = label(item)
        async with self._download(item, cap, owner, self.download_seconds) as response:
            spool = Spool(self.spool_dir, cap)
            try:
                async for chunk in response.aiter_bytes():
                    await spool.write(chunk)
            except (ResponseTooLarge, MediaTooLarge):
                spool.discard()
                raise MediaTooLargeError(f"media {name} is larger than {cap} bytes", cap) from None
            except httpx.TransportError as exc:
                spool.discard()
                raise TransientError(f"media {name}: the download broke off ({type(exc).__name__})") from exc
            except BaseException:
                spool.discard()
                raise
            mime = _mime(item, response)
            file = await spool.finish(mime, filename(item, mime, 0))
        try:
            yield file
        finally:
            file.close()

    @contextlib.asynccontextmanager
    async def _download(
        self, item: MediaItem, cap: int, owner: uuid.UUID | None, seconds: float | None
    ) -> AsyncIterator[httpx.Response]:
        """The answer of the item's URL (redirects followed, each hop a new request under the
        guard), status checked, its body still to read."""
        name = label(item)
        timeout = httpx.Timeout(seconds) if seconds is not None else httpx.USE_CLIENT_DEFAULT
        request = self.client.build_request(
            "GET", await self.media_url(item, owner), extensions={MAX_BYTES: cap}, timeout=timeout
        )
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._get(request, name)
            try:
                if response.next_request is None:
                    _check_status(response, name)
                    yield response
                    return
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
            raise MediaTooLargeError(f"media {name} is larger than {exc.limit} bytes", exc.limit) from None
        except httpx.TransportError as exc:
            raise TransientError(f"media {name} could not be downloaded ({type(exc).__name__})") from exc


def _mime(item: MediaItem, response: httpx.Response) -> str:
    mime = item.mime or response.headers.get("content-type", "application/octet-stream")
    return mime.split(";")[0].strip()


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
        raise MediaTooLargeError(f"media {name} is larger than {exc.limit} bytes", exc.limit) from None
    except httpx.TransportError as exc:
        raise TransientError(f"media {name}: the download broke off ({type(exc).__name__})") from exc
    if len(content) > cap:  # a transport without the MAX_BYTES extension (a test's)
        raise MediaTooLargeError(f"media {name} is larger than {cap} bytes", cap)
    return content
