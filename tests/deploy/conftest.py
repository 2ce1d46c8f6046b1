"""The deploy tests' marker: `deploy` (boots a systemd container; those tests are also
`slow`). Deselect them with `-m "not deploy"`."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deploy: boots a Debian container with systemd as PID 1 (needs root)")
