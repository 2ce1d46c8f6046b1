"""Named SQL statements from queries.sql, loaded once at import."""

from __future__ import annotations

import re
from importlib.resources import files


def _load() -> dict[str, str]:
    text = files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.M)
    return {name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2])}


QUERIES: dict[str, str] = _load()


def q(name: str) -> str:
    return QUERIES[name]
