"""Files the platform writes beside the store hold customers' data: new ones are private (0600)."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE = 0o600


def open_private(path: Path, flags: int) -> int:
    """os.open with mode 0600 for a file it creates; an existing file keeps its mode."""
    return os.open(path, flags, PRIVATE)
