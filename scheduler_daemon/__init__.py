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
        PreparedStaleError,
        PublishError,
        RateLimitedError,
        RefreshableAuthError,
        RetryablePublishError,
        SchedulerError,
        TransientError,
    )
    from .mediafile import MediaFile
    from .models import (
        Connection,
        Delivery,
        MediaItem,
        Outcome,
        OutcomeKind,
        Post,
        PostItem,
        PostStatus,
        PublishResult,
        Refresher,
        ScheduleKey,
        TokenSet,
    )
    from .observability.metrics import Metrics, PrometheusMetrics
    from .platforms.base import (
        Adapter,
        Item,
        MediaLimit,
        Option,
        PlatformAdapter,
        PlatformFacts,
        Prepared,
        PublishContext,
        ReplyTo,
        TextLimit,
        VideoLimit,
    )
    from .probe import VideoFacts

_EXPORTS = {
    "Adapter": ".platforms.base",
    "AuthError": ".errors",
    "Clock": ".clock",
    "ConfigError": ".errors",
    "Connection": ".models",
    "ContentRejectedError": ".errors",
    "Daemon": ".daemon",
    "Delivery": ".models",
    "InvalidPostError": ".errors",
    "InvalidScheduleError": ".errors",
    "Item": ".platforms.base",
    "ManualClock": ".clock",
    "MediaFile": ".mediafile",
    "MediaItem": ".models",
    "MediaLimit": ".platforms.base",
    "Metrics": ".observability.metrics",
    "NoConnectionError": ".errors",
    "NotCreatedError": ".errors",
    "Option": ".platforms.base",
    "Outcome": ".models",
    "OutcomeKind": ".models",
    "OutcomeUnknownError": ".errors",
    "PermanentPublishError": ".errors",
    "PlatformAdapter": ".platforms.base",
    "PlatformConfigError": ".errors",
    "PlatformFacts": ".platforms.base",
    "PlatformSettings": ".config",
    "Post": ".models",
    "PostItem": ".models",
    "PostStatus": ".models",
    "Prepared": ".platforms.base",
    "PreparedStaleError": ".errors",
    "PrometheusMetrics": ".observability.metrics",
    "PublishContext": ".platforms.base",
    "PublishError": ".errors",
    "PublishResult": ".models",
    "RateLimitedError": ".errors",
    "RefreshableAuthError": ".errors",
    "Refresher": ".models",
    "ReplyTo": ".platforms.base",
    "RetryablePublishError": ".errors",
    "ScheduleKey": ".models",
    "SchedulerError": ".errors",
    "Settings": ".config",
    "SystemClock": ".clock",
    "TextLimit": ".platforms.base",
    "TokenSet": ".models",
    "TransientError": ".errors",
    "VideoFacts": ".probe",
    "VideoLimit": ".platforms.base",
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
    "Delivery",
    "InvalidPostError",
    "InvalidScheduleError",
    "Item",
    "ManualClock",
    "MediaFile",
    "MediaItem",
    "MediaLimit",
    "Metrics",
    "NoConnectionError",
    "NotCreatedError",
    "Option",
    "Outcome",
    "OutcomeKind",
    "OutcomeUnknownError",
    "PermanentPublishError",
    "PlatformAdapter",
    "PlatformConfigError",
    "PlatformFacts",
    "PlatformSettings",
    "Post",
    "PostItem",
    "PostStatus",
    "Prepared",
    "PreparedStaleError",
    "PrometheusMetrics",
    "PublishContext",
    "PublishError",
    "PublishResult",
    "RateLimitedError",
    "RefreshableAuthError",
    "Refresher",
    "ReplyTo",
    "RetryablePublishError",
    "ScheduleKey",
    "SchedulerError",
    "Settings",
    "SystemClock",
    "TextLimit",
    "TokenSet",
    "TransientError",
    "VideoFacts",
    "VideoLimit",
    "__version__",
    "due_instant",
]
