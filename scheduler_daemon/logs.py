"""Logging: structlog, JSON lines off a TTY (journald), a readable console on one.

Every line passes ``redact`` last: values under secret-looking keys are replaced, and
``redact.SECRETS`` cuts every registered secret (tokens of the connections the daemon
has loaded, the database password) out of every string, tracebacks included. When
stdout is the journal (``$JOURNAL_STREAM`` matches it) warning and error lines start
with the syslog priority prefix ``<4>``/``<3>`` so ``journalctl -p warning`` works.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from .redact import REDACTED, SECRETS

_SECRET_KEYS = re.compile(r"token|secret|password|passwd|authorization|api_key|apikey|credential", re.I)
_PRIORITY = {"critical": "<2>", "error": "<3>", "exception": "<3>", "warning": "<4>", "warn": "<4>"}


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if _SECRET_KEYS.search(key) and value is not None:
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = SECRETS.scrub(value)
        elif value is not None and not isinstance(value, (int, float, bool)):
            event[key] = SECRETS.scrub(str(value))
    return event


def _stdout_is_journal(stream: TextIO) -> bool:
    journal = os.environ.get("JOURNAL_STREAM")
    if not journal:
        return False
    try:
        device, inode = (int(part) for part in journal.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


class _JournalRenderer:
    """JSON line with the syslog priority prefix for warnings and errors."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        prefix = _PRIORITY.get(str(event.get("level", name)), "")
        return prefix + str(self.inner(logger, name, event))


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg, unused-ignore]
    """Writes to whatever ``sys.stdout`` is when a record comes (it may be replaced)."""

    @property  # type: ignore[override, unused-ignore]
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog for the process. ``fmt``: auto, json or console."""
    stream = stream or sys.stdout
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        if _stdout_is_journal(stream):
            renderer = _JournalRenderer(renderer)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # before redact: tracebacks are scrubbed too
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (asyncpg, aiohttp) get the same
    # format, the same scrubbing and the same priority prefixes.
    handler = logging.StreamHandler(stream) if stream is not sys.stdout else _StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(getattr(logging, level.upper()), logging.INFO))
    # httpx logs every request with its URL at INFO: noise in the journal, and a Telegram
    # URL carries the bot token. Our own publish summary line says what matters.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
