"""Operator subcommands (status, doctor, schedule, cancel, retry, connections,
install-service). ``register`` adds them to the CLI's subparsers, each with
``set_defaults(handler=...)``: an ``async (settings, args) -> exit code`` function."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[Any, argparse.Namespace], Awaitable[int]]


def register(sub: Any) -> None:
    return None
