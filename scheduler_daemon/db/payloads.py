"""The NOTIFY payloads the content_posts triggers send (migrations/002), parsed.

A payload is a hint, never the truth: any role that can connect may NOTIFY on the
channel, so the claim re-checks the row (its status, version and due instant, in SQL).
Every field is bounded here (the id a UUID, the version a bigint, strings as long as the
triggers send them), so nothing a payload holds reaches the database or the timers
unchecked. Anything malformed raises ``MalformedNotification`` with a message for the log;
the dispatcher logs it and carries on.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import SchedulerError
from ..models import PostStatus, ScheduleKey

CHANNEL = "scheduler_daemon"
MAX_PAYLOAD = 8000
MIN_VERSION, MAX_VERSION = -(2**63), 2**63 - 1
MAX_TIMEZONE = 100  # the triggers cut it there (migrations/002)
MAX_STATUS = 40


class MalformedNotification(SchedulerError):
    """A payload on our channel that is not what the triggers send."""


class Op(enum.Enum):
    INSERT = "I"
    UPDATE = "U"
    DELETE = "D"
    TRUNCATE = "T"


@dataclass(frozen=True, slots=True)
class Notification:
    op: Op
    id: uuid.UUID | None  # None only for TRUNCATE
    status: str | None
    key: ScheduleKey | None
    version: int
    was_publishing: bool = False  # the row was claimed: a user edit or delete of a claimed post

    @property
    def arms(self) -> bool:
        """True when the row is (still) scheduled and should have a timer."""
        return self.op in (Op.INSERT, Op.UPDATE) and self.status == PostStatus.SCHEDULED


def parse(payload: str) -> Notification:
    if len(payload) > MAX_PAYLOAD:
        raise MalformedNotification(f"payload of {len(payload)} characters is too long")
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested arrays
        raise MalformedNotification(f"payload is not JSON: {payload[:200]!r}") from exc
    if not isinstance(data, dict):
        raise MalformedNotification(f"payload is not a JSON object: {payload[:200]!r}")
    try:
        op = Op(data.get("op"))
    except ValueError as exc:
        raise MalformedNotification(f"unknown op {data.get('op')!r}") from exc
    if op is Op.TRUNCATE:
        return Notification(op, None, None, None, 0)
    post_id = _field(data, "id", uuid.UUID)
    status = _field(data, "status", _bounded(MAX_STATUS))
    version = data.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise MalformedNotification(f"version {version!r:.100} is not an integer")
    if not MIN_VERSION <= version <= MAX_VERSION:  # schedule_version is a bigint
        raise MalformedNotification(f"version {str(version)[:40]} is outside bigint")
    key = ScheduleKey(
        date=_optional(data, "date", dt.date.fromisoformat),
        time=_optional(data, "time", dt.time.fromisoformat),
        timezone=_field(data, "tz", _bounded(MAX_TIMEZONE)) if data.get("tz") is not None else "UTC",
        retry_at=_optional(data, "retry_at", _aware_datetime),
    )
    was_publishing = data.get("was_publishing", False)
    if not isinstance(was_publishing, bool):
        raise MalformedNotification(f"was_publishing {was_publishing!r} is not a boolean")
    return Notification(op, post_id, status, key, version, was_publishing)


def _bounded(limit: int) -> Any:
    def text(value: str) -> str:
        if len(value) > limit:
            raise ValueError(f"longer than {limit} characters")
        return value

    return text


def _aware_datetime(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("no UTC offset")
    return parsed


def _field(data: dict[str, Any], name: str, convert: Any) -> Any:
    value = data.get(name)
    if value is None:
        raise MalformedNotification(f"field {name!r} is missing")
    if not isinstance(value, str):  # the triggers send every field but version as text
        raise MalformedNotification(f"field {name!r} has a bad value {value!r:.100}")
    try:
        return convert(value)
    except (TypeError, ValueError, AttributeError) as exc:
        raise MalformedNotification(f"field {name!r} has a bad value {value!r:.100}") from exc


def _optional(data: dict[str, Any], name: str, convert: Any) -> Any:
    return None if data.get(name) is None else _field(data, name, convert)

