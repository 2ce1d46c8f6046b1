"""Platform name → adapter. Adding a platform is one module and one line here."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ..errors import InvalidPostError
from .base import AdapterFactory, PlatformAdapter
from .log import LogAdapter
from .settings import PlatformSettings
from .webhook import WebhookAdapter

FACTORIES: tuple[AdapterFactory, ...] = (WebhookAdapter, LogAdapter)


class Registry:
    def __init__(self, adapters: Mapping[str, PlatformAdapter]) -> None:
        self._adapters = dict(adapters)

    @classmethod
    def build(cls, settings: PlatformSettings, client: httpx.AsyncClient) -> Registry:
        return cls({factory.name: factory(settings, client) for factory in FACTORIES})

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
