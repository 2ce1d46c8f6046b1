"""scheduler-daemon: publishes scheduled posts from PostgreSQL at their exact instant.

The public surface is ``__all__`` (tests/unit/test_public_api.py pins it): the daemon
and its settings, the exception tree, the values that flow between modules, what a
platform adapter implements and declares, the clocks, and the metric hooks. Everything
else is internal and may move.
"""

__version__ = "0.1.0"

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
