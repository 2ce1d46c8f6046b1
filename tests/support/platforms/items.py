"""Media items the platform tests build: a video at one URL, numbered images."""

from __future__ import annotations

from scheduler_daemon.models import MediaItem

VIDEO_URL = "https://cdn.test/clips/launch.mp4"


def video(alt: str | None = "the launch", url: str = VIDEO_URL) -> MediaItem:
    return MediaItem(url=url, storage_path=None, alt=alt, mime="video/mp4")


def image(n: int, alt: str | None) -> MediaItem:
    return MediaItem(url=f"https://cdn.test/pics/{n}.png", storage_path=None, alt=alt, mime="image/png")
