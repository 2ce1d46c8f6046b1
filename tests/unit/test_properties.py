"""Property-based tests (hypothesis) for the pure parts of the daemon (issue 4, point 7).

Every input either works or gets a clear error of the documented kind; nothing crashes:

* ``db.payloads.parse``: any string is a ``Notification`` or ``MalformedNotification``;
  ``Dispatcher.on_payload`` (the listener's callback) never raises for any payload;
* ``due.due_instant``: aware UTC for every date, time and IANA zone, with the DST
  rules of the module docstring (gap → forward by the gap, overlap → first occurrence),
  checked against transitions found independently; bad zones → ``InvalidScheduleError``;
* ``config.Settings.from_env``: a ``Settings`` or a ``ConfigError`` naming the variable;
* ``engine.classify.classify``: exactly one outcome per exception, ``retry_at >= finished_at``,
  never RETRY for an unknown outcome or past the attempt limit;
* ``engine.timers.Timers`` against a plain dict model under random arm/cancel/pop sequences.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from scheduler_daemon import errors
from scheduler_daemon.clock import UTC, ManualClock
from scheduler_daemon.config import Settings
from scheduler_daemon.db.payloads import MAX_PAYLOAD, MalformedNotification, Notification, Op, parse
from scheduler_daemon.due import due_instant
from scheduler_daemon.engine import classify as classify_module
from scheduler_daemon.engine.classify import RATE_LIMIT_ATTEMPTS_FACTOR, classify
from scheduler_daemon.engine.dispatcher import Dispatcher
from scheduler_daemon.engine.publisher import Publisher
from scheduler_daemon.engine.timers import Timers
from scheduler_daemon.engine.writer import OutcomeWriter
from scheduler_daemon.errors import ConfigError, InvalidScheduleError
from scheduler_daemon.models import OutcomeKind, PostStatus, ScheduleKey

ZONES = sorted(zoneinfo.available_timezones())
LONGEST_WAIT: float = getattr(classify_module, "LONGEST_WAIT", float("inf"))
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- notification payloads -------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _iso_date() -> st.SearchStrategy[Any]:
    return st.dates().map(dt.date.isoformat) | st.text(max_size=12) | json_values


def _iso_time() -> st.SearchStrategy[Any]:
    return st.times().map(dt.time.isoformat) | st.times(timezones=st.timezones()).map(dt.time.isoformat) | json_values


field_values: dict[str, st.SearchStrategy[Any]] = {
    "op": st.sampled_from(["I", "U", "D", "T"]) | json_values,
    "id": st.uuids().map(str) | st.text(max_size=40) | json_values,
    "status": st.sampled_from([s.value for s in PostStatus]) | json_values,
    "date": _iso_date(),
    "time": _iso_time(),
    "tz": st.sampled_from(ZONES) | st.text(max_size=70) | json_values,
    "retry_at": st.datetimes(timezones=st.timezones() | st.none()).map(dt.datetime.isoformat) | json_values,
    "version": st.integers() | json_values,
}
# Mostly well-formed trigger payloads with some fields dropped or replaced by junk.
trigger_like = st.fixed_dictionaries({}, optional=field_values).map(lambda d: json.dumps(d))

payloads = st.one_of(
    st.text(max_size=300),
    json_values.map(json.dumps),
    trigger_like,
    st.text(alphabet="[]{}\":,0123456789 ", max_size=200),
)


@FAST
@given(payloads)
@example("[" * 5000)  # deep nesting within MAX_PAYLOAD: json raises RecursionError
@example('{"a":' * 3000 + "1" + "}" * 3000)
@example("1" * 5000)  # int-from-str digit limit (ValueError subclass)
@example("x" * (MAX_PAYLOAD + 1))
@example('{"op":"I","id":"00000000-0000-0000-0000-000000000001","status":"scheduled","date":"0001-01-01","time":"00:00:00","tz":"Asia/Tokyo"}')
def test_parse_either_parses_or_raises_malformed(payload: str) -> None:
    try:
        note_ = parse(payload)
    except MalformedNotification as exc:
        assert str(exc), "the log line needs a message"
        return
    assert isinstance(note_, Notification)
    if note_.op is Op.TRUNCATE:
        return
    assert isinstance(note_.id, uuid.UUID) and isinstance(note_.status, str)
    assert isinstance(note_.version, int) and not isinstance(note_.version, bool)
    assert note_.key is not None and isinstance(note_.key.timezone, str)
    assert note_.key.retry_at is None or note_.key.retry_at.tzinfo is not None


@FAST
@given(st.builds(
    dict,
    op=st.sampled_from(["I", "U"]), id=st.uuids().map(str), status=st.just("scheduled"),
    date=st.dates(dt.date(1900, 1, 1), dt.date(2200, 12, 31)).map(dt.date.isoformat),
    time=st.times().map(dt.time.isoformat), tz=st.sampled_from(ZONES), version=st.integers(0, 2**62),
))
def test_well_formed_trigger_payloads_always_parse(data: dict[str, Any]) -> None:
    note_ = parse(json.dumps(data))
    assert note_.arms and str(note_.id) == data["id"] and note_.version == data["version"]
    assert note_.key == ScheduleKey(
        dt.date.fromisoformat(data["date"]), dt.time.fromisoformat(data["time"]), data["tz"], None
    )


class _RecordingWriter(OutcomeWriter):
    def __init__(self) -> None:
        super().__init__(repository=None)  # type: ignore[arg-type]


def _offline_dispatcher() -> Dispatcher:
    """A Dispatcher with no database: only the synchronous registration path is used."""
    writer, clock = _RecordingWriter(), ManualClock(0.0)
    publisher = Publisher(Settings(), None, None, writer, clock, _CLIENT)  # type: ignore[arg-type]
    return Dispatcher(
        Settings(), None, publisher, clock, reject=writer.reject, request_resync=lambda: None,  # type: ignore[arg-type]
    )


_CLIENT = httpx.AsyncClient()  # never used to send: the publisher only keeps it


@FAST
@given(st.lists(payloads, max_size=5))
@example(['{"op":"I","id":"00000000-0000-0000-0000-000000000001","status":"scheduled",'
          '"date":"0001-01-01","time":"00:00:00","tz":"Asia/Tokyo","version":1}'])
@example(['{"op":"U","id":"00000000-0000-0000-0000-000000000002","status":"scheduled",'
          '"date":"9999-12-31","time":"23:00:00","tz":"America/New_York","version":1}'])
@example(["[" * 5000])
def test_on_payload_never_raises(batch: list[str]) -> None:
    """The listener's callback: a payload is armed, disarmed, rejected or ignored — never raised."""
    dispatcher = _offline_dispatcher()
    for payload in batch:
        dispatcher.on_payload(payload)  # must not raise
    for armed in dispatcher.timers:
        assert math.isfinite(armed.due)


