"""Named SQL statements from the .sql files beside this module, loaded once at import."""

from __future__ import annotations

import re
from importlib.resources import files


def _load() -> dict[str, str]:
    queries: dict[str, str] = {}
    for path in sorted((p for p in files(__package__).iterdir() if p.name.endswith(".sql")), key=lambda p: p.name):
        parts = re.split(r"^-- name: (\w+)\s*$", path.read_text(encoding="utf-8"), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2]):
            if name in queries:
                raise RuntimeError(f"query {name!r} is defined twice ({path.name})")
            queries[name] = body.strip().rstrip(";")
    return queries


QUERIES: dict[str, str] = _load()


def q(name: str) -> str:
    return QUERIES[name]
