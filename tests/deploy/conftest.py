"""Markers of the deploy tests: `slow` (minutes) and `deploy` (boots a systemd container).
Deselect them with `-m "not deploy"`."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes minutes")
    config.addinivalue_line("markers", "deploy: boots a Debian container with systemd as PID 1 (needs root)")
