"""Start a process, wait for its READY=1 on a NOTIFY_SOCKET we bind, read its memory.

``scheduler_daemon.systemd`` sends READY=1 once LISTEN is active and the boot load is
armed, exactly as systemd would see it. Time runs from just before the process is
spawned (interpreter start and imports included) to the datagram's arrival.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ready:
    seconds: float  # spawn → READY=1
    rss_mb: float  # VmRSS at READY
    peak_mb: float  # VmHWM at READY: the most it was resident so far
    status: str  # the STATUS= sent with READY=1

    def as_dict(self) -> dict[str, float | str]:
        return {"ready_s": round(self.seconds, 3), "rss_mb": round(self.rss_mb, 1),
                "peak_rss_mb": round(self.peak_mb, 1), "status": self.status}


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB, from /proc."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.queue.put_nowait(data)


def cpu_seconds(pid: int) -> float:
    """User + system CPU ``pid`` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    """File descriptors ``pid`` holds open (sockets, pipes, files)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


class DaemonProcess:
    """``async with DaemonProcess(argv, env) as proc``: spawned, READY=1 received on our
    NOTIFY_SOCKET (``proc.ready``), SIGTERMed and waited for on exit. Its output goes to
    ``output`` (a file; /dev/null by default: the log lines are written, as in production)."""

    def __init__(self, argv: list[str], env: dict[str, str], *, timeout: float = 120.0,
                 output: Path | None = None) -> None:
        self.argv = argv
        self.env = env
        self.timeout = timeout
        self.output = output
        self.ready: Ready | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._transport: asyncio.BaseTransport | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aenter__(self) -> DaemonProcess:
        loop = asyncio.get_running_loop()
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-notify-")
        path = os.path.join(self._tmp.name, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        self._transport, datagrams = await loop.create_datagram_endpoint(_Datagrams, sock=sock)
        full_env = {**os.environ, **self.env, "NOTIFY_SOCKET": path}
        full_env.pop("WATCHDOG_USEC", None)
        log_path = self.output or Path(self._tmp.name) / "output.log"
        with log_path.open("wb") as log:
            began = time.perf_counter()
            self.proc = await asyncio.create_subprocess_exec(*self.argv, env=full_env, stdout=log, stderr=log)
        try:
            status = await _wait_ready(datagrams.queue, self.proc, self.timeout)
            seconds = time.perf_counter() - began
            rss, peak = memory_mb(self.proc.pid)
        except BaseException as exc:
            await self._end(kill=True)
            output = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            raise RuntimeError(f"{self.argv[2:]} failed before READY ({exc!r}); its output:\n{output}") from None
        self.ready = Ready(seconds, rss, peak, status)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._end(kill=False)

    async def _end(self, *, kill: bool) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            if kill:
                proc.kill()
            else:
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(60):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._transport is not None:
            self._transport.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


async def run_until_ready(argv: list[str], env: dict[str, str], timeout: float) -> Ready:
    """Spawn ``argv``, wait for READY=1, measure, then SIGTERM it and wait for the exit."""
    async with DaemonProcess(argv, env, timeout=timeout) as proc:
        assert proc.ready is not None
        return proc.ready


async def _wait_ready(queue: asyncio.Queue[bytes], proc: asyncio.subprocess.Process, timeout: float) -> str:
    exited = asyncio.ensure_future(proc.wait())
    try:
        async with asyncio.timeout(timeout):
            while True:
                datagram = asyncio.ensure_future(queue.get())
                await asyncio.wait({datagram, exited}, return_when=asyncio.FIRST_COMPLETED)
                if not datagram.done():
                    datagram.cancel()
                    raise RuntimeError(f"exited with status {proc.returncode} before READY=1")
                fields = dict(line.split("=", 1) for line in datagram.result().decode().splitlines() if "=" in line)
                if fields.get("READY") == "1":
                    return fields.get("STATUS", "")
    finally:
        exited.cancel()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
