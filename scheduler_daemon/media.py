"""Media resolution: what a platform needs for a media item (a URL or the bytes).

Plain ``url`` items work as they are. ``storage_path`` items need Supabase Storage
(the ``supabase`` extra plus ``SUPABASE_URL`` and a service key).
"""

from __future__ import annotations

import httpx

from .errors import ContentRejectedError, PlatformConfigError
from .models import MediaItem
from .platforms.http import send
from .platforms.settings import PlatformSettings


class MediaResolver:
    def __init__(self, settings: PlatformSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def media_url(self, item: MediaItem) -> str:
        if item.url:
            return item.url
        raise PlatformConfigError(
            f"media {item.storage_path!r} is a Supabase storage path: install the 'supabase' extra "
            "and set SUPABASE_URL and SUPABASE_SERVICE_KEY"
        )

    async def media_bytes(self, item: MediaItem, max_bytes: int) -> tuple[bytes, str]:
        url = await self.media_url(item)
        cap = min(max_bytes, self.settings.max_media_bytes)
        request = self.client.build_request("GET", url)
        response = await send(self.client, request, what="media download")
        # not streamed yet: replaced by a streamed, capped download with the supabase work
        if not response.is_success:
            raise ContentRejectedError(f"media {url[:200]} could not be downloaded (HTTP {response.status_code})")
        if len(response.content) > cap:
            raise ContentRejectedError(f"media {url[:200]} is larger than {cap} bytes")
        mime = item.mime or response.headers.get("content-type", "application/octet-stream").split(";")[0]
        return response.content, mime
