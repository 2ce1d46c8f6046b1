"""scheduler-daemon: publishes scheduled posts from PostgreSQL at their exact instant.

The public surface is ``__all__`` (tests/unit/test_public_api.py pins it): the daemon
and its settings, the exception tree, the values that flow between modules, what a
platform adapter implements and declares, the clocks, and the metric hooks. Everything
else is internal and may move.
"""

__version__ = "0.1.0"

import importlib
import typing

if typing.TYPE_CHECKING:
    from .clock import Clock, ManualClock, SystemClock
    from .config import PlatformSettings, Settings
    from .daemon import Daemon
    from .due import due_instant
    from .errors import (
        AuthError,
        ConfigError,
        ContentRejectedError,
        InvalidPostError,
        InvalidScheduleError,
        NoConnectionError,
        NotCreatedError,
        OutcomeUnknownError,
        PermanentPublishError,
        PlatformConfigError,
        PublishError,
        RateLimitedError,
        RefreshableAuthError,
        RetryablePublishError,
        SchedulerError,
        TransientError,
    )
    from .models import (
        Connection,
        MediaItem,
        Outcome,
        OutcomeKind,
        Post,
        PostStatus,
        PublishResult,
        Refresher,
        ScheduleKey,
        TokenSet,
    )
    from .observability.metrics import Metrics, PrometheusMetrics
    from .platforms.base import Adapter, MediaLimit, PlatformAdapter, PlatformFacts, PublishContext, TextLimit

_EXPORTS = {
    "Adapter": ".platforms.base",
    "AuthError": ".errors",
    "Clock": ".clock",
    "ConfigError": ".errors",
    "Connection": ".models",
    "ContentRejectedError": ".errors",
    "Daemon": ".daemon",
    "InvalidPostError": ".errors",
    "InvalidScheduleError": ".errors",
    "ManualClock": ".clock",
    "MediaItem": ".models",
    "MediaLimit": ".platforms.base",
    "Metrics": ".observability.metrics",
    "NoConnectionError": ".errors",
    "NotCreatedError": ".errors",
    "Outcome": ".models",
    "OutcomeKind": ".models",
    "OutcomeUnknownError": ".errors",
    "PermanentPublishError": ".errors",
    "PlatformAdapter": ".platforms.base",
    "PlatformConfigError": ".errors",
    "PlatformFacts": ".platforms.base",
    "PlatformSettings": ".config",
    "Post": ".models",
    "PostStatus": ".models",
    "PrometheusMetrics": ".observability.metrics",
    "PublishContext": ".platforms.base",
    "PublishError": ".errors",
    "PublishResult": ".models",
    "RateLimitedError": ".errors",
    "RefreshableAuthError": ".errors",
    "Refresher": ".models",
    "RetryablePublishError": ".errors",
    "ScheduleKey": ".models",
    "SchedulerError": ".errors",
    "Settings": ".config",
    "SystemClock": ".clock",
    "TextLimit": ".platforms.base",
    "TokenSet": ".models",
    "TransientError": ".errors",
    "due_instant": ".due",
}


def __getattr__(name: str) -> typing.Any:
    """Import a public name on first use: ``import scheduler_daemon`` stays light (the CLI,
    the benchmark's minimal processes), and ``from scheduler_daemon import Daemon`` works."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "Adapter",
    "AuthError",
    "Clock",
    "ConfigError",
    "Connection",
    "ContentRejectedError",
    "Daemon",
    "InvalidPostError",
    "InvalidScheduleError",
    "ManualClock",
    "MediaItem",
    "MediaLimit",
    "Metrics",
    "NoConnectionError",
    "NotCreatedError",
    "Outcome",
    "OutcomeKind",
    "OutcomeUnknownError",
    "PermanentPublishError",
    "PlatformAdapter",
    "PlatformConfigError",
    "PlatformFacts",
    "PlatformSettings",
    "Post",
    "PostStatus",
    "PrometheusMetrics",
    "PublishContext",
    "PublishError",
    "PublishResult",
    "RateLimitedError",
    "RefreshableAuthError",
    "Refresher",
    "RetryablePublishError",
    "ScheduleKey",
    "SchedulerError",
    "Settings",
    "SystemClock",
    "TextLimit",
    "TokenSet",
    "TransientError",
    "__version__",
    "due_instant",
]
