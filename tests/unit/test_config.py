"""Settings from the environment: defaults, every variable, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler_daemon.config import Settings
from scheduler_daemon.config.settings import default_concurrency
from scheduler_daemon.errors import ConfigError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.database_url is None and s.grace_seconds == 3600 and s.concurrency == default_concurrency()
    assert default_concurrency() in (2048, 1024)  # uvloop or asyncio: never a cap that serializes a burst
    assert s.log_level == "info" and s.log_format == "auto" and s.metrics_address is None


def test_every_variable_is_read() -> None:
    s = Settings.from_env({
        "DATABASE_URL": "postgresql://u:p@db:5432/app", "SCHEDULER_GRACE_SECONDS": "60",
        "SCHEDULER_CONCURRENCY": "7", "SCHEDULER_MAX_ATTEMPTS": "3", "SCHEDULER_LOG_LEVEL": "DEBUG",
        "SCHEDULER_LOG_FORMAT": "json", "SCHEDULER_INSTANCE_ID": "vm-a", "SCHEDULER_STATE_DIR": "/srv/x",
        "SCHEDULER_METRICS_ADDRESS": "127.0.0.1:9464", "SCHEDULER_RECOVERY_AFTER_SECONDS": "5",
        "SCHEDULER_HEARTBEAT_SECONDS": "2.5", "SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS": "9",
    })
    assert (s.database_url, s.grace_seconds, s.concurrency, s.max_attempts) == (
        "postgresql://u:p@db:5432/app",
        60,
        7,
        3,
    )
    assert (s.log_level, s.log_format, s.instance_id, s.state_dir) == ("debug", "json", "vm-a", Path("/srv/x"))
    assert (s.metrics_address, s.recovery_after_seconds, s.heartbeat_seconds) == ("127.0.0.1:9464", 5, 2.5)
    assert s.shutdown_timeout_seconds == 9


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SCHEDULER_CONCURRENCY": "many"}, "SCHEDULER_CONCURRENCY='many' is not a whole number"),
        ({"SCHEDULER_CONCURRENCY": "0"}, "SCHEDULER_CONCURRENCY='0' must be a finite number of at least 1"),
        ({"SCHEDULER_GRACE_SECONDS": "-1"}, "SCHEDULER_GRACE_SECONDS"),
        ({"SCHEDULER_GRACE_SECONDS": "nan"}, "SCHEDULER_GRACE_SECONDS"),
        ({"SCHEDULER_GRACE_SECONDS": "inf"}, "SCHEDULER_GRACE_SECONDS"),
        ({"SCHEDULER_LOG_LEVEL": "loud"}, "SCHEDULER_LOG_LEVEL='loud' must be one of: debug, info, warning, error"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must start with postgresql://"),
        ({"SCHEDULER_METRICS_ADDRESS": "9464"}, "SCHEDULER_METRICS_ADDRESS='9464' must be host:port"),
        # pg_stat_activity shows worker-é1 as worker-??1; claimed_by and the logs must read true
        ({"SCHEDULER_INSTANCE_ID": "worker-é1"}, "SCHEDULER_INSTANCE_ID='worker-é1' must be printable ASCII"),
        ({"SCHEDULER_INSTANCE_ID": "vm\x01a"}, "SCHEDULER_INSTANCE_ID=.* must be printable ASCII"),
        ({"SCHEDULER_INSTANCE_ID": "v" * 41}, "at most 40 characters"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Settings.from_env(env)


def test_the_default_recovery_delay_and_a_printable_instance_id() -> None:
    s = Settings.from_env({"SCHEDULER_INSTANCE_ID": "host-a:1 (blue)"})
    assert (s.instance_id, s.recovery_after_seconds) == ("host-a:1 (blue)", 2.0)


def test_bad_database_url_error_does_not_echo_it() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"DATABASE_URL": "mysql://user:hunter2secret@db/app"})
    assert "hunter2secret" not in str(err.value)


def test_secrets_from_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "database_url").write_text("postgresql://app:from-credential@db/app\n")
    s = Settings.from_env({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert s.database_url == "postgresql://app:from-credential@db/app"
    # The environment wins over a credential file.
    s = Settings.from_env({"CREDENTIALS_DIRECTORY": str(tmp_path), "DATABASE_URL": "postgresql://env@db/app"})
    assert s.database_url == "postgresql://env@db/app"
    # A blank line in the env file is unset, not "no database URL".
    s = Settings.from_env({"CREDENTIALS_DIRECTORY": str(tmp_path), "DATABASE_URL": "  "})
    assert s.database_url == "postgresql://app:from-credential@db/app"


def test_the_cli_exits_2_on_bad_config(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from scheduler_daemon.cli import main

    monkeypatch.setenv("SCHEDULER_CONCURRENCY", "lots")
    assert main(["migrate"]) == 2
    assert "configuration error: SCHEDULER_CONCURRENCY='lots' is not a whole number" in capsys.readouterr().err


def test_the_removed_http_transport_setting_is_refused_not_ignored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SCHEDULER_HTTP_TRANSPORT=httpx once chose httpx's own transport, which cannot enforce
    the outbound rules: a leftover one stops the start and says what to do."""
    from scheduler_daemon.cli import main

    for value in ("httpx", "HTTPX", "curl"):
        with pytest.raises(ConfigError, match=f"SCHEDULER_HTTP_TRANSPORT='{value}' is no longer supported.*unset it"):
            Settings.from_env({"SCHEDULER_HTTP_TRANSPORT": value})
    assert Settings.from_env({"SCHEDULER_HTTP_TRANSPORT": "aiohttp"}) == Settings.from_env({})  # what runs anyway
    monkeypatch.setenv("SCHEDULER_HTTP_TRANSPORT", "httpx")
    assert main(["migrate"]) == 2
    assert "SCHEDULER_HTTP_TRANSPORT='httpx' is no longer supported" in capsys.readouterr().err
