"""The pinned API versions: current defaults, and the warning before they sunset."""

from __future__ import annotations

import datetime as dt

import pytest

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.errors import ConfigError, PlatformConfigError
from scheduler_daemon.platforms.versions import (
    GRAPH,
    LINKEDIN,
    WARN_DAYS,
    doctor_checks,
    linkedin_sunset,
    notices,
    startup_warnings,
)
from support.platforms.cases import CASES, adapter, connection, post, settings
from support.platforms.context import FakeContext, Store

TODAY = dt.date(2026, 12, 1)


def configured(linkedin: str | None = None, graph: str | None = None) -> PlatformSettings:
    env = {}
    if linkedin:
        env["SCHEDULER_LINKEDIN_VERSION"] = linkedin
    if graph:
        env["SCHEDULER_GRAPH_API_VERSION"] = graph
    return PlatformSettings.from_env(env)


def test_defaults_have_more_than_a_year_left() -> None:
    defaults = PlatformSettings()
    assert (defaults.linkedin_version, defaults.graph_api_version) == ("202607", "v26.0")
    assert notices(defaults, TODAY) == []
    assert (GRAPH["v26.0"].on - TODAY).days > 365
    assert linkedin_sunset(defaults.linkedin_version).on > TODAY + dt.timedelta(days=180)
    assert PlatformSettings.from_env({}).graph_api_version == "v26.0"


def test_warning_within_sixty_days_error_on_and_after_the_sunset() -> None:
    old = configured(linkedin="202601")  # sunset 2027-01-15
    sunset = dt.date(2027, 1, 15)
    assert notices(old, sunset - dt.timedelta(days=WARN_DAYS + 1)) == []
    [warning] = notices(old, sunset - dt.timedelta(days=WARN_DAYS))
    assert not warning.expired and "SCHEDULER_LINKEDIN_VERSION=202601" in warning.message
    assert "2027-01-15" in warning.message
    [error] = notices(old, sunset)
    assert error.expired
    [error] = notices(old, sunset + dt.timedelta(days=300))
    assert error.expired


def test_graph_versions_are_judged_by_meta_s_dates() -> None:
    [warning] = notices(configured(graph="v21.0"), TODAY)  # available until 2027-01-21
    assert "SCHEDULER_GRAPH_API_VERSION=v21.0" in warning.message and not warning.expired
    [error] = notices(configured(graph="v20.0"), TODAY)  # 2026-09-24
    assert error.expired
    assert notices(configured(graph="v99.0"), TODAY) == []  # unknown: not judged


def test_unlisted_linkedin_months_expire_a_year_after_release() -> None:
    assert linkedin_sunset("202512").on == dt.date(2026, 12, 15)
    assert not linkedin_sunset("202512").confirmed
    assert linkedin_sunset("202603.01") == linkedin_sunset("202603")


def test_an_estimated_sunset_only_warns_even_after_its_date() -> None:
    """LinkedIn has announced no date for 202512 (the estimate is 2026-12-15): a guess
    must not stop the daemon. If the version is really gone, each post's 426 says so."""
    after = dt.date(2027, 1, 1)
    [warning] = notices(configured(linkedin="202512"), after)
    assert warning.passed and not warning.expired
    assert "has not announced" in warning.message and "HTTP 426" in warning.message
    [message] = startup_warnings(configured(linkedin="202512"), after)
    assert "SCHEDULER_LINKEDIN_VERSION=202512" in message
    [(_, status, _)] = doctor_checks(configured(linkedin="202512"), after)
    assert status == "warn"


def test_a_guess_never_refuses_to_start_the_defaults_included() -> None:
    linkedin = [v for v, sunset in LINKEDIN.items() if not sunset.confirmed] + ["203012"]  # unlisted: estimated
    graph = [v for v, sunset in GRAPH.items() if not sunset.confirmed]
    defaults = PlatformSettings()
    assert defaults.linkedin_version in linkedin or linkedin_sunset(defaults.linkedin_version).confirmed
    assert defaults.graph_api_version in graph or GRAPH[defaults.graph_api_version].confirmed
    later = dt.date(2040, 1, 1)  # past every estimate
    for version in linkedin:
        startup_warnings(configured(linkedin=version), later)  # warnings at most, never ConfigError
    for version in graph:
        startup_warnings(configured(graph=version), later)
    assert {status for _, status, _ in doctor_checks(configured(linkedin=linkedin[0], graph=graph[0]), later)} == {
        "warn"
    }


def test_start_refuses_an_expired_version_and_warns_about_a_soon_one() -> None:
    with pytest.raises(ConfigError, match="SCHEDULER_LINKEDIN_VERSION=202510"):
        startup_warnings(configured(linkedin="202510"), TODAY)
    [message] = startup_warnings(configured(linkedin="202601"), TODAY)
    assert "SCHEDULER_LINKEDIN_VERSION" in message
    assert startup_warnings(PlatformSettings(), TODAY) == []


def test_doctor_reports_each_version() -> None:
    [(name, status, detail)] = doctor_checks(PlatformSettings(), TODAY)
    assert (name, status) == ("api versions", "ok") and "202607" in detail and "v26.0" in detail
    statuses = {s for _, s, _ in doctor_checks(configured(linkedin="202510", graph="v21.0"), TODAY)}
    assert statuses == {"fail", "warn"}


def test_bad_linkedin_months_are_refused() -> None:
    with pytest.raises(ConfigError, match="SCHEDULER_LINKEDIN_VERSION"):
        PlatformSettings.from_env({"SCHEDULER_LINKEDIN_VERSION": "202613"})


async def test_linkedin_426_on_a_sunset_version_names_the_setting() -> None:
    case = next(c for c in CASES if c.name == "linkedin")
    fake = case.fake()
    store = Store()
    conn = store.add(connection(case, fake))
    platform = adapter(case, fake, {"SCHEDULER_LINKEDIN_VERSION": "202511"})
    with pytest.raises(PlatformConfigError, match="SCHEDULER_LINKEDIN_VERSION"):
        await platform.publish(post(case), conn, FakeContext(store))
    assert fake.posts == []
    assert settings().linkedin_version == "202607"