# -- due instants ----------------------------------------------------------------------

def _check_aware_utc(result: dt.datetime) -> None:
    assert isinstance(result, dt.datetime)
    assert result.tzinfo is UTC and result.utcoffset() == dt.timedelta(0)


@FAST
@given(st.dates(dt.date(1900, 1, 1), dt.date(2200, 12, 31)), st.times(), st.sampled_from(ZONES))
def test_due_instant_round_trips_or_moves_forward_by_the_gap(date: dt.date, time: dt.time, tz: str) -> None:
    result = due_instant(ScheduleKey(date, time, tz))
    _check_aware_utc(result)
    z = zoneinfo.ZoneInfo(tz)
    naive = dt.datetime.combine(date, time)
    first, second = (naive.replace(tzinfo=z, fold=f) for f in (0, 1))
    real = sorted({a.astimezone(UTC) for a in (first, second)
                   if a.astimezone(UTC).astimezone(z).replace(tzinfo=None) == naive})
    wall = result.astimezone(z).replace(tzinfo=None)
    if real:  # the wall time exists (once, or twice in an overlap): it round-trips, first occurrence
        assert wall == naive
        assert result == real[0]
    else:  # a gap: moved forward by the gap's length
        gap = second.utcoffset() - first.utcoffset()  # type: ignore[operator]
        assert gap > dt.timedelta(0)
        assert wall == naive + gap


# Transitions found by scanning each zone's UTC offsets, independent of PEP 495 folds.

