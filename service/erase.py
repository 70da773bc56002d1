"""Erasing a customer (个人信息保护法): their keys are destroyed, so every sealed field of theirs in
the store reads as "[erased]"; and the refused lines about them in the dead-letter file, which lies
outside the store, are redacted in place."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.files import private_fd
from infra.privacy import ERASED, Keyring
from infra.store import RecoveryApplication


@dataclass(frozen=True)
class Erasure:
    keys: int
    complaints: list[str]
    dead_letters_redacted: int


def erase_customer(app: RecoveryApplication, customer_id: str, dead_letters: Path | None) -> Erasure:
    keys, complaints = Keyring(app).erase(customer_id)
    redacted = 0
    if dead_letters is not None and dead_letters.is_file():
        redacted = redact_dead_letters(dead_letters, customer_id, set(complaints))
    return Erasure(keys, complaints, redacted)


def _names(line: Any, customer_id: str, complaints: set[str]) -> bool:
    try:
        envelope = json.loads(line) if isinstance(line, str) else None
    except ValueError:
        return False
    if not isinstance(envelope, dict):
        return False
    data = envelope.get("data")
    data = data if isinstance(data, dict) else {}
    about = [envelope.get("complaint_id"), data.get("complaint_id")]  # the second: a case about one
    return data.get("customer_id") == customer_id or any(isinstance(c, str) and c in complaints for c in about)


def redact_dead_letters(path: Path, customer_id: str, complaints: set[str]) -> int:
    """Replace the refused lines that name the customer or one of their complaints by "[erased]";
    returns how many. The file is rewritten beside itself and swapped in whole."""
    redacted = 0
    kept = []
    with path.open(encoding="utf-8", errors="surrogateescape") as source:
        for text in source:
            try:
                entry = json.loads(text)
            except ValueError:
                kept.append(text)
                continue
            if isinstance(entry, dict) and _names(entry.get("line"), customer_id, complaints):
                entry["line"] = ERASED
                entry.pop("original_base64", None)
                text = json.dumps(entry, ensure_ascii=False) + "\n"
                redacted += 1
            kept.append(text)
    if redacted:
        swap = path.with_name(path.name + ".erasing")
        with os.fdopen(private_fd(swap, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8",
                       errors="surrogateescape") as out:
            out.writelines(kept)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(swap, path.stat().st_mode & 0o777)
        os.replace(swap, path)
    return redacted
