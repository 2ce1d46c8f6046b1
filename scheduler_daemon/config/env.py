"""The one reader of the environment: typed, validated values, errors naming the variable.

Secrets may also come from files in ``$CREDENTIALS_DIRECTORY`` (systemd
``LoadCredential=``): a file named like the variable, in lower or upper case, e.g.
``database_url``. ``load_credentials`` fills unset variables from them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from ..errors import ConfigError

N = TypeVar("N", int, float)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def load_credentials(env: dict[str, str]) -> None:
    """Fill unset variables from systemd credential files named after them.

    A variable set to blank counts as unset: an env file's ``DATABASE_URL=`` line left
    empty must not hide the credential file (and silently fall back to embedded).
    """
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return
    for path in sorted(Path(directory).glob("*")):
        name = path.name.upper()
        if path.is_file() and not env.get(name, "").strip():
            try:
                env[name] = path.read_text(encoding="utf-8").strip()
            except (UnicodeDecodeError, OSError) as exc:
                raise ConfigError(f"credential file {path} is not readable UTF-8 text ({type(exc).__name__})") from None


class Env:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, *, minimum: int = 1) -> int:
        return self._number(name, default, int, "a whole number", minimum)

    def number(self, name: str, default: float, *, minimum: float) -> float:
        return self._number(name, default, float, "a number", minimum)

    def _number(self, name: str, default: N, kind: Callable[[str], N], what: str, minimum: float) -> N:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not {what}") from None
        if value != value or value < minimum or value == float("inf"):
            raise ConfigError(f"{name}={raw!r} must be a finite number of at least {minimum}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        raw = (self.text(name) or default).lower()
        if raw not in allowed:
            raise ConfigError(f"{name}={raw!r} must be one of: {', '.join(allowed)}")
        return raw

    def address(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        _host, sep, port = raw.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}={raw!r} must be host:port, e.g. 127.0.0.1:9464")
        return raw

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

    def networks(self, name: str) -> tuple[Network, ...]:
        """Comma-separated CIDRs (a bare address is one host), e.g. ``10.0.0.0/8,fd00::/8``."""
        networks: list[Network] = []
        for part in (self.text(name) or "").split(","):
            text = part.strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text))
            except ValueError as exc:
                raise ConfigError(
                    f"{name}: {text[:60]!r} is not a network in CIDR notation like 10.0.0.0/8 or fd00::/8 ({exc})"
                ) from None
        return tuple(networks)

    def per_platform(self, pattern: str) -> dict[str, str]:
        """``{platform: variable}`` for every set variable ``pattern`` matches, its ``*``
        standing for a platform name: ``SCHEDULER_*_API_BASE``.

        Platform settings are found by their shape, not from a list of platforms: the
        settings know no platform, and a new adapter's variables work without an edit here.
        """
        prefix, suffix = pattern.split("*")
        found: dict[str, str] = {}
        for name in self.env:
            shaped = name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix)
            if shaped and self.text(name) is not None:
                found[name[len(prefix) : -len(suffix)].lower()] = name
        return found
