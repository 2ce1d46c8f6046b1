"""The API versions the daemon pins, when each stops working, and the warning before it.

LinkedIn (``SCHEDULER_LINKEDIN_VERSION``, ``YYYYMM``) supports a monthly version for at
least a year; a sunset version answers HTTP 426, so every LinkedIn post would fail. Meta
(``SCHEDULER_GRAPH_API_VERSION``, Facebook and Instagram) keeps a version about two
years, then silently serves calls with the next version, whose behaviour may differ.

The table below holds the published sunset dates (``confirmed``) and, where none is
published yet, an estimate (``confirmed=False``: LinkedIn's "at least one year", the 15th
of the month a year after release; Meta's two years after release). A LinkedIn version
missing from the table gets that estimate too; a Graph version missing from it is not
judged.

``notices(settings, today)`` is the one rule, pure and tested with explicit dates:

* sunset within ``WARN_DAYS`` (60) days: a warning, at start and in ``doctor``;
* a confirmed sunset today or earlier: an error naming the setting (``ConfigError`` at
  start, ``doctor`` fails);
* an estimated sunset today or earlier: only a warning. An estimate is a guess (LinkedIn
  keeps versions "a minimum of one year"), and a guess must never stop the daemon: if
  the version is really gone, LinkedIn answers 426 and each post says so, naming the
  setting.

Sources (read 2026-12): learn.microsoft.com/linkedin/marketing/integrations/migrations
(sunset table) and /marketing/versioning (latest version 202607, "supported for a
minimum of one year"); developers.facebook.com/docs/graph-api/changelog/versions
(v26.0 released 2026-07-29, expiry to be announced; v25.0 until 2028-07-29).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..config.platforms import PlatformSettings
from ..errors import ConfigError

__all__ = ["GRAPH", "LINKEDIN", "WARN_DAYS", "Notice", "Sunset", "doctor_checks", "notices", "startup_warnings"]

WARN_DAYS = 60


@dataclass(frozen=True)
class Sunset:
    on: dt.date
    confirmed: bool = True  # False: expected from the platform's policy, not yet announced


# Confirmed: LinkedIn's migrations table. Estimated (confirmed=False): not announced yet.
LINKEDIN: dict[str, Sunset] = {
    "202510": Sunset(dt.date(2026, 10, 15)),
    "202511": Sunset(dt.date(2026, 11, 16)),
    "202601": Sunset(dt.date(2027, 1, 15)),
    "202602": Sunset(dt.date(2027, 2, 15)),
    "202603": Sunset(dt.date(2027, 3, 16)),
    "202607": Sunset(dt.date(2027, 7, 15), confirmed=False),  # the default; not in the table yet
}
# Confirmed: Meta's changelog ("available until"). Estimated: "TBD" there.
GRAPH: dict[str, Sunset] = {
    "v20.0": Sunset(dt.date(2026, 9, 24)),
    "v21.0": Sunset(dt.date(2027, 1, 21)),
    "v22.0": Sunset(dt.date(2027, 5, 20)),
    "v23.0": Sunset(dt.date(2027, 10, 8)),
    "v24.0": Sunset(dt.date(2028, 2, 18)),
    "v25.0": Sunset(dt.date(2028, 7, 29)),
    "v26.0": Sunset(dt.date(2028, 7, 29), confirmed=False),  # "TBD"; at least two years after 2026-07-29
}


@dataclass(frozen=True)
class Notice:
    setting: str
    version: str
    sunset: Sunset
    passed: bool  # the sunset is today or earlier

    @property
    def expired(self) -> bool:
        """An error (the daemon refuses to start): only a confirmed sunset that has passed."""
        return self.passed and self.sunset.confirmed

    @property
    def message(self) -> str:
        platform = "LinkedIn" if self.setting == "SCHEDULER_LINKEDIN_VERSION" else "Meta's Graph API"
        head = f"{self.setting}={self.version}: {platform}"
        when = self.sunset.on.isoformat()
        if not self.sunset.confirmed:
            guess = f"{head} has not announced this version's sunset; it is expected around {when}"
            if self.passed:
                return f"{guess}, which has passed: if posts fail with HTTP 426, set a current version"
            return f"{guess}: move to a newer one"
        if self.passed:
            return f"{head} sunset this version on {when}; set a current one"
        return f"{head} sunsets this version on {when}; move to a newer one"


def linkedin_sunset(version: str) -> Sunset:
    """The table's date, else LinkedIn's minimum: the 15th, a year after the release month."""
    month_version = version[:6]  # a patch version (202508.02) lives as long as its month
    if month_version in LINKEDIN:
        return LINKEDIN[month_version]
    year, month = int(version[:4]), int(version[4:6])
    return Sunset(dt.date(year + 1, month, 15), confirmed=False)


def notices(settings: PlatformSettings, today: dt.date) -> list[Notice]:
    """What the configured versions call for on ``today``: warnings and errors."""
    found = []
    pinned = [("SCHEDULER_LINKEDIN_VERSION", settings.linkedin_version, linkedin_sunset(settings.linkedin_version))]
    graph = GRAPH.get(settings.graph_api_version)
    if graph is not None:
        pinned.append(("SCHEDULER_GRAPH_API_VERSION", settings.graph_api_version, graph))
    for setting, version, sunset in pinned:
        if (sunset.on - today).days <= WARN_DAYS:
            found.append(Notice(setting, version, sunset, passed=sunset.on <= today))
    return found


def startup_warnings(settings: PlatformSettings, today: dt.date | None = None) -> list[str]:
    """The warnings to log at start; raises ``ConfigError`` for a version past its confirmed sunset."""
    found = notices(settings, today or dt.date.today())
    expired = [n.message for n in found if n.expired]
    if expired:
        raise ConfigError("; ".join(expired))
    return [n.message for n in found]


def doctor_checks(settings: PlatformSettings, today: dt.date | None = None) -> list[tuple[str, str, str]]:
    """``doctor``'s (name, ok/warn/fail, detail) for the pinned API versions."""
    found = notices(settings, today or dt.date.today())
    if not found:
        graph = GRAPH.get(settings.graph_api_version)
        until = f" (until {graph.on.isoformat()}{'' if graph.confirmed else ', expected'})" if graph else ""
        linkedin = linkedin_sunset(settings.linkedin_version)
        detail = (
            f"LinkedIn {settings.linkedin_version} (until {linkedin.on.isoformat()}"
            f"{'' if linkedin.confirmed else ', expected'}), Graph {settings.graph_api_version}{until}"
        )
        return [("api versions", "ok", detail)]
    return [("api versions", "fail" if n.expired else "warn", n.message) for n in found]