@functools.lru_cache(maxsize=4096)
def _transitions(tz: str, year: int) -> tuple[tuple[dt.datetime, dt.timedelta, dt.timedelta], ...]:
    """(instant in UTC, offset before, offset after) of every offset change in ``year``."""
    z = zoneinfo.ZoneInfo(tz)

    def offset(at: dt.datetime) -> dt.timedelta:
        return at.astimezone(z).utcoffset()  # type: ignore[return-value]

    found = []
    start = dt.datetime(year, 1, 1, tzinfo=UTC)
    for day in range(366):
        lo, hi = start + dt.timedelta(days=day), start + dt.timedelta(days=day + 1)
        if hi.year > year:
            break
        if offset(lo) == offset(hi):
            continue
        while hi - lo > dt.timedelta(seconds=1):  # one change per day at most, in practice
            mid = lo + (hi - lo) / 2
            mid = mid.replace(microsecond=0)
            if offset(mid) == offset(lo):
                lo = mid
            else:
                hi = mid
        found.append((hi, offset(lo), offset(hi)))
    return tuple(found)


@st.composite
def near_a_transition(draw: st.DrawFn) -> tuple[str, dt.datetime, dt.datetime, dt.timedelta, dt.timedelta]:
    tz = draw(st.sampled_from(ZONES))
    year = draw(st.integers(1971, 2040))
    found = _transitions(tz, year)
    assume(found)
    at, before, after = draw(st.sampled_from(found))
    delta = draw(st.timedeltas(-dt.timedelta(hours=3), dt.timedelta(hours=3)))
    wall = (at + before).replace(tzinfo=None) + delta  # local wall time near the change
    return tz, wall, at, before, after


@FAST
@given(near_a_transition())
@example(("Europe/Paris", dt.datetime(2024, 3, 31, 2, 30), dt.datetime(2024, 3, 31, 1, 0, tzinfo=UTC),
          dt.timedelta(hours=1), dt.timedelta(hours=2)))
@example(("Europe/Paris", dt.datetime(2024, 10, 27, 2, 30), dt.datetime(2024, 10, 27, 1, 0, tzinfo=UTC),
          dt.timedelta(hours=2), dt.timedelta(hours=1)))
@example(("Pacific/Apia", dt.datetime(2011, 12, 30, 12, 0), dt.datetime(2011, 12, 30, 10, 0, tzinfo=UTC),
          dt.timedelta(hours=-10), dt.timedelta(hours=14)))
def test_due_instant_dst_rules_against_scanned_transitions(
    case: tuple[str, dt.datetime, dt.datetime, dt.timedelta, dt.timedelta],
) -> None:
    tz, wall, at, before, after = case
    # Only one transition within reach, so the three regions below are well defined.
    nearby = [t for t in _transitions(tz, at.year) + _transitions(tz, at.year + 1) + _transitions(tz, at.year - 1)
              if t[0] != at and abs(t[0] - at) < dt.timedelta(hours=8)]
    assume(not nearby)
    result = due_instant(ScheduleKey(wall.date(), wall.time(), tz))
    _check_aware_utc(result)
    change_wall_before = (at + before).replace(tzinfo=None)  # wall clock just before the change
    change_wall_after = (at + after).replace(tzinfo=None)  # ... and just after it
    if wall < min(change_wall_before, change_wall_after):
        expected = wall.replace(tzinfo=UTC) - before  # before the change: unique
    elif wall >= max(change_wall_before, change_wall_after):
        expected = wall.replace(tzinfo=UTC) - after  # after the change: unique
    elif after > before:
        expected = wall.replace(tzinfo=UTC) - before  # gap: read with the old offset = forward by the gap
        assert result.astimezone(zoneinfo.ZoneInfo(tz)).replace(tzinfo=None) == wall + (after - before)
    else:
        expected = wall.replace(tzinfo=UTC) - before  # overlap: the first occurrence (old offset)
    note(f"{tz} {wall} transition {at} {before}->{after}")
    assert result == expected


@FAST
@given(st.dates(), st.times(), st.sampled_from(ZONES))
@example(dt.date(1, 1, 1), dt.time(0, 0), "Asia/Tokyo")
@example(dt.date(9999, 12, 31), dt.time(23, 0), "America/New_York")
def test_due_instant_is_total_over_every_date(date: dt.date, time: dt.time, tz: str) -> None:
    """PostgreSQL accepts years 1..9999 (and more) in a date column: none may crash the daemon."""
    try:
        result = due_instant(ScheduleKey(date, time, tz))
    except InvalidScheduleError as exc:
        assert str(exc)
        return
    _check_aware_utc(result)


