"""The deploy harness's reading of the host (fast; no container): where apt and pip come
from, and when the real-systemd test must be skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from deploy import nspawn


def test_apt_sources_in_both_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://other.example/ubuntu\nSuites: jammy\nComponents: main\n"
    )
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://old.example/debian bookworm main # note\n")
    sources = nspawn.apt_sources(tmp_path)
    assert [s.uri for s in sources] == ["http://mirror.example/debian", "http://security.example/debian-security",
                                        "http://old.example/debian"]
    assert nspawn.apt_mirror(sources) == "http://mirror.example/debian"
    assert nspawn.sources_list(sources).splitlines() == [
        "deb http://mirror.example/debian bookworm main contrib",
        "deb http://mirror.example/debian bookworm-updates main contrib",
        "deb http://security.example/debian-security bookworm-security main",
        "deb http://old.example/debian bookworm main",
    ]
    assert nspawn.apt_mirror([]) == nspawn.DEFAULT_MIRROR


def test_pip_binds_follow_the_configuration(tmp_path: Path) -> None:
    home, index, wheels = tmp_path / "home", tmp_path / "index", tmp_path / "wheels"
    (index / "simple/pkg").mkdir(parents=True)
    (index / "files").mkdir()
    wheels.mkdir()
    (home / ".config/pip").mkdir(parents=True)
    user_config = home / ".config/pip/pip.conf"
    user_config.write_text(f"[global]\nextra-index-url = file://{index}/simple https://pypi.example/simple\n")
    cert = tmp_path / "ca.crt"
    cert.write_text("x")
    env = {"HOME": str(home), "PIP_FIND_LINKS": str(wheels), "PIP_CERT": str(cert), "PIP_MISSING": "/nowhere/at/all"}
    binds = dict(nspawn.pip_binds(env))
    assert binds[user_config] == Path("/root/.config/pip/pip.conf")  # root's home inside
    assert binds[index] == index  # the whole index: simple/ links to ../../files/
    assert binds[wheels] == wheels and binds[cert] == cert
    assert Path("/nowhere/at/all") not in binds
    assert nspawn.pip_environment(env) == {k: v for k, v in env.items() if k.startswith("PIP_")}


def test_skipped_without_root_or_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert nspawn.missing_prerequisites() == "needs root (systemd-nspawn boots a container)"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(nspawn.shutil, "which", lambda tool: None if tool == "debootstrap" else f"/usr/bin/{tool}")
    reason = nspawn.missing_prerequisites()
    assert reason is not None and reason.startswith("needs debootstrap")


def test_sequence_numbers_order_cursors() -> None:
    a = "s=c58f;i=12e;b=4367;m=ac11a4d7;t=6618e80e81c16;x=7d4b"
    b = "s=c58f;i=135;b=4367;m=acb48847;t=6618e818aff86;x=6c11"
    assert nspawn.seqnum(a) == 0x12E < nspawn.seqnum(b) and nspawn.seqnum("") == 0
