"""``install-service``: write the systemd unit and an environment-file template for this
machine (the unit's ``ExecStart=`` pointing at this installation)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import stat
import sys
from importlib.resources import files
from pathlib import Path

from ..config import Settings
from ._common import EXIT_OK, EXIT_PROBLEM, Command, UsageError, err

UNIT_NAME = "scheduler-daemon.service"
ENV_TEMPLATE = "scheduler-daemon.env.example"
DEFAULT_ENV_DIR = "/etc/scheduler-daemon"
_REPO_SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"


def read_template(name: str) -> str:
    """A file of the repository's systemd/ folder: from the installed package
    (``scheduler_daemon.units``, package data) or, in a source checkout, systemd/."""
    try:
        resource = files("scheduler_daemon.units").joinpath(name)
        if resource.is_file():
            return resource.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    path = _REPO_SYSTEMD / name
    if path.is_file():
        return path.read_text(encoding="utf-8")
    raise UsageError(f"{name} is not shipped with this installation (looked in the package and {_REPO_SYSTEMD})")


def entry_point() -> str:
    """The command systemd should run: this interpreter's scheduler-daemon script."""
    script = Path(sys.executable).with_name("scheduler-daemon")
    if os.access(script, os.X_OK):
        return _quote(str(script))
    return f"{_quote(sys.executable)} -m scheduler_daemon.cli"


def _quote(path: str) -> str:
    return f'"{path}"' if re.search(r"\s", path) else path


def render_unit(template: str, exec_start: str, env_dir: str) -> str:
    text, count = re.subn(r"^ExecStart=\S+ run$", f"ExecStart={exec_start} run", template, flags=re.M)
    if count != 1:
        raise UsageError("the unit template has no single `ExecStart=... run` line to point at this installation")
    if env_dir.rstrip("/") != DEFAULT_ENV_DIR:
        text = text.replace(f"{DEFAULT_ENV_DIR}/", f"{env_dir.rstrip('/')}/")
    stamp = (f"# Written by `scheduler-daemon install-service` on {dt.date.today().isoformat()} for\n"
             f"#   {exec_start}\n")
    return stamp + text


def _hidden_from_service(exec_start: str) -> str | None:
    """Why the unit's DynamicUser could not run ``exec_start``, if we can tell."""
    path = Path(exec_start.strip('"').split(" ")[0])
    for hidden in ("/home", "/root", "/run/user"):
        if path.is_relative_to(hidden):
            return (f"{path} is under {hidden}, which ProtectHome=yes hides from the service: install the "
                    "virtualenv under /opt (e.g. python3 -m venv /opt/scheduler-daemon/.venv) and run "
                    "install-service with that interpreter")
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue
        if parent != path and not mode & stat.S_IXOTH:
            return (f"{parent} is not searchable by other users (mode {stat.filemode(mode)}): the service runs "
                    "as a dynamic user and needs read access to the virtualenv (chmod o+rx)")
    return None


def write_file(path: Path, text: str, mode: int, force: bool) -> str:
    """Write ``text`` with exactly ``mode`` (never wider meanwhile); returns what happened:
    written, replaced, unchanged or kept (it exists, differs, and ``force`` is off)."""
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            os.chmod(path, mode)
            return "unchanged"
        if not force:
            return "kept"
        outcome = "replaced"
    else:
        outcome = "written"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return outcome


async def install_service(settings: Settings, args: argparse.Namespace) -> int:
    return install(args)  # files only, nothing to await: the command's async shell over plain code


def install(args: argparse.Namespace) -> int:
    for name, value in (("--unit-dir", args.unit_dir), ("--env-dir", args.env_dir)):
        if not value.startswith("/"):
            raise UsageError(f"{name} must be an absolute path, not {value!r}")
    prefix = Path(args.prefix)
    exec_start = entry_point()
    unit_text = render_unit(read_template(UNIT_NAME), exec_start, args.env_dir)
    env_text = read_template(ENV_TEMPLATE)
    unit_path = prefix / args.unit_dir.lstrip("/") / UNIT_NAME
    env_path = prefix / args.env_dir.lstrip("/") / "env"
    credential = f"{args.env_dir.rstrip('/')}/database_url"
    try:
        unit_outcome = write_file(unit_path, unit_text, 0o644, args.force)
        env_outcome = write_file(env_path, env_text, 0o600, args.force)
    except PermissionError as exc:
        err(f"cannot write {exc.filename}: permission denied (run as root, e.g. with sudo)")
        return EXIT_PROBLEM
    for path, outcome in ((unit_path, unit_outcome), (env_path, env_outcome)):
        suffix = " (exists and differs; --force replaces it)" if outcome == "kept" else ""
        print(f"{outcome:<9} {path}{suffix}")
    warning = _hidden_from_service(exec_start)
    if warning:
        print(f"\nwarning: {warning}")
    staged = "" if prefix.resolve() == Path("/") else f"\n(files staged under {prefix}: copy them into place first)"
    print(f"""{staged}
Next steps:
  1. Put the database URL in {credential} (one line, readable by root only). Supabase: the
     direct connection or the session pooler, both on port 5432, never the transaction
     pooler on 6543:
       sudo install -d -m 0755 {args.env_dir}
       sudo sh -c 'umask 077; cat > {credential}'   # paste the URL, then Ctrl-D
  2. Review the settings in {args.env_dir.rstrip('/')}/env (every line shows its default).
  3. Apply the migrations once:  sudo sh -c 'DATABASE_URL="$(cat {credential})" {exec_start} migrate'
     and check:                  sudo sh -c 'DATABASE_URL="$(cat {credential})" {exec_start} doctor'
  4. sudo systemctl daemon-reload
  5. sudo systemctl enable --now scheduler-daemon
  6. journalctl -u scheduler-daemon -f""")
    return EXIT_PROBLEM if unit_outcome == "kept" else EXIT_OK


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prefix", default="/", metavar="DIR", help="root to write under (default /)")
    p.add_argument("--unit-dir", default="/etc/systemd/system", metavar="DIR",
                   help="where the unit goes (default /etc/systemd/system)")
    p.add_argument("--env-dir", default=DEFAULT_ENV_DIR, metavar="DIR",
                   help=f"where the environment file and the database_url credential live (default {DEFAULT_ENV_DIR})")
    p.add_argument("--force", action="store_true", help="replace existing files")


INSTALL_SERVICE = Command(
    "install-service", "write the systemd unit and an environment-file template for this machine",
    install_service, _arguments,
    "Write scheduler-daemon.service (ExecStart= pointing at this installation's\n"
    "scheduler-daemon) into --unit-dir, and the environment-file template into\n"
    "--env-dir/env (mode 0600). Existing files are never replaced without --force.\n"
    "--prefix stages everything under another root (packaging, tests); the paths written\n"
    "into the unit stay the real ones. Exit status 1 when an existing, different unit\n"
    "was kept (rerun with --force) or a file cannot be written (run as root).",
)