@FAST
@given(st.text(max_size=80) | st.sampled_from(["", " UTC", "UTC ", "../etc/passwd", "/etc/localtime", ".",
                                                "Europe/", "Europe/Nowhere", "\x00", "\ud800", "a" * 65, "posix"]))
def test_due_instant_bad_zones_raise_invalid_schedule(tz: str) -> None:
    key = ScheduleKey(dt.date(2030, 6, 1), dt.time(12, 0), tz)
    try:
        result = due_instant(key)
    except InvalidScheduleError as exc:
        assert "timezone" in str(exc)
        return
    _check_aware_utc(result)
    assert tz in zoneinfo.available_timezones() or zoneinfo.ZoneInfo(tz) is not None


@FAST
@given(st.datetimes(timezones=st.timezones()), st.dates() | st.none(), st.times() | st.none())
def test_retry_at_overrides_the_wall_time(retry_at: dt.datetime, date: dt.date | None, time: dt.time | None) -> None:
    assume(retry_at.utcoffset() is not None)
    try:
        result = due_instant(ScheduleKey(date, time, "Not/AZone", retry_at))
    except OverflowError:
        # year 1 / 9999 with an offset: an aware retry_at from PostgreSQL is already UTC
        assume(False)
    _check_aware_utc(result)
    # (astimezone on both sides: aware datetimes in a DST gap/fold never compare equal across zones)
    assert result == retry_at.astimezone(UTC)


@pytest.mark.parametrize(
    ("date", "time", "message"),
    [(None, None, "scheduled_date and scheduled_time are empty"),
     (None, dt.time(1), "scheduled_date is empty"),
     (dt.date(2030, 1, 1), None, "scheduled_time is empty")],
)
def test_due_instant_missing_fields(date: dt.date | None, time: dt.time | None, message: str) -> None:
    with pytest.raises(InvalidScheduleError, match=message):
        due_instant(ScheduleKey(date, time, "UTC"))


# -- configuration ---------------------------------------------------------------------

NUMERIC_VARS = [
    "SCHEDULER_GRACE_SECONDS", "SCHEDULER_CONCURRENCY", "SCHEDULER_MAX_ATTEMPTS", "SCHEDULER_RETRY_BASE_SECONDS",
    "SCHEDULER_RETRY_MAX_SECONDS", "SCHEDULER_HTTP_TIMEOUT_SECONDS", "SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS",
    "SCHEDULER_HEARTBEAT_SECONDS", "SCHEDULER_HEARTBEAT_TIMEOUT_SECONDS", "SCHEDULER_MAX_CONTENT_CHARS",
    "SCHEDULER_HORIZON_SECONDS",
    "SCHEDULER_MAX_MEDIA_BYTES", "SCHEDULER_MAX_MEDIA_FILE_BYTES",
    "SCHEDULER_MEDIA_POLL_INTERVAL_SECONDS", "SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS",
    "SCHEDULER_TOKEN_REFRESH_MARGIN_SECONDS", "SCHEDULER_LONG_LIVED_REFRESH_MARGIN_SECONDS",
    "SCHEDULER_MASTODON_MAX_CHARACTERS", "SUPABASE_SIGNED_URL_SECONDS", "SCHEDULER_WEBHOOK_CONCURRENCY",
    "SCHEDULER_X_ACCOUNT_CONCURRENCY",
]
OTHER_VARS = [
    "DATABASE_URL", "SCHEDULER_LOG_LEVEL", "SCHEDULER_LOG_FORMAT", "SCHEDULER_INSTANCE_ID",
    "SCHEDULER_METRICS_ADDRESS", "SCHEDULER_GRAPH_API_VERSION", "SCHEDULER_THREADS_API_VERSION",
    "SCHEDULER_LINKEDIN_VERSION", "SCHEDULER_X_API_BASE", "SCHEDULER_FOO_API_BASE", "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY", "SCHEDULER_SLACK_CLIENT_SECRET", "NOTIFY_SOCKET", "WATCHDOG_USEC",
]
env_text = st.text(st.characters(blacklist_characters="\x00"), max_size=40)
numberish = st.one_of(
    st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0x10", "1_000", " 7 ", "٣", "²", "1" * 5000, "", "   "]),
    env_text,
)
otherish = st.one_of(
    st.sampled_from([
        "postgresql://u:p@h/db", "postgres://h/db", "mysql://h/db", "debug", "INFO", "json", "console",
        "127.0.0.1:9464", "[::1]:9464", "host:0", "host:65536", "host:²", "host:٣", "h:", ":1", "v21.0",
        "202601", "202601.01", "https://x.test/", "ftp://x", "", "  ",
    ]),
    env_text,
)
envs = st.fixed_dictionaries(
    {}, optional={**{k: numberish for k in NUMERIC_VARS}, **{k: otherish for k in OTHER_VARS}},
)


