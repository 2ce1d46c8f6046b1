"""Daemon processes: ``.venv/bin/scheduler-daemon run`` started, killed and restarted by tests.

Each process logs JSON lines to a file of its own (kept for the report when a test
fails). ``wait_ready`` follows the log until the daemon's "ready" line — an event in
the process's output, not a sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent / "scheduler-daemon"


class DaemonProcess:
    def __init__(self, dsn: str, instance_id: str, log_dir: Path, **env: str) -> None:
        self.dsn = dsn
        self.instance_id = instance_id
        self.log_dir = log_dir
        self.extra_env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.kills = 0
        self.log_path: Path | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")}
        env.update(
            DATABASE_URL=self.dsn,
            SCHEDULER_INSTANCE_ID=self.instance_id,
            SCHEDULER_LOG_FORMAT="json",
            SCHEDULER_LOG_LEVEL="info",
            SCHEDULER_STATE_DIR=str(self.log_dir / f"state-{self.instance_id}"),
            SCHEDULER_ALLOW_NETWORKS="127.0.0.1/32",  # the fakes' host
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    async def start(self) -> None:
        self.starts += 1
        self.log_path = self.log_dir / f"{self.instance_id}-{self.starts}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115, ASYNC230 - handed to the child
        try:
            self.proc = await asyncio.create_subprocess_exec(
                str(BIN), "run", env=self.env(), stdout=log, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Follow the log until the "ready" line; fail early if the process exits."""
        assert self.proc is not None and self.log_path is not None
        async with asyncio.timeout(timeout):
            offset = 0
            while True:
                data = self.log_path.read_bytes()
                for line in data[offset:].splitlines():
                    if _event(line) == "ready":
                        return
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.instance_id} exited {self.proc.returncode}:\n{data.decode()[-3000:]}")
                offset = max(offset, data.rfind(b"\n") + 1)
                await asyncio.sleep(0.05)  # a log file has no change event: follow it like tail -f

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, sockets are closed by the kernel."""
        assert self.proc is not None
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.kills += 1

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def stop(self, timeout: float = 30.0) -> int | None:
        if not self.alive:
            return None if self.proc is None else self.proc.returncode
        self.signal(signal.SIGTERM)
        try:
            return await self.wait(timeout)
        except TimeoutError:
            self.kill()
            return await self.wait(5)

    def logs(self) -> list[Path]:
        return sorted(self.log_dir.glob(f"{self.instance_id}-*.log"))

    def log_lines(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for path in self.logs():
            for line in path.read_bytes().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"event": "<raw>", "text": line.decode(errors="replace")})
        return out


def _event(line: bytes) -> str | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value.get("event") if isinstance(value, dict) else None
