"""Files the platform writes (the SQLite database, dead letters, exports): created readable by their
owner only, since they hold complaint data; a file that already exists keeps the mode its operator
gave it. A path that cannot be used is one error naming the path and the operating system's reason."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

PRIVATE = 0o600


class PathUnusable(Exception):
    """A file the command needs cannot be opened or created."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"cannot use {path}: {reason}")
        self.path, self.reason = Path(path), reason


def unusable(path: Path | str, error: OSError) -> PathUnusable:
    return PathUnusable(path, error.strerror or str(error))


def open_private(path: Path | str, mode: str = "w", newline: str | None = None) -> IO[str]:
    """Open a text file for writing ("w") or appending ("a"); a new one is created 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    try:
        fd = os.open(path, flags, PRIVATE)
    except OSError as error:
        raise unusable(path, error) from error
    return os.fdopen(fd, mode, encoding="utf-8", newline=newline)


def create_private(path: Path | str) -> None:
    """Create an empty file 0600 unless it exists (then only check it can be opened for writing)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE))
    except OSError as error:
        raise unusable(path, error) from error


def check_readable(path: Path | str) -> None:
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError as error:
        raise unusable(path, error) from error


def private_fd(path: Path | str, flags: int) -> int:
    """os.open with mode 0600 for a file it creates (a lock file, a file rewritten in place)."""
    try:
        return os.open(path, flags | os.O_CREAT, PRIVATE)
    except OSError as error:
        raise unusable(path, error) from error
