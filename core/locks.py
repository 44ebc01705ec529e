"""Locks between processes (CLI, pages, station) with ``filelock``, so they work on Windows too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from filelock import FileLock, Timeout

from core.errors import TrainingBusyError
from core.studio import Studio


@contextmanager
def training_lock(studio: Studio, tool_name: str) -> Iterator[None]:
    """An exclusive lock per tool across processes (CLI and UI; ``filelock``, so Windows too): a second
    training is refused."""
    studio.settings.locks_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(studio.settings.locks_dir / f"train-{tool_name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise TrainingBusyError(f"a training is already running for tool {tool_name!r}; wait for it to end") from None
    try:
        yield
    finally:
        lock.release()
