"""Platform name → adapter. Adding a platform is one module and one line in ``FACTORIES``.

Every other list of platforms is derived from the facts the adapters declare
(``base.PlatformFacts``): the names, the display names, which ones deduplicate a repeat,
which ones need no token, the default pacing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx

from ..config.platforms import PlatformSettings
from ..errors import InvalidPostError
from .base import AdapterFactory, PlatformAdapter, PlatformFacts
from .bluesky import BlueskyAdapter
from .discord import DiscordAdapter
from .facebook import FacebookAdapter
from .instagram import InstagramAdapter
from .linkedin import LinkedInAdapter
from .log import LogAdapter
from .mastodon import MastodonAdapter
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

FACTS: Mapping[str, PlatformFacts] = {factory.facts.name: factory.facts for factory in FACTORIES}
NAMES: tuple[str, ...] = tuple(sorted(FACTS))
IDEMPOTENT: frozenset[str] = frozenset(n for n, f in FACTS.items() if f.idempotent)
FOREVER = 100 * 365.25 * 86400.0  # a deduplication window without a limit, in seconds
FALLBACK_CONCURRENCY = PlatformFacts("", "").concurrency  # an unknown platform's (never published)

# Variables of these names are settings of no platform: SCHEDULER_INSTAGRAM_LOGIN_API_BASE, ...
_AUXILIARY = frozenset({"instagram_login", "linkedin_oauth"})


def concurrency(settings: PlatformSettings, platform: str) -> tuple[int, int]:
    """(per platform, per account) publishes in flight: the settings' override, else the declared default."""
    facts = FACTS.get(platform)
    return settings.limits(platform, facts.concurrency if facts else FALLBACK_CONCURRENCY)


def unknown_platforms(settings: PlatformSettings) -> list[str]:
    """Platform names the per-platform settings mention that no adapter declares (a typo
    in ``SCHEDULER_<P>_*`` would otherwise be ignored without a word)."""
    named: Iterable[str] = (
        *settings.api_bases,
        *settings.clients,
        *settings.concurrency,
        *settings.account_concurrency,
    )
    return sorted({n for n in named if n not in FACTS and n not in _AUXILIARY})


class Registry:
    def __init__(self, adapters: Mapping[str, PlatformAdapter]) -> None:
        self._adapters = dict(adapters)

    @classmethod
    def build(
        cls, settings: PlatformSettings, client: httpx.AsyncClient, factories: Iterable[AdapterFactory] = FACTORIES
    ) -> Registry:
        return cls({factory.facts.name: factory(settings, client) for factory in factories})

    @property
    def idempotent(self) -> frozenset[str]:
        """Platforms whose adapter makes a repeated publish of one post harmless."""
        return frozenset(n for n, a in self._adapters.items() if a.facts.idempotent)

    @property
    def dedupe_windows(self) -> dict[str, float]:
        """``{platform: seconds}`` a repeat is deduplicated after the first send, for every
        idempotent platform (one without a limit: ``FOREVER``)."""
        return {
            n: FOREVER if a.facts.dedupe_window_seconds is None else a.facts.dedupe_window_seconds
            for n, a in self._adapters.items()
            if a.facts.idempotent
        }

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
