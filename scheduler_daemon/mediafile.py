"""Media too large to hold in memory (video): spooled to a private temporary file.

``Spool`` takes a download chunk by chunk and writes it to a file in the spool directory
(``SCHEDULER_STATE_DIR/spool``, mode 0700) that is unlinked as soon as it is created
(``tempfile.TemporaryFile``): it has no name, nothing else can open it, and it disappears
with its descriptor, on ``close``, on an exception, and when the process is killed. Past
``cap`` bytes the spool stops, frees the file and raises ``MediaTooLarge``. ``finish``
probes the bytes (``probe``: container, codecs, duration, … for a video; format and size
for an image) and hands back a ``MediaFile``.

A ``MediaFile`` is read, never loaded: ``chunks()`` streams it (an httpx request body:
``content=file.chunks()``, with ``Content-Length: file.size``), ``read(offset, length)``
gives one segment (chunked uploads: X's APPEND, LinkedIn's parts), ``open()`` an independent
file object (httpx ``files=`` multipart). Disk reads and writes run in a worker thread, so
the event loop (and every other post's timer) never waits on the disk.
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from .probe import ImageFacts, Probe, UnreadableMedia, VideoFacts, probe

__all__ = ["CHUNK_BYTES", "MediaFile", "MediaTooLarge", "Spool"]

CHUNK_BYTES = 1024 * 1024  # what one disk read or write moves
_WRITE_BUFFER = 1024 * 1024


class MediaTooLarge(Exception):
    """The download went past the spool's cap; nothing of it is kept."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"larger than {cap} bytes")
        self.cap = cap


class MediaFile:
    """One downloaded media item in an unlinked temporary file.

    ``size`` in bytes; ``mime`` as the post or the server gave it; ``name`` a file name for
    uploads; ``video`` / ``image`` what the bytes hold (None: not that kind, or unreadable:
    ``problem`` says why).
    """

    def __init__(self, file: BinaryIO, size: int, mime: str, name: str, probed: Probe, problem: str | None) -> None:
        self._file = file
        self.size = size
        self.mime = mime
        self.name = name
        self.video: VideoFacts | None = probed.video
        self.image: ImageFacts | None = probed.image
        self.problem = problem

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self._file.close()

    async def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end of the file)."""
        return await asyncio.to_thread(os.pread, self._file.fileno(), length, offset)

    async def chunks(self, size: int = CHUNK_BYTES, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of ``[start, end)`` (the whole file by default), ``size`` at a time."""
        stop = self.size if end is None else min(end, self.size)
        position = start
        while position < stop:
            chunk = await self.read(position, min(size, stop - position))
            if not chunk:
                return
            position += len(chunk)
            yield chunk

    def open(self) -> BinaryIO:
        """A file object of its own (its own offset) on the same bytes, for httpx's ``files=``."""
        return io.BufferedReader(_Reader(self._file.fileno(), self.size), CHUNK_BYTES)


class _Reader(io.RawIOBase):
    """Reads a descriptor with ``pread``, at an offset of its own; closing it leaves the file open."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = os.pread(self._fd, len(buffer), self._position)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position


class Spool:
    """Writes one download to an unlinked file in ``directory``, at most ``cap`` bytes."""

    def __init__(self, directory: Path, cap: int) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.cap = cap
        self.size = 0
        self._file: BinaryIO = tempfile.TemporaryFile(dir=directory, prefix="media-")  # noqa: SIM115 - handed on
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            self.discard()
            raise MediaTooLarge(self.cap)
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= _WRITE_BUFFER:
            await self._flush()

    async def _flush(self) -> None:
        data, self._pending, self._pending_bytes = b"".join(self._pending), [], 0
        if data:
            await asyncio.to_thread(self._file.write, data)

    async def finish(self, mime: str, name: str) -> MediaFile:
        """The spooled bytes as a ``MediaFile``, probed."""
        try:
            await self._flush()
            await asyncio.to_thread(self._file.flush)
            probed, problem = await asyncio.to_thread(self._probe)
        except BaseException:
            self.discard()
            raise
        return MediaFile(self._file, self.size, mime, name, probed, problem)

    def _probe(self) -> tuple[Probe, str | None]:
        reader = io.BufferedReader(_Reader(self._file.fileno(), self.size), 64 * 1024)
        try:
            return probe(reader, self.size), None
        except UnreadableMedia as exc:
            return Probe(), str(exc)

    def discard(self) -> None:
        """Free the file (idempotent)."""
        self._pending = []
        self._file.close()
