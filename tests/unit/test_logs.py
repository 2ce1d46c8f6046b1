"""Log output: JSON lines off a TTY, and no secret in any line, tracebacks included."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from scheduler_daemon.logs import configure
from scheduler_daemon.redact import SECRETS


@pytest.fixture(autouse=True)
def _restore_logging():
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_level_and_timestamp() -> None:
    out = io.StringIO()
    configure("info", "json", out)
    structlog.get_logger("t").info("published", post_id="p1", lateness_ms=1.5)
    structlog.get_logger("t").debug("hidden")
    [line] = lines(out)
    assert line["event"] == "published" and line["level"] == "info" and line["lateness_ms"] == 1.5
    assert "timestamp" in line


def test_secrets_are_cut_from_values_keys_urls_and_tracebacks() -> None:
    out = io.StringIO()
    configure("debug", "json", out)
    SECRETS.add("tok-ABCDEF-123456")
    log = structlog.get_logger("t")
    log.info("request", url="https://api.telegram.org/bottok-ABCDEF-123456/sendMessage")
    log.info("connect", dsn="postgresql://app:pa55word-xyz@db:5432/app")
    log.info("refresh", access_token="anything", refresh_token="whatever", client_secret="s")
    try:
        raise RuntimeError("failed with tok-ABCDEF-123456 in the message")
    except RuntimeError:
        log.exception("boom")
    text = out.getvalue()
    for secret in ("tok-ABCDEF-123456", "pa55word-xyz", "anything", "whatever"):
        assert secret not in text
    assert text.count("[redacted]") >= 6
    assert "RuntimeError" in text  # the traceback itself is kept


def test_console_format() -> None:
    out = io.StringIO()
    configure("info", "console", out)
    structlog.get_logger("t").warning("missed", post_id="p2")
    assert "missed" in out.getvalue() and "post_id=p2" in out.getvalue()


def test_standard_library_logging_gets_the_same_format_and_scrubbing() -> None:
    import logging

    out = io.StringIO()
    configure("info", "json", out)
    SECRETS.add("stdlib-secret-999")
    logging.getLogger("asyncpg.pool").warning("connection lost: %s", "stdlib-secret-999")
    [line] = lines(out)
    assert line["event"] == "connection lost: [redacted]" and line["level"] == "warning"
    assert line["logger"] == "asyncpg.pool"
