"""File descriptors for the publishes in flight.

Each publish in flight holds one connection, so one descriptor (bench/RESULTS.md, "The
concurrency model"); the database pool, the listener, the journal and spooled media take
a few more. Many shells start processes with a soft limit of 1,024, below the default
``SCHEDULER_CONCURRENCY``; a burst would then fail with "Too many open files". At start
the daemon raises its soft limit towards the hard one (any process may), and says so in
one warning line when even the hard limit is too low. Under the systemd unit the limit is
``LimitNOFILE`` (both soft and hard) and ``@resources`` is filtered, so the raise fails
with EPERM and only the check remains.
"""

from __future__ import annotations

import contextlib

import structlog

logger = structlog.get_logger("scheduler_daemon.fdlimit")

SPARE = 64  # the pool, the listener, logs, spooled media, the metrics endpoint


def needed(concurrency: int, pool_size: int) -> int:
    return concurrency + pool_size + SPARE


def ensure(concurrency: int, pool_size: int) -> int:
    """Raise the soft RLIMIT_NOFILE to what ``concurrency`` needs if the hard limit allows;
    warn when it stays below. Returns the soft limit in force."""
    try:
        import resource
    except ImportError:  # not on Linux/macOS: nothing to check
        return -1
    want = needed(concurrency, pool_size)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):  # EPERM under the unit's filter
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < want:
        logger.warning(
            "too few file descriptors for SCHEDULER_CONCURRENCY: a burst may fail with 'Too many open files'; "
            "raise LimitNOFILE (ulimit -n) or lower SCHEDULER_CONCURRENCY",
            concurrency=concurrency, needed=want, limit=soft,
        )
    return int(soft)
