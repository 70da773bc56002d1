"""The stored form of a refused line (SPEC §2): a copy any store and any JSON writer accept.

SQLite TEXT, PostgreSQL text and JSON take neither NUL, nor a lone surrogate, nor (PostgreSQL)
invalid UTF-8, and a 10 MB line must not become a 10 MB dead letter. So the text is made safe and
the original is kept beside it in base64 whenever the two differ.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from domain.envelope import MAX_LINE_BYTES, line_size

KEPT_BYTES = 64 * 1024  # of a line longer than MAX_LINE_BYTES

# NUL, or a run of bytes that are not UTF-8 (decoded with surrogateescape as U+DC80..U+DCFF).
_UNSAFE = re.compile(r"\x00|[\udc80-\udcff]+")


@dataclass(frozen=True)
class RawLine:
    text: str  # safe to store and to write as JSON; the first KEPT_BYTES of a line that was too long
    original_b64: str | None  # the original (its first KEPT_BYTES if cut) when `text` differs from it
    length: int  # bytes of the whole original
    sha256: str  # hex, of the whole original


def storable(raw: bytes | str) -> RawLine:
    """`raw` as it may be stored: invalid bytes replaced, NUL and lone surrogates escaped, cut if too long."""
    original = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    cut = line_size(original) > MAX_LINE_BYTES  # as parse_line measures it
    kept = original[:KEPT_BYTES] if cut else original
    text = _safe(_whole_characters(kept) if cut else kept)
    same = not cut and text.encode("utf-8") == original
    return RawLine(
        text=text,
        original_b64=None if same else base64.b64encode(kept).decode("ascii"),
        length=len(original),
        sha256=hashlib.sha256(original).hexdigest(),
    )


def _whole_characters(head: bytes) -> bytes:
    """`head` without a character the cut split in two (at most 3 continuation bytes to drop)."""
    end = len(head)
    for back in range(1, 4):
        if end - back < 0:
            break
        byte = head[end - back]
        if byte & 0xC0 == 0xC0:  # a lead byte: is its character complete?
            size = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return head if back >= size else head[: end - back]
        if byte & 0xC0 != 0x80:  # ASCII: nothing split
            break
    return head


def _safe(data: bytes) -> str:
    return _UNSAFE.sub(_escaped, data.decode("utf-8", "surrogateescape"))


def _escaped(match: re.Match[str]) -> str:
    if match.group() == "\x00":
        return "\\x00"
    bad = match.group().encode("utf-8", "surrogateescape")
    if b"\xed" not in bad:
        return "\ufffd" * len(bad)
    out, i = [], 0
    while i < len(bad):
        # A surrogate encoded as UTF-8 (ED A0..BF 80..BF): shown as the code point, \ud800.
        if bad[i] == 0xED and i + 2 < len(bad) and 0xA0 <= bad[i + 1] <= 0xBF and 0x80 <= bad[i + 2] <= 0xBF:
            code = ((bad[i] & 0x0F) << 12) | ((bad[i + 1] & 0x3F) << 6) | (bad[i + 2] & 0x3F)
            out.append(f"\\u{code:04x}")
            i += 3
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)