@FAST
@given(envs)
@example({"SCHEDULER_METRICS_ADDRESS": "host:²"})
@example({"SCHEDULER_CONCURRENCY": "1" * 5000})
def test_from_env_gives_settings_or_a_config_error_naming_the_variable(env: dict[str, str]) -> None:
    env = {**env, "SCHEDULER_STATE_DIR": "/nonexistent/state"}
    try:
        settings_ = Settings.from_env(env)
    except ConfigError as exc:
        message = str(exc)
        named = [k for k in env if k in message]
        assert named, f"{message!r} names none of the variables set"
        return
    assert settings_.concurrency >= 1 and settings_.max_attempts >= 1
    for value in (settings_.grace_seconds, settings_.heartbeat_seconds, settings_.http_timeout_seconds):
        assert math.isfinite(value) and value >= 0
    assert settings_.log_level in ("debug", "info", "warning", "error")


def test_credentials_directory_that_is_not_text_is_a_config_error(tmp_path: Path) -> None:
    """A systemd credential file with bytes that are not UTF-8: a ConfigError, not a traceback."""
    (tmp_path / "database_url").write_bytes(b"\xff\xfepostgresql://")
    with pytest.raises(ConfigError, match=r"DATABASE_URL|database_url"):
        Settings.from_env({"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_credentials_directory_fills_unset_variables(tmp_path: Path) -> None:
    (tmp_path / "database_url").write_text("postgresql://u:pw@db/x\n")
    (tmp_path / "SCHEDULER_CONCURRENCY").write_text("7")
    got = Settings.from_env({"CREDENTIALS_DIRECTORY": str(tmp_path), "SCHEDULER_CONCURRENCY": "3"})
    assert got.database_url == "postgresql://u:pw@db/x" and got.concurrency == 3


# -- retry classification --------------------------------------------------------------

RETRYABLE = [errors.RetryablePublishError, errors.RateLimitedError, errors.TransientError]
OTHERS = [
    errors.OutcomeUnknownError, errors.AuthError, errors.ContentRejectedError, errors.PlatformConfigError,
    errors.PermanentPublishError, errors.PublishError, errors.InvalidPostError, errors.InvalidScheduleError,
    errors.NoConnectionError, errors.SchedulerError, errors.ConfigError,
    ValueError, KeyError, RuntimeError, TypeError, AssertionError, ZeroDivisionError, OSError,
    httpx.ReadTimeout, json.JSONDecodeError,
]


def _make(kind: type[BaseException], message: str, retry_after: float | None) -> BaseException:
    if kind in RETRYABLE:
        return kind(message, retry_after)  # type: ignore[call-arg]
    if kind is json.JSONDecodeError:
        return json.JSONDecodeError(message, "doc", 0)
    if kind is httpx.ReadTimeout:
        return httpx.ReadTimeout(message)
    return kind(message)


def _limit(exc: BaseException, max_attempts: int) -> int:
    return max_attempts * (RATE_LIMIT_ATTEMPTS_FACTOR if isinstance(exc, errors.RateLimitedError) else 1)


aware_instants = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(UTC))


def _check_outcome(exc: BaseException, attempt: int, max_attempts: int, started: dt.datetime,
                   finished: dt.datetime, retry_base: float, retry_max: float) -> None:
    post_id = uuid.uuid4()
    outcome = classify(
        exc, post_id=post_id, platform="webhook", attempt=attempt, started_at=started, finished_at=finished,
        max_attempts=max_attempts, retry_base=retry_base, retry_max=retry_max,
    )
    assert outcome.kind in set(OutcomeKind) and outcome.kind is not OutcomeKind.PUBLISHED
    assert (outcome.post_id, outcome.attempt, outcome.platform) == (post_id, attempt, "webhook")
    assert outcome.error_message and outcome.reason
    assert outcome.result is None
    if outcome.kind is OutcomeKind.RETRY:
        assert isinstance(exc, errors.RetryablePublishError)
        assert outcome.retry_at is not None and outcome.retry_at >= finished
        assert outcome.status is PostStatus.SCHEDULED
        assert attempt < _limit(exc, max_attempts), "retried past the attempt limit"
        delay = (outcome.retry_at - finished).total_seconds()
        ra = exc.retry_after  # type: ignore[attr-defined]
        # The platform's wait is a floor, taken at its word up to LONGEST_WAIT (inf, 1e12…).
        floor = min(ra, LONGEST_WAIT) if ra is not None and not math.isnan(ra) else 0.0
        assert delay >= floor - 1e-6, "Retry-After is a floor"
        assert delay <= max(retry_max, floor) + 1e-6
    else:
        assert outcome.retry_at is None and outcome.status is PostStatus.DRAFT
    if isinstance(exc, errors.OutcomeUnknownError):
        assert outcome.kind is OutcomeKind.UNKNOWN and "outcome unknown" in outcome.error_message
    elif isinstance(exc, errors.RetryablePublishError):
        expected = OutcomeKind.RETRY if attempt < _limit(exc, max_attempts) else OutcomeKind.FAILED
        assert outcome.kind is expected
    elif isinstance(exc, (errors.PublishError, errors.InvalidPostError)):
        assert outcome.kind is OutcomeKind.FAILED
    else:  # a bug in an adapter (or an error outside the publish tree): the request may have gone out
        assert outcome.kind is OutcomeKind.UNKNOWN and outcome.reason == "internal"


@FAST
@given(
    kind=st.sampled_from(RETRYABLE + OTHERS),
    message=st.text(min_size=1, max_size=50).filter(str.strip),
    retry_after=st.none() | st.floats(0, 86400 * 7),
    max_attempts=st.integers(1, 20),
    attempt_over=st.integers(-30, 250),
    started=aware_instants,
    took=st.timedeltas(dt.timedelta(0), dt.timedelta(hours=1)),
    retry_base=st.floats(0, 3600),
    retry_max=st.floats(0, 86400),
)
def test_classify_maps_every_exception_to_one_outcome(
    kind: type[BaseException], message: str, retry_after: float | None, max_attempts: int, attempt_over: int,
    started: dt.datetime, took: dt.timedelta, retry_base: float, retry_max: float,
) -> None:
    exc = _make(kind, message, retry_after)
    attempt = max(1, _limit(exc, max_attempts) + attempt_over)
    _check_outcome(exc, attempt, max_attempts, started, started + took, retry_base, retry_max)


@pytest.mark.parametrize("kind", RETRYABLE + OTHERS)
def test_classify_never_returns_an_empty_reason(kind: type[BaseException]) -> None:
    """An adapter raising with an empty message must still leave a reason on the row
    ('draft' with an empty error_message tells the user nothing)."""
    finished = dt.datetime(2030, 1, 1, tzinfo=UTC)
    outcome = classify(
        _make(kind, "", None), post_id=uuid.uuid4(), platform="webhook", attempt=99, started_at=finished,
        finished_at=finished, max_attempts=1, retry_base=1.0, retry_max=1.0,
    )
    assert outcome.error_message and outcome.error_message.strip(), f"{kind.__name__}('') left no reason"


@FAST
@given(
    kind=st.sampled_from(RETRYABLE),
    retry_after=st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e12, 1e15, float("inf")]),
    attempt=st.integers(1, 49),
)
@example(kind=errors.RateLimitedError, retry_after=float("inf"), attempt=1)
@example(kind=errors.RateLimitedError, retry_after=1e12, attempt=1)
def test_classify_survives_any_retry_after(kind: type[BaseException], retry_after: float, attempt: int) -> None:
    """``Retry-After`` comes from the platform (``http.retry_after`` parses "inf", "1e12",
    a date in year 9999): whatever it says, classify returns an outcome and never raises."""
    finished = dt.datetime(2030, 1, 1, tzinfo=UTC)
    _check_outcome(_make(kind, "rate limited", retry_after), attempt, 5, finished, finished, 10.0, 900.0)


