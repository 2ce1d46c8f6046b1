"""Per-platform settings (API bases, versions, app credentials, pacing).

Built by ``PlatformSettings.from_env`` from the mapping ``config.Settings.from_env``
passes down, so the environment is still read in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlatformSettings:
    # Upper bound for one media download (bytes), whatever the platform's own limit.
    max_media_bytes: int = 50 * 1024 * 1024
    api_bases: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PlatformSettings:
        bases = {
            key[len("SCHEDULER_") : -len("_API_BASE")].lower(): value.rstrip("/")
            for key, value in env.items()
            if key.startswith("SCHEDULER_") and key.endswith("_API_BASE") and value
        }
        return cls(api_bases=bases)

    def api_base(self, platform: str, default: str) -> str:
        return self.api_bases.get(platform, default)
