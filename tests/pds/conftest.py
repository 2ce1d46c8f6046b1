"""The reference PDS for the session: installed (cached) and started once, stopped at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .install import InstallFailed, Unavailable, install
from .network import ReferencePds, running


@pytest.fixture(scope="session")
def reference_pds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferencePds]:
    try:
        found = install()
    except Unavailable as exc:
        pytest.skip(f"the reference Bluesky PDS is unavailable here: {exc}")
    except InstallFailed as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the reference Bluesky PDS could not be installed: {exc}")
    with running(found, tmp_path_factory.mktemp("pds") / "launcher.log") as pds:
        yield pds
