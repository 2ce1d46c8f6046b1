"""Named SQL statements from ``db/sql/*.sql``, loaded once at import.

Each statement follows a ``-- name: <name>`` line; names are unique across the files:
``daemon.sql`` (what the running daemon sends), ``admin.sql`` (the operator commands),
``setup.sql`` (migrations, the embedded server, the demo).
"""

from __future__ import annotations

import re
from importlib.resources import files


def _load() -> dict[str, str]:
    queries: dict[str, str] = {}
    folder = files(__package__).joinpath("sql")
    for path in sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name):
        parts = re.split(r"^-- name: (\w+)\s*$", path.read_text(encoding="utf-8"), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise RuntimeError(f"query {name!r} is defined twice ({path.name})")
            queries[name] = body.strip().rstrip(";")
    return queries


QUERIES: dict[str, str] = _load()


def q(name: str) -> str:
    return QUERIES[name]
