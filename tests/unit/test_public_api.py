"""The package's public surface is deliberate: ``__all__`` is pinned here, and every name
in it resolves. Adding to it is a decision (edit this list); removing from it breaks users."""

from __future__ import annotations

import types

import scheduler_daemon

PUBLIC = {
    # the daemon and its settings
    "Daemon", "Settings", "PlatformSettings", "__version__",
    # the exception tree
    "SchedulerError", "ConfigError", "InvalidPostError", "InvalidScheduleError", "NoConnectionError",
    "PublishError", "PermanentPublishError", "AuthError", "RefreshableAuthError", "ContentRejectedError",
    "PlatformConfigError", "RetryablePublishError", "RateLimitedError", "TransientError", "NotCreatedError",
    "OutcomeUnknownError",
    # the values that flow between modules
    "Post", "Connection", "MediaItem", "PublishResult", "TokenSet", "Refresher", "Outcome", "OutcomeKind",
    "PostStatus", "ScheduleKey",
    # what a platform adapter implements and declares
    "PlatformAdapter", "PublishContext", "Adapter", "PlatformFacts", "TextLimit", "MediaLimit",
    # time
    "Clock", "SystemClock", "ManualClock", "due_instant",
    # observability
    "Metrics", "PrometheusMetrics",
}


def test_all_is_the_pinned_public_surface() -> None:
    assert set(scheduler_daemon.__all__) == PUBLIC
    assert len(scheduler_daemon.__all__) == len(PUBLIC), "a name is listed twice"


def test_every_public_name_resolves() -> None:
    for name in scheduler_daemon.__all__:
        assert getattr(scheduler_daemon, name) is not None, name


def test_nothing_else_looks_public() -> None:
    """Only submodules and ``__all__`` names sit at the top of the package."""
    loose = {
        name for name, value in vars(scheduler_daemon).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert loose <= PUBLIC, f"public-looking names outside __all__: {sorted(loose - PUBLIC)}"