@FAST
@given(attempt=st.integers(1, 10_000), max_attempts=st.integers(1, 2_000))
@example(attempt=1100, max_attempts=1000)
def test_classify_survives_large_attempt_counts(attempt: int, max_attempts: int) -> None:
    """SCHEDULER_MAX_ATTEMPTS has no upper bound: the backoff must not overflow a float."""
    finished = dt.datetime(2030, 1, 1, tzinfo=UTC)
    _check_outcome(errors.RateLimitedError("slow down"), attempt, max_attempts, finished, finished, 10.0, 900.0)


# -- the schedule against a dict model -------------------------------------------------

class ScheduleModel(RuleBasedStateMachine):
    """Timers vs a dict {id: version}: same answers, pops earliest first.

    As in the daemon, ``(id, version)`` determines the due instant (the triggers bump the
    version whenever anything that decides it changes), so the model draws each pair's due
    once; arming a version not newer than the armed one changes nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.schedule = Timers()
        self.model: dict[uuid.UUID, int] = {}  # id -> armed version
        self.dues: dict[tuple[uuid.UUID, int], float] = {}
        self.ids = [uuid.UUID(int=n * 0x9E3779B97F4A7C15 % 2**128) for n in range(12)]

    def _due(self, pid: uuid.UUID, version: int, drawn: float) -> float:
        return self.dues.setdefault((pid, version), drawn)

    def _earliest(self, exclude: uuid.UUID | None = None) -> float | None:
        dues = [self.dues[(pid, v)] for pid, v in self.model.items() if pid != exclude]
        return min(dues) if dues else None

    @rule(n=st.integers(0, 11), due=st.integers(0, 50).map(float) | st.floats(0, 50), version=st.integers(0, 5))
    def arm(self, n: int, due: float, version: int) -> None:
        pid = self.ids[n]
        due = self._due(pid, version, due)
        current = self.model.get(pid)
        if current is not None and current >= version:
            expected = False
        else:
            others = self._earliest(exclude=pid)
            expected = others is None or due < others
            self.model[pid] = version
        assert self.schedule.arm(pid, due, version) == expected

    @rule(n=st.integers(0, 11))
    def cancel(self, n: int) -> None:
        pid = self.ids[n]
        assert self.schedule.cancel(pid) == (self.model.pop(pid, None) is not None)

    @rule(now=st.floats(-1, 60), limit=st.none() | st.integers(1, 5))
    def pop_due(self, now: float, limit: int | None) -> None:
        due_now = [(self.dues[(pid, v)], v, pid) for pid, v in self.model.items() if self.dues[(pid, v)] <= now]
        got = self.schedule.pop_due(now, limit)
        assert [a.due for a in got] == sorted(a.due for a in got), "not earliest first"
        expected_dues = sorted(d for d, _, _ in due_now)[: len(got)]
        assert [a.due for a in got] == expected_dues
        assert len(got) == (len(due_now) if limit is None else min(limit, len(due_now)))
        for a in got:
            assert self.model.get(a.id) == a.version and self.dues[(a.id, a.version)] == a.due
            del self.model[a.id]

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def clear(self) -> None:
        self.schedule.clear()
        self.model.clear()

    @rule(count=st.integers(1, 1500))
    def churn(self, count: int) -> None:
        """Many re-arms of one post at ever newer versions: stale heap items pile up and get compacted."""
        pid = self.ids[0]
        for k in range(count):
            version = self.model.get(pid, 5) + 1
            self.arm(0, float(k % 50), version)

    @invariant()
    def agrees(self) -> None:
        assert len(self.schedule) == len(self.model)
        assert self.schedule.next_due() == self._earliest()
        assert {a.id: (a.due, a.version) for a in self.schedule} == {
            p: (self.dues[(p, v)], v) for p, v in self.model.items()}
        for pid in self.ids:
            armed = self.schedule.get(pid)
            assert (pid in self.schedule) == (pid in self.model) == (armed is not None)
            if armed is not None:
                assert armed.version == self.model[pid] and armed.due == self.dues[(pid, armed.version)]


ScheduleModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestSchedule = ScheduleModel.TestCase
