"""Per-platform settings (API bases, versions, app credentials, pacing, media storage).

Built by ``PlatformSettings.from_env`` from the mapping ``config.Settings.from_env``
passes down, so the environment is still read in one place. A malformed value raises
``ConfigError`` naming the variable.

Variables (``<P>`` is a platform name in upper case: FACEBOOK, INSTAGRAM, LINKEDIN, X,
THREADS, BLUESKY, MASTODON, TELEGRAM, DISCORD, SLACK):

* ``SCHEDULER_<P>_API_BASE``: the API base URL (staging, tests). Also
  ``SCHEDULER_INSTAGRAM_LOGIN_API_BASE`` (graph.instagram.com, Instagram-Login accounts)
  and ``SCHEDULER_LINKEDIN_OAUTH_API_BASE`` (token refresh).
* ``SCHEDULER_GRAPH_API_VERSION`` (``v26.0``), ``SCHEDULER_THREADS_API_VERSION``
  (``v1.0``), ``SCHEDULER_LINKEDIN_VERSION`` (``YYYYMM``, ``202607``): ``versions.py``
  warns 60 days before one sunsets and refuses to start past it.
* ``SCHEDULER_<P>_CLIENT_ID`` / ``SCHEDULER_<P>_CLIENT_SECRET``: app credentials used to
  refresh tokens (X, LinkedIn, Slack); never read from a connection row.
* ``SCHEDULER_<P>_CONCURRENCY`` / ``SCHEDULER_<P>_ACCOUNT_CONCURRENCY``: publishes in
  flight at once per platform and per account (see ``pacing.Pacer``).
* ``SCHEDULER_MEDIA_POLL_INTERVAL_SECONDS`` / ``SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS``:
  the bounded wait for media processing (Instagram/Threads containers, Mastodon,
  LinkedIn images, X).
* ``SCHEDULER_TOKEN_REFRESH_MARGIN_SECONDS`` (short-lived tokens: X, Slack, Bluesky)
  and ``SCHEDULER_LONG_LIVED_REFRESH_MARGIN_SECONDS`` (60-day tokens: Instagram,
  Threads, LinkedIn): refresh when the token expires within the margin.
* ``SCHEDULER_MASTODON_MAX_CHARACTERS``: the limit when a connection does not carry its
  instance's ``max_characters``.
* ``SCHEDULER_MAX_MEDIA_BYTES``: upper bound of one media download.
* ``SUPABASE_URL``, ``SUPABASE_SERVICE_KEY`` (or ``SUPABASE_SERVICE_ROLE_KEY``),
  ``SUPABASE_STORAGE_BUCKET`` (optional), ``SUPABASE_SIGNED_URL_SECONDS``: Supabase
  Storage for ``storage_path`` media.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError

PLATFORMS: tuple[str, ...] = (
    "facebook",
    "instagram",
    "linkedin",
    "x",
    "threads",
    "bluesky",
    "mastodon",
    "telegram",
    "discord",
    "slack",
)

# (per platform, per account) publishes in flight. LinkedIn's and Instagram's limits are
# small and unpublished; chats and channels take about one message per second.
UNLIMITED = 10_000  # a limit this high means none: the pacer skips its semaphores
DEFAULT_CONCURRENCY: Mapping[str, tuple[int, int]] = {
    "facebook": (10, 2),
    "instagram": (5, 1),
    "linkedin": (2, 1),
    "x": (10, 2),
    "threads": (5, 1),
    "bluesky": (10, 2),
    "mastodon": (10, 2),
    "telegram": (20, 1),
    "discord": (10, 1),
    "slack": (10, 1),
    # Your own endpoint and the demo: bounded only by SCHEDULER_CONCURRENCY.
    "webhook": (UNLIMITED, UNLIMITED),
    "log": (UNLIMITED, UNLIMITED),
}
FALLBACK_CONCURRENCY = (50, 5)

_GRAPH_VERSION = re.compile(r"v\d+\.\d+")
_LINKEDIN_VERSION = re.compile(r"20\d\d(0[1-9]|1[0-2])(\.\d{2})?")
# Current versions (see versions.py for their sunset dates and the warning before them).
GRAPH_API_VERSION = "v26.0"  # newest Graph version, released 2026-07-29, kept about two years
LINKEDIN_VERSION = "202607"  # newest LinkedIn month published, supported at least a year


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PlatformSettings:
    # Upper bound for one media download (bytes), whatever the platform's own limit.
    max_media_bytes: int = 50 * 1024 * 1024
    api_bases: Mapping[str, str] = field(default_factory=dict)
    graph_api_version: str = GRAPH_API_VERSION
    threads_api_version: str = "v1.0"
    linkedin_version: str = LINKEDIN_VERSION
    clients: Mapping[str, ClientCredentials] = field(default_factory=dict, repr=False)
    concurrency: Mapping[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_CONCURRENCY))
    media_poll_interval_seconds: float = 2.0
    media_poll_timeout_seconds: float = 120.0
    token_refresh_margin_seconds: float = 300.0
    long_lived_refresh_margin_seconds: float = 7 * 86400.0
    mastodon_max_characters: int = 500
    supabase_url: str | None = None
    supabase_service_key: str | None = field(default=None, repr=False)
    supabase_bucket: str | None = None
    signed_url_seconds: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlatformSettings:
        read = _Env(env)
        return cls(
            max_media_bytes=read.integer("SCHEDULER_MAX_MEDIA_BYTES", 50 * 1024 * 1024),
            api_bases=_api_bases(env),
            graph_api_version=read.pattern("SCHEDULER_GRAPH_API_VERSION", _GRAPH_VERSION, GRAPH_API_VERSION, "like v26.0"),
            threads_api_version=read.pattern("SCHEDULER_THREADS_API_VERSION", _GRAPH_VERSION, "v1.0", "like v1.0"),
            linkedin_version=read.pattern("SCHEDULER_LINKEDIN_VERSION", _LINKEDIN_VERSION, LINKEDIN_VERSION, "YYYYMM"),
            clients={p: c for p in PLATFORMS if (c := _client(read, p)) != ClientCredentials()},
            concurrency=_concurrency(read),
            media_poll_interval_seconds=read.number("SCHEDULER_MEDIA_POLL_INTERVAL_SECONDS", 2.0, 0.0),
            media_poll_timeout_seconds=read.number("SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS", 120.0, 0.0),
            token_refresh_margin_seconds=read.number("SCHEDULER_TOKEN_REFRESH_MARGIN_SECONDS", 300.0, 0.0),
            long_lived_refresh_margin_seconds=read.number(
                "SCHEDULER_LONG_LIVED_REFRESH_MARGIN_SECONDS", 7 * 86400.0, 0.0
            ),
            mastodon_max_characters=read.integer("SCHEDULER_MASTODON_MAX_CHARACTERS", 500),
            supabase_url=read.url("SUPABASE_URL"),
            supabase_service_key=read.text("SUPABASE_SERVICE_KEY") or read.text("SUPABASE_SERVICE_ROLE_KEY"),
            supabase_bucket=read.text("SUPABASE_STORAGE_BUCKET"),
            signed_url_seconds=read.integer("SUPABASE_SIGNED_URL_SECONDS", 3600),
        )

    def api_base(self, platform: str, default: str) -> str:
        return self.api_bases.get(platform, default)

    def client(self, platform: str) -> ClientCredentials:
        return self.clients.get(platform, ClientCredentials())

    def limits(self, platform: str) -> tuple[int, int]:
        """(per platform, per account) concurrency for ``platform``."""
        return self.concurrency.get(platform, FALLBACK_CONCURRENCY)


def _api_bases(env: Mapping[str, str]) -> dict[str, str]:
    bases: dict[str, str] = {}
    for key, value in env.items():
        if not (key.startswith("SCHEDULER_") and key.endswith("_API_BASE") and value.strip()):
            continue
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ConfigError(f"{key}={value[:100]!r} must be an http:// or https:// URL")
        bases[key[len("SCHEDULER_") : -len("_API_BASE")].lower()] = value.rstrip("/")
    return bases


def _client(read: _Env, platform: str) -> ClientCredentials:
    prefix = f"SCHEDULER_{platform.upper()}"
    return ClientCredentials(read.text(f"{prefix}_CLIENT_ID"), read.text(f"{prefix}_CLIENT_SECRET"))


def _concurrency(read: _Env) -> dict[str, tuple[int, int]]:
    limits = dict(DEFAULT_CONCURRENCY)
    for platform in (*PLATFORMS, "webhook", "log"):
        per_platform, per_account = limits.get(platform, FALLBACK_CONCURRENCY)
        prefix = f"SCHEDULER_{platform.upper()}"
        limits[platform] = (
            read.integer(f"{prefix}_CONCURRENCY", per_platform),
            read.integer(f"{prefix}_ACCOUNT_CONCURRENCY", per_account),
        )
    return limits


class _Env:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if value < minimum:
            raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
        return value

    def number(self, name: str, default: float, minimum: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number") from None
        if value != value or value < minimum or value == float("inf"):
            raise ConfigError(f"{name}={raw!r} must be a finite number of at least {minimum}")
        return value

    def pattern(self, name: str, regex: re.Pattern[str], default: str, shape: str) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        if not regex.fullmatch(raw):
            raise ConfigError(f"{name}={raw[:50]!r} must be {shape}")
        return raw

    def url(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        if not raw.startswith(("http://", "https://")):
            raise ConfigError(f"{name}={raw[:100]!r} must be an http:// or https:// URL")
        return raw.rstrip("/")
