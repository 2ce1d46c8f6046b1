"""Platform name → adapter. Adding a platform is one module and one line here."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ..errors import InvalidPostError
from .base import AdapterFactory, PlatformAdapter
from .bluesky import BlueskyAdapter
from .discord import DiscordAdapter
from .facebook import FacebookAdapter
from .instagram import InstagramAdapter
from .linkedin import LinkedInAdapter
from .log import LogAdapter
from .mastodon import MastodonAdapter
from .settings import PlatformSettings
from .slack import SlackAdapter
from .telegram import TelegramAdapter
from .threads import ThreadsAdapter
from .webhook import WebhookAdapter
from .x import XAdapter

FACTORIES: tuple[AdapterFactory, ...] = (
    WebhookAdapter,
    LogAdapter,
    FacebookAdapter,
    InstagramAdapter,
    LinkedInAdapter,
    XAdapter,
    ThreadsAdapter,
    BlueskyAdapter,
    MastodonAdapter,
    TelegramAdapter,
    DiscordAdapter,
    SlackAdapter,
)


class Registry:
    def __init__(self, adapters: Mapping[str, PlatformAdapter]) -> None:
        self._adapters = dict(adapters)

    @classmethod
    def build(cls, settings: PlatformSettings, client: httpx.AsyncClient) -> Registry:
        return cls({factory.name: factory(settings, client) for factory in FACTORIES})

    @property
    def idempotent(self) -> frozenset[str]:
        """Platforms whose adapter makes a repeated publish of one post harmless."""
        return frozenset(n for n, a in self._adapters.items() if a.idempotent)

    @property
    def names(self) -> list[str]:
        return sorted(self._adapters)

    def get(self, platform: str) -> PlatformAdapter:
        try:
            return self._adapters[platform]
        except KeyError:
            raise InvalidPostError(
                f"unknown platform {platform[:50]!r}; supported: {', '.join(self.names)}"
            ) from None
