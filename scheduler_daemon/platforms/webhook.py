"""Generic webhook: POST the post as signed JSON to the connection's ``metadata.url``.

Body ``{post_id, platform, content, media, scheduled_at, campaign_id, user_id}``;
headers ``Idempotency-Key: <post id>`` (a receiver can drop a repeat) and
``X-Scheduler-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed by the
connection's access_token>``. Any 2xx is success; ``id``/``url`` in a JSON answer become
the platform post id and URL. A 429 is retried (the receiver refused the request); a 5xx,
a timeout or a reset may come after the receiver processed the post: an unknown outcome,
never retried blindly (``_http.on_create``). The request (body, signature, headers) is
built before the instant (``build``, run at the claim): at the instant it is only sent.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import ContentRejectedError, PlatformConfigError
from ..models import Connection, Post, PublishResult
from ._http import Ready, body_excerpt, raise_for_generic_status, send
from ._tokens import reconnect
from .base import UNLIMITED, Adapter, Item, PlatformFacts, Prepared, PublishContext


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(post: Post) -> dict[str, Any]:
    return {
        "post_id": str(post.id),
        "platform": post.platform,
        "content": post.content,
        "media": [
            {k: v for k, v in (("url", m.url), ("storage_path", m.storage_path), ("alt", m.alt), ("mime", m.mime)) if v}
            for m in post.media
        ],
        "scheduled_at": post.scheduled_at.isoformat().replace("+00:00", "Z"),
        "campaign_id": str(post.campaign_id) if post.campaign_id else None,
        "user_id": str(post.user_id) if post.user_id else None,
    }


class WebhookAdapter(Adapter):
    # A tenant's own endpoint, so no platform-wide bound; 5 in flight per account
    # (SCHEDULER_WEBHOOK_ACCOUNT_CONCURRENCY) so that one tenant cannot hold every global
    # slot with a slow endpoint. Its token only signs.
    facts = PlatformFacts("webhook", "webhook", tokenless=True, concurrency=(UNLIMITED, 5))

    def build(self, post: Post, connection: Connection, state: Mapping[str, Any]) -> Ready:
        """The signed request, before the instant (``delivery.build_ahead``): it depends on
        nothing that can change between the claim and the send."""
        return Ready(self._request(post, connection))

    def _request(self, post: Post, connection: Connection) -> httpx.Request:
        url = connection.metadata.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PlatformConfigError("webhook connection has no metadata.url (an http:// or https:// URL)")
        body = json.dumps(payload(post), separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "idempotency-key": str(post.id),
            "user-agent": "scheduler-daemon",
        }
        if connection.access_token:
            headers["x-scheduler-signature"] = signature(body, connection.access_token)
        return self.client.build_request("POST", _parsed(url), content=body, headers=headers)

    async def publish(
        self, post: Post, item: Item, connection: Connection, ctx: PublishContext, prepared: Prepared
    ) -> PublishResult:
        request = item.ready.request if item.ready is not None else self._request(post, connection)
        response = await send(self.client, request, what="webhook")
        if response.is_success:
            return _result(response)
        raise_for_generic_status(response, what="webhook", creates=True)
        if response.status_code in (401, 403):
            reason = body_excerpt(response)
            raise reconnect(self.name, f"HTTP {response.status_code}" + (f": {reason}" if reason else ""))
        if response.status_code in (404, 405, 410):
            raise PlatformConfigError(f"webhook URL answered HTTP {response.status_code}: check metadata.url")
        raise ContentRejectedError(f"webhook rejected the post (HTTP {response.status_code}): {body_excerpt(response)}")


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """A burst posts thousands of times to the same few URLs: parse each once."""
    return httpx.URL(url)


def _result(response: httpx.Response) -> PublishResult:
    try:
        data = response.json()
    except ValueError:
        return PublishResult(None, None)
    if not isinstance(data, dict):
        return PublishResult(None, None)
    post_id, url = data.get("id"), data.get("url")
    return PublishResult(
        str(post_id) if post_id is not None else None,
        str(url) if isinstance(url, str) else None,
    )
