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


async def run_until_ready(argv: list[str], env: dict[str, str], timeout: float) -> Ready:
    """Spawn ``argv``, wait for READY=1, measure, then SIGTERM it and wait for the exit."""
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        path = os.path.join(tmp, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        transport, datagrams = await loop.create_datagram_endpoint(_Datagrams, sock=sock)
        full_env = {**os.environ, **env, "NOTIFY_SOCKET": path}
        full_env.pop("WATCHDOG_USEC", None)
        log_path = Path(tmp) / "output.log"
        with log_path.open("wb") as log:
            began = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(*argv, env=full_env, stdout=log, stderr=log)
        try:
            status = await _wait_ready(datagrams.queue, proc, timeout)
            seconds = time.perf_counter() - began
            rss, peak = memory_mb(proc.pid)
        except BaseException as exc:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            output = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{argv[2:]} failed before READY ({exc!r}); its output:\n{output}") from None
        finally:
            transport.close()
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return Ready(seconds, rss, peak, status)


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
