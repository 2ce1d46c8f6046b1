"""The media spool: a download goes to an unlinked private file (nothing to find in the
spool directory, nothing left after close, an exception or the cap), is read back in
chunks or through independent readers, and is probed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scheduler_daemon.mediafile import MediaTooLarge, Spool
from support.media import mp4


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


async def spooled(directory: Path, data: bytes, cap: int, chunk: int = 64 * 1024) -> Spool:
    spool = Spool(directory, cap)
    for start in range(0, len(data), chunk):
        await spool.write(data[start : start + chunk])
    return spool


async def test_a_spooled_video_is_probed_and_read_back_without_a_name_on_disk(tmp_path: Path) -> None:
    data = mp4(mdat_bytes=3 * 1024 * 1024)  # more than one write buffer
    directory = tmp_path / "spool"
    before = open_files()
    spool = await spooled(directory, data, cap=len(data))
    file = await spool.finish("video/mp4", "clip.mp4")
    assert os.listdir(directory) == [] and oct(directory.stat().st_mode & 0o777) == "0o700"
    assert (file.size, file.mime, file.name) == (len(data), "video/mp4", "clip.mp4")
    assert file.video is not None and file.video.video_codec == "h264" and file.problem is None
    assert b"".join([c async for c in file.chunks(size=1_000_000)]) == data
    assert await file.read(len(data) - 10, 100) == data[-10:]
    first, second = file.open(), file.open()
    assert first.read(100) == data[:100] and second.read(10) == data[:10]  # offsets of their own
    first.seek(-4, os.SEEK_END)
    assert first.read() == data[-4:]
    file.close()
    assert file.closed and open_files() == before


async def test_past_the_cap_nothing_is_kept(tmp_path: Path) -> None:
    before = open_files()
    with pytest.raises(MediaTooLarge, match="larger than 100000 bytes"):
        await spooled(tmp_path, b"x" * 100_001, cap=100_000, chunk=10_000)
    assert os.listdir(tmp_path) == [] and open_files() == before


async def test_an_unreadable_video_is_kept_with_the_reason(tmp_path: Path) -> None:
    spool = await spooled(tmp_path, mp4()[:300], cap=10**6)
    file = await spool.finish("video/mp4", "broken.mp4")
    assert file.video is None and file.problem and "runs past" in file.problem
    file.close()
