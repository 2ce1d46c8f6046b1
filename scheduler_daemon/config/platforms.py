"""Per-platform settings (API bases, versions, app credentials, pacing, media storage).

Built by ``PlatformSettings.from_env`` from the mapping ``Settings.from_env`` passes
down, through the same ``Env`` reader. A malformed value raises ``ConfigError`` naming
the variable. These settings name no platform: per-platform variables are found by
their shape, and each adapter declares its own defaults (``platforms.base.PlatformFacts``).

Variables (``<P>`` is a platform name in upper case: FACEBOOK, INSTAGRAM, LINKEDIN, X,
THREADS, BLUESKY, MASTODON, TELEGRAM, DISCORD, SLACK, WEBHOOK, LOG):

* ``SCHEDULER_<P>_API_BASE``: the API base URL (staging, tests). Also
  ``SCHEDULER_INSTAGRAM_LOGIN_API_BASE`` (graph.instagram.com, Instagram-Login accounts)
  and ``SCHEDULER_LINKEDIN_OAUTH_API_BASE`` (token refresh).
* ``SCHEDULER_GRAPH_API_VERSION`` (``v26.0``), ``SCHEDULER_THREADS_API_VERSION``
  (``v1.0``), ``SCHEDULER_LINKEDIN_VERSION`` (``YYYYMM``, ``202607``): ``platforms.versions``
  warns 60 days before one sunsets and refuses to start past it.
* ``SCHEDULER_<P>_CLIENT_ID`` / ``SCHEDULER_<P>_CLIENT_SECRET``: app credentials used to
  refresh tokens (X, LinkedIn, Slack); never read from a connection row.
  ``SCHEDULER_FACEBOOK_CLIENT_ID`` is the Meta app's id: Facebook Page videos that are not
  Reels need it (their upload session belongs to the app; ``platforms.facebook_video``).
* ``SCHEDULER_<P>_CONCURRENCY`` / ``SCHEDULER_<P>_ACCOUNT_CONCURRENCY``: publishes in
  flight at once per platform and per account (see ``platforms.pacing.Pacer``).
* ``SCHEDULER_MEDIA_POLL_INTERVAL_SECONDS`` / ``SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS``:
  the bounded wait for media processing (Instagram/Threads containers, Mastodon,
  LinkedIn images, X).
* ``SCHEDULER_TOKEN_REFRESH_MARGIN_SECONDS`` (short-lived tokens: X, Slack, Bluesky)
  and ``SCHEDULER_LONG_LIVED_REFRESH_MARGIN_SECONDS`` (60-day tokens: Instagram,
  Threads, LinkedIn): refresh when the token expires within the margin.
* ``SCHEDULER_MASTODON_MAX_CHARACTERS``: the limit when a connection does not carry its
  instance's ``max_characters``.
* ``SCHEDULER_BLUESKY_VIDEO_SERVICE``: Bluesky's video service (``https://video.bsky.app``),
  which processes a video before its post goes out (``platforms.bluesky_video``).
* ``SCHEDULER_MAX_MEDIA_BYTES``: upper bound of one media download held in memory (images).
* ``SCHEDULER_MAX_MEDIA_FILE_BYTES``: upper bound of one media download spooled to disk
  (video; ``mediafile``).
* ``SUPABASE_URL``, ``SUPABASE_SERVICE_KEY`` (or ``SUPABASE_SERVICE_ROLE_KEY``),
  ``SUPABASE_STORAGE_BUCKET`` (optional), ``SUPABASE_SIGNED_URL_SECONDS``: Supabase
  Storage for ``storage_path`` media.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .env import Env

_GRAPH_VERSION = re.compile(r"v\d+\.\d+")
_LINKEDIN_VERSION = re.compile(r"20\d\d(0[1-9]|1[0-2])(\.\d{2})?")
_ACCOUNT = "_account"


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PlatformSettings:
    # Upper bound for one media download (bytes), whatever the platform's own limit.
    max_media_bytes: int = 50 * 1024 * 1024
    # Upper bound for one media download spooled to a temporary file (video), on disk.
    max_media_file_bytes: int = 1024 * 1024 * 1024
    api_bases: Mapping[str, str] = field(default_factory=dict)
    # Current versions (platforms/versions.py holds their sunset dates and the warning before them).
    graph_api_version: str = "v26.0"  # newest Graph version, released 2026-07-29, kept about two years
    threads_api_version: str = "v1.0"
    linkedin_version: str = "202607"  # newest LinkedIn month published, supported at least a year
    clients: Mapping[str, ClientCredentials] = field(default_factory=dict, repr=False)
    # Overrides of the declared (per platform, per account) publishes in flight.
    concurrency: Mapping[str, int] = field(default_factory=dict)
    account_concurrency: Mapping[str, int] = field(default_factory=dict)
    media_poll_interval_seconds: float = 2.0
    media_poll_timeout_seconds: float = 120.0
    token_refresh_margin_seconds: float = 300.0
    long_lived_refresh_margin_seconds: float = 7 * 86400.0
    mastodon_max_characters: int = 500
    bluesky_video_service: str = "https://video.bsky.app"
    supabase_url: str | None = None
    supabase_service_key: str | None = field(default=None, repr=False)
    supabase_bucket: str | None = None
    signed_url_seconds: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlatformSettings:
        read = Env(env)
        concurrency = {p: read.integer(name, 0) for p, name in read.per_platform("SCHEDULER_*_CONCURRENCY").items()}
        return cls(
            max_media_bytes=read.integer("SCHEDULER_MAX_MEDIA_BYTES", cls.max_media_bytes),
            max_media_file_bytes=read.integer("SCHEDULER_MAX_MEDIA_FILE_BYTES", cls.max_media_file_bytes),
            api_bases={
                p: url for p, name in read.per_platform("SCHEDULER_*_API_BASE").items() if (url := read.url(name))
            },
            graph_api_version=read.pattern(
                "SCHEDULER_GRAPH_API_VERSION", _GRAPH_VERSION, cls.graph_api_version, "like v26.0"
            ),
            threads_api_version=read.pattern(
                "SCHEDULER_THREADS_API_VERSION", _GRAPH_VERSION, cls.threads_api_version, "like v1.0"
            ),
            linkedin_version=read.pattern(
                "SCHEDULER_LINKEDIN_VERSION", _LINKEDIN_VERSION, cls.linkedin_version, "YYYYMM"
            ),
            clients=_clients(read),
            concurrency={p: n for p, n in concurrency.items() if not p.endswith(_ACCOUNT)},
            account_concurrency={p.removesuffix(_ACCOUNT): n for p, n in concurrency.items() if p.endswith(_ACCOUNT)},
            media_poll_interval_seconds=read.number(
                "SCHEDULER_MEDIA_POLL_INTERVAL_SECONDS", cls.media_poll_interval_seconds, minimum=0.0
            ),
            media_poll_timeout_seconds=read.number(
                "SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS", cls.media_poll_timeout_seconds, minimum=0.0
            ),
            token_refresh_margin_seconds=read.number(
                "SCHEDULER_TOKEN_REFRESH_MARGIN_SECONDS", cls.token_refresh_margin_seconds, minimum=0.0
            ),
            long_lived_refresh_margin_seconds=read.number(
                "SCHEDULER_LONG_LIVED_REFRESH_MARGIN_SECONDS", cls.long_lived_refresh_margin_seconds, minimum=0.0
            ),
            mastodon_max_characters=read.integer("SCHEDULER_MASTODON_MAX_CHARACTERS", cls.mastodon_max_characters),
            bluesky_video_service=read.url("SCHEDULER_BLUESKY_VIDEO_SERVICE") or cls.bluesky_video_service,
            supabase_url=read.url("SUPABASE_URL"),
            supabase_service_key=read.text("SUPABASE_SERVICE_KEY") or read.text("SUPABASE_SERVICE_ROLE_KEY"),
            supabase_bucket=read.text("SUPABASE_STORAGE_BUCKET"),
            signed_url_seconds=read.integer("SUPABASE_SIGNED_URL_SECONDS", cls.signed_url_seconds),
        )

    def api_base(self, platform: str, default: str) -> str:
        return self.api_bases.get(platform, default)

    def client(self, platform: str) -> ClientCredentials:
        return self.clients.get(platform, ClientCredentials())

    def limits(self, platform: str, default: tuple[int, int]) -> tuple[int, int]:
        """(per platform, per account) publishes in flight for ``platform``: the
        ``SCHEDULER_<P>_[ACCOUNT_]CONCURRENCY`` overrides, else ``default``."""
        return (
            self.concurrency.get(platform, default[0]),
            self.account_concurrency.get(platform, default[1]),
        )


def _clients(read: Env) -> dict[str, ClientCredentials]:
    ids, secrets = read.per_platform("SCHEDULER_*_CLIENT_ID"), read.per_platform("SCHEDULER_*_CLIENT_SECRET")
    return {
        p: ClientCredentials(read.text(ids[p]) if p in ids else None, read.text(secrets[p]) if p in secrets else None)
        for p in sorted({*ids, *secrets})
    }
