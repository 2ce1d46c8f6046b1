"""A Debian 12 machine with systemd as PID 1, booted by ``systemd-nspawn``, for the deploy test.

``pristine_root()`` debootstraps a root once per package list and keeps it as a tarball
under ``/var/cache/scheduler-daemon-tests/`` (keyed by suite, mirror, packages and this
recipe's version); ``Machine.boot()`` unpacks a fresh copy and boots it. The host has no
systemd of its own, so nspawn runs with ``--register=no --keep-unit`` in a cgroup of its
own, and commands enter the container with ``nsenter`` (its PID 1 is found through
nspawn's process tree). The container shares the host's network: apt and pip inside use
the host's mirror, index and pip configuration (bind-mounted read-only), and the daemon
reaches a webhook receiver on the host's loopback.

Every wait is bounded and ends on a real event: a process appearing, ``systemctl
is-system-running --wait``, a journal line, a unit property. ``Machine.close()`` (also
run when the test process dies: nspawn gets SIGTERM through PDEATHSIG) powers the
container off, kills it if it does not stop, and removes its cgroups and its root.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from configparser import ConfigParser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CACHE_DIR = Path(os.environ.get("SCHEDULER_DEPLOY_CACHE", "/var/cache/scheduler-daemon-tests"))
RUN_DIR = Path("/var/tmp")  # short paths: the embedded server's socket lives under the root
RUN_PREFIX = "sd-deploy-"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# A stock Debian 12 VM (systemd, sudo, python3, certificates) plus the test's own
# PostgreSQL 15 for the DATABASE_URL modes. What the README's apt line installs
# (python3-venv, libnss-systemd) is deliberately absent.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "sudo", "ca-certificates", "python3", "postgresql-15")
RECIPE = 1  # bump when the build steps below change
HOSTNAME = "sd-deploy"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))


class MachineError(Exception):
    """The container could not be built, booted or driven."""


def missing_prerequisites() -> str | None:
    """Why this host cannot run the test, or None."""
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn boots a container)"
    lacking = [tool for tool in ("systemd-nspawn", "debootstrap", "nsenter", "setpriv") if shutil.which(tool) is None]
    if lacking:
        return (f"needs {', '.join(lacking)} (apt-get install systemd-container debootstrap; "
                ".ci/run installs them)")
    return None


# -- the host's package sources ------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def apt_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """The host's ``deb`` entries for this suite (and its -updates/-security), in both the
    deb822 ``.sources`` and the one-line ``.list`` formats."""
    found: list[AptSource] = []
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.strip().startswith("#") or ":" not in line:
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                for uri in fields.get("uris", "").split():
                    found.append(AptSource(uri, tuple(fields.get("suites", "").split()),
                                           tuple(fields.get("components", "main").split())))
    for path in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                found.append(AptSource(words[1], (words[2],), tuple(words[3:]) or ("main",)))
    return [s for s in found if any(suite.startswith(SUITE) for suite in s.suites)]


def apt_mirror(sources: Sequence[AptSource]) -> str:
    """The mirror of the suite itself (not -security), for debootstrap."""
    for source in sources:
        if SUITE in source.suites:
            return source.uri
    return DEFAULT_MIRROR


def sources_list(sources: Sequence[AptSource]) -> str:
    lines = [f"deb {s.uri} {suite} {' '.join(s.components)}"
             for s in sources for suite in s.suites if suite.startswith(SUITE)]
    return "\n".join(lines or [f"deb {DEFAULT_MIRROR} {SUITE} main"]) + "\n"


# -- the host's pip configuration ----------------------------------------------------------


def pip_environment(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("PIP_")}


def pip_config_files(env: Mapping[str, str] = os.environ) -> list[Path]:
    home = Path(env.get("HOME", "/root"))
    candidates = [Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"), home / ".config/pip/pip.conf",
                  home / ".pip/pip.conf"]
    candidates += [Path(d) / "pip/pip.conf" for d in env.get("XDG_CONFIG_DIRS", "").split(":") if d]
    if env.get("PIP_CONFIG_FILE"):
        candidates.append(Path(env["PIP_CONFIG_FILE"]))
    return [p for p in dict.fromkeys(candidates) if p.is_file()]


def _paths_in(value: str) -> Iterator[Path]:
    for token in re.split(r"[\s,]+", value):
        if token.startswith("file://"):
            path = Path(urlsplit(token).path)
            yield path.parent if path.name == "simple" else path  # an index: its files/ sit beside simple/
        elif token.startswith("/"):
            yield Path(token)


def pip_binds(env: Mapping[str, str] = os.environ) -> list[tuple[Path, Path]]:
    """Every host path pip's configuration needs (config files, certificates, constraint
    files, find-links folders, file:// indexes), as (host path, path inside) to bind-mount
    read-only: the same place, but the user's own files in root's home inside."""
    home = Path(env.get("HOME", "/root"))
    paths: list[Path] = []
    values = list(pip_environment(env).values())
    for config in pip_config_files(env):
        paths.append(config)
        parser = ConfigParser(interpolation=None)
        with contextlib.suppress(Exception):
            parser.read(config)
        values += [v for section in parser.sections() for v in parser[section].values()]
    for value in values:
        paths += [p for p in _paths_in(value) if p.exists()]
    unique = sorted(dict.fromkeys(paths))
    outermost = [p for p in unique if not any(p != q and p.is_relative_to(q) for q in unique)]
    return [(p, Path("/root") / p.relative_to(home) if p.is_relative_to(home) else p) for p in outermost]


# -- the cached root -----------------------------------------------------------------------


def root_key(mirror: str, sources: str) -> str:
    recipe = json.dumps({"suite": SUITE, "mirror": mirror, "sources": sources, "packages": sorted(PACKAGES),
                         "recipe": RECIPE, "arch": os.uname().machine})
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def pristine_root(log: Callable[[str], None] = print) -> Path:
    """The tarball of a freshly debootstrapped root; built (once, under a lock) if missing."""
    sources = apt_sources()
    mirror, listing = apt_mirror(sources), sources_list(sources)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"debian-{SUITE}-{root_key(mirror, listing)}.tar"
    with (CACHE_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            started = time.monotonic()
            _build_root(tarball, mirror, listing)
            log(f"built {tarball.name} in {time.monotonic() - started:.0f} s")
    return tarball


def _run_logged(argv: Sequence[str], log_path: Path, timeout: float) -> None:
    with log_path.open("ab") as out:
        result = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                timeout=timeout)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise MachineError(f"{shlex.join(argv)} exited {result.returncode}:\n{tail}")


def _build_root(tarball: Path, mirror: str, listing: str) -> None:
    build = Path(f"{tarball}.build")
    log_path = Path(f"{tarball}.log")
    shutil.rmtree(build, ignore_errors=True)
    log_path.unlink(missing_ok=True)
    try:
        _run_logged(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(build),
                     mirror], log_path, timeout=1800)
        (build / "etc/apt/sources.list").write_text(listing)
        _run_logged(["chroot", str(build), "apt-get", "update", "-q"], log_path, timeout=600)
        _run_logged(["chroot", str(build), "apt-get", "clean"], log_path, timeout=60)
        (build / "etc/hostname").write_text(f"{HOSTNAME}\n")
        with (build / "etc/hosts").open("a") as hosts:
            hosts.write(f"127.0.1.1\t{HOSTNAME}\n")
        (build / "etc/machine-id").write_text("")  # a new one at every boot
        # The test's PostgreSQL: loopback only; its port is chosen per run (conf.d).
        (build / "etc/postgresql/15/main/conf.d/deploy-test.conf").write_text("listen_addresses = '127.0.0.1'\n")
        partial = Path(f"{tarball}.part")
        _run_logged(["tar", "-C", str(build), "-cf", str(partial), "."], log_path, timeout=600)
        partial.rename(tarball)
    finally:
        shutil.rmtree(build, ignore_errors=True)


# -- the machine ---------------------------------------------------------------------------


@dataclass
class Machine:
    """One booted container. ``run`` executes a command inside, as root."""

    name: str
    workdir: Path
    nspawn: subprocess.Popen[bytes]
    leader: int  # the container's PID 1, as the host sees it
    cgroups: list[Path]
    env: dict[str, str] = field(default_factory=dict)

    # -- boot and teardown -------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def booted(cls, tarball: Path, *, prepare: Callable[[Path], None] = lambda root: None,
               binds: Sequence[tuple[Path, Path]] = (), env: Mapping[str, str] | None = None) -> Iterator[Machine]:
        remove_stale_runs()
        workdir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX, dir=RUN_DIR))
        (workdir / "owner").write_text(str(os.getpid()))
        machine: Machine | None = None
        try:
            root = workdir / "root"
            root.mkdir()
            subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True, timeout=600)
            prepare(root)
            machine = cls._boot(workdir, binds, dict(env or {}))
            yield machine
        finally:
            if machine is not None:
                machine.close()
            shutil.rmtree(workdir, ignore_errors=True)

    @classmethod
    def _boot(cls, workdir: Path, binds: Sequence[tuple[Path, Path]], env: dict[str, str]) -> Machine:
        name = f"{RUN_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"  # the owner's pid: see remove_stale_runs
        cgroups = [base / name for base in CGROUP_ROOTS if (base / "cgroup.procs").exists()]
        for cgroup in cgroups:
            cgroup.mkdir()
        nspawn = [
            "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot", f"--machine={name}",
            f"--hostname={HOSTNAME}", f"--directory={workdir / 'root'}", "--console=pipe",
            "--resolv-conf=copy-host", "--link-journal=no", "--timezone=off",
            *[f"--bind-ro={source}:{target}" for source, target in binds],
        ]
        # Into cgroups of its own (nspawn --keep-unit makes payload/ and supervisor/ beside
        # itself), and SIGTERM to nspawn (a clean poweroff) if this process dies.
        enter = " ".join(f"echo $$ > {shlex.quote(str(c / 'cgroup.procs'))};" for c in cgroups)
        script = f"{enter} exec setpriv --pdeathsig TERM -- {shlex.join(nspawn)}"
        console = (workdir / "console.log").open("wb")
        process = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=console,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        console.close()
        machine = cls(name, workdir, process, 0, cgroups, env)
        try:
            machine.leader = machine._find_leader(timeout=30)
            machine._wait_booted(timeout=120)
        except BaseException:
            machine.close()
            raise
        return machine

    def _find_leader(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise MachineError(f"systemd-nspawn exited {self.nspawn.returncode}:\n{self.console()}")
            for pid in _descendants(self.nspawn.pid):
                nspid = _status_field(pid, "NSpid").split()
                if len(nspid) >= 2 and nspid[-1] == "1":
                    return pid
            time.sleep(0.05)  # polling /proc for the container's PID 1 to appear
        raise MachineError(f"the container's PID 1 did not appear within {timeout:.0f} s:\n{self.console()}")

    def _wait_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MachineError(f"the container did not finish booting within {timeout:.0f} s:\n{self.console()}")
            try:  # blocks until boot is over; fails fast until systemd's socket exists
                state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=left)
            except subprocess.TimeoutExpired:
                continue
            if state.stdout.strip() in ("running", "degraded"):
                return
            if self.nspawn.poll() is not None:
                raise MachineError(f"systemd-nspawn exited {self.nspawn.returncode}:\n{self.console()}")
            time.sleep(0.1)  # systemd's private socket is not there yet

    def console(self) -> str:
        return (self.workdir / "console.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        """Power off (nspawn turns SIGTERM into a clean halt), else kill; then remove the
        cgroups. Safe to call twice."""
        if self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for pid in (self.leader, self.nspawn.pid):
                    if pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                self.nspawn.wait(timeout=30)
        shutil.rmtree(Path("/run/systemd/nspawn/propagate") / self.name, ignore_errors=True)
        for cgroup in self.cgroups:
            _remove_cgroup(cgroup)
        self.cgroups = []

    # -- commands ----------------------------------------------------------------------

    def command(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
        base = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "SYSTEMD_PAGER": "",
                "SYSTEMD_COLORS": "0", **self.env, **(env or {})}
        return ["nsenter", f"--target={self.leader}", "--all", "--", "env", "-i",
                *[f"{k}={v}" for k, v in base.items()], *argv]

    def run(self, argv: Sequence[str] | str, *, input: str | None = None, check: bool = True,
            timeout: float = 120, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (a string: a bash script with -e and pipefail) inside, as root."""
        if isinstance(argv, str):
            argv = ["bash", "-e", "-o", "pipefail", "-c", argv]
        result = subprocess.run(self.command(argv, env), input=input, capture_output=True, text=True,
                                timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise MachineError(f"{shlex.join(argv)} exited {result.returncode}\n"
                               f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
        return result

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.run(["systemctl", "show", unit, "-p", ",".join(properties)]).stdout
        return dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)

    def wait_show(self, unit: str, done: Callable[[dict[str, str]], bool], *properties: str,
                  timeout: float, interval: float = 0.1) -> dict[str, str]:
        """Poll the unit's properties until ``done`` holds (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            values = self.show(unit, *properties)
            if done(values):
                return values
            if time.monotonic() > deadline:
                raise MachineError(f"{unit}: still {values} after {timeout:.0f} s\n{self.journal_text(unit)}")
            time.sleep(interval)

    # -- the journal -------------------------------------------------------------------
    # journalctl 252 loses entries when matches (-u, -p, FIELD=) are combined with a
    # cursor: an err line of the unit, present in `journalctl -u X -p err`, was missing
    # from the same query with --after-cursor. So a cursor is only ever used unfiltered
    # (following), and "after" is applied here, by the entries' sequence numbers.

    def cursor(self) -> str:
        """The journal's current end: entries after it are new."""
        out = self.run(["journalctl", "-n", "0", "--show-cursor", "--no-pager"]).stdout
        match = re.search(r"-- cursor: (\S+)", out)
        return "" if match is None else match[1]

    def journal(self, *args: str, after: str = "") -> list[dict[str, Any]]:
        """``journalctl -o json ARGS`` (this boot), the entries after the cursor ``after``."""
        out = self.run(["journalctl", "--no-pager", "-b", "-o", "json", *args]).stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        floor = seqnum(after)
        return [e for e in entries if seqnum(e["__CURSOR"]) > floor]

    def journal_text(self, unit: str, lines: int = 60) -> str:
        return self.run(["journalctl", "--no-pager", "-u", unit, "-n", str(lines), "-o", "short-monotonic"],
                        check=False).stdout

    def wait_journal(self, done: Callable[[dict[str, Any]], bool], *, unit: str | None, after: str,
                     timeout: float) -> dict[str, Any]:
        """Follow the journal from the cursor ``after`` until an entry of ``unit`` satisfies
        ``done`` (bounded)."""
        since = [f"--after-cursor={after}"] if after else ["--lines=all"]
        argv = self.command(["journalctl", "--no-pager", "-o", "json", "--follow", *since])
        follower = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    stdin=subprocess.DEVNULL)
        assert follower.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(follower.stdout, selectors.EVENT_READ)
                while (left := deadline - time.monotonic()) > 0:
                    if not selector.select(left):
                        continue
                    chunk = os.read(follower.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    for line in complete:
                        if line.strip() and belongs(entry := json.loads(line), unit) and done(entry):
                            return entry
        finally:
            follower.kill()
            follower.wait()
        tail = self.journal_text(unit) if unit else ""
        raise MachineError(f"no journal entry of {unit} matched within {timeout:.0f} s; the last ones:\n{tail}")


def seqnum(cursor: str) -> int:
    """An entry's sequence number, from its cursor (0 for none)."""
    match = re.search(r"(?:^|;)i=([0-9a-f]+)", cursor)
    return int(match[1], 16) if match else 0


def belongs(entry: Mapping[str, Any], unit: str | None) -> bool:
    """Whether ``journalctl -u unit`` would show ``entry``: the unit's own output, or
    systemd's messages about it."""
    if unit is None:
        return True
    name = unit if "." in unit else f"{unit}.service"
    return entry.get("_SYSTEMD_UNIT") == name or entry.get("UNIT") == name


def message(entry: Mapping[str, Any]) -> str:
    """An entry's MESSAGE (journald stores non-UTF-8 text as a list of bytes)."""
    value = entry.get("MESSAGE", "")
    return bytes(value).decode(errors="replace") if isinstance(value, list) else str(value)


def event(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The daemon's JSON log line in ``entry``, if it is one."""
    text = message(entry)
    if not text.startswith("{"):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# -- /proc and cgroups -----------------------------------------------------------------------


def _status_field(pid: int, name: str) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        try:
            children = [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
        except OSError:
            children = []
        found += children
        queue += children
    return found


def _remove_cgroup(path: Path) -> None:
    if not path.exists():
        return
    for directory in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def remove_stale_runs() -> None:
    """Roots and cgroups left by a test process that was killed (its owner pid is gone)."""
    for workdir in RUN_DIR.glob(f"{RUN_PREFIX}*"):
        try:
            owner = int((workdir / "owner").read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(workdir, ignore_errors=True)
    for base in CGROUP_ROOTS:
        for cgroup in base.glob(f"{RUN_PREFIX}*"):
            owner = cgroup.name.removeprefix(RUN_PREFIX).split("-")[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                _remove_cgroup(cgroup)
