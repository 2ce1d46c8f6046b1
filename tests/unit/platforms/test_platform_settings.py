from __future__ import annotations

import pytest

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.errors import ConfigError
from scheduler_daemon.platforms.base import UNLIMITED
from scheduler_daemon.platforms.registry import concurrency


def test_defaults_and_overrides() -> None:
    settings = PlatformSettings.from_env(
        {
            "SCHEDULER_X_API_BASE": "https://x.test/2/",
            "SCHEDULER_GRAPH_API_VERSION": "v23.0",
            "SCHEDULER_LINKEDIN_VERSION": "202510",
            "SCHEDULER_X_CLIENT_ID": "cid",
            "SCHEDULER_LINKEDIN_CONCURRENCY": "3",
            "SCHEDULER_TELEGRAM_ACCOUNT_CONCURRENCY": "2",
            "SUPABASE_URL": "https://proj.supabase.co/",
            "SUPABASE_SERVICE_KEY": "service-key",
        }
    )
    assert settings.api_base("x", "https://api.x.com/2") == "https://x.test/2"
    assert settings.api_base("slack", "https://slack.com/api") == "https://slack.com/api"
    assert (settings.graph_api_version, settings.linkedin_version) == ("v23.0", "202510")
    assert settings.client("x").client_id == "cid" and settings.client("slack").client_id is None
    assert concurrency(settings, "linkedin") == (3, 1) and concurrency(settings, "x") == (100, 2)
    assert concurrency(settings, "telegram") == (UNLIMITED, 2)
    assert concurrency(settings, "webhook") == (UNLIMITED, 5)  # one tenant cannot hold every slot
    assert settings.supabase_url == "https://proj.supabase.co" and "service-key" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCHEDULER_X_API_BASE", "x.test"),
        ("SCHEDULER_GRAPH_API_VERSION", "21"),
        ("SCHEDULER_LINKEDIN_VERSION", "2026-01"),
        ("SCHEDULER_X_CONCURRENCY", "0"),
        ("SCHEDULER_SLACK_ACCOUNT_CONCURRENCY", "many"),
        ("SCHEDULER_MEDIA_POLL_INTERVAL_SECONDS", "-1"),
        ("SUPABASE_URL", "proj.supabase.co"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        PlatformSettings.from_env({name: value})
