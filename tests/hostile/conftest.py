"""Fixtures of the hostile suite."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture
def metadata_address() -> Iterator[str]:
    """169.254.169.254 (the cloud metadata address) on the loopback interface, added as
    root and removed after; skipped where that is not possible."""
    address = "169.254.169.254"
    present = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True)
    if present.returncode != 0:
        pytest.skip("needs the ip command to add 169.254.169.254 to the loopback interface")
    if f" {address}/" in present.stdout:
        yield address  # someone else's: use it, leave it
        return
    added = subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True, text=True)
    if added.returncode != 0:
        pytest.skip(f"cannot add {address} to lo (needs root or CAP_NET_ADMIN): {added.stderr.strip()}")
    try:
        yield address
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True)
