"""Personal data under the Personal Information Protection Law (个人信息保护法): crypto-shredding.

The customer identifier and the free-text fields of inbound events are stored sealed (AES-256-GCM)
with a key of the customer's own. Keys live in `recovery_keys`, never in events, logs or exports;
an event names only a random key id. Erasing a customer destroys their keys: the events stay as
they were written (so histories replay, every KPI is unchanged and the hash chains still verify),
and the personal fields read as "[erased]".

Keys are found by a lookup value, HMAC-SHA256 of the customer id under a secret of the store
(`recovery_secrets`), so the keys table holds no customer id either; the repeat-detection index
uses the same lookup and loses the customer's rows on erasure. A new key is written in the same
transaction as the first events sealed with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import PersistenceError

if TYPE_CHECKING:
    from infra.store import RecoveryApplication

PERSONAL_FIELDS = ("customer_id", "summary", "reason", "notes")
SEALED_ATTRIBUTES = (*PERSONAL_FIELDS, "raw")  # "raw": a refused line of a known customer
ERASED = "[erased]"
SEALED = "[sealed]"  # shown to a reader not allowed to read keys (the auditors' role)
PREFIX = "enc:v1:"


def new_key() -> tuple[str, bytes]:
    return os.urandom(12).hex(), AESGCM.generate_key(bit_length=256)


def seal(key_id: str, key: bytes, text: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, text.encode("utf-8"), key_id.encode())
    return f"{PREFIX}{key_id}:{base64.b64encode(nonce + sealed).decode()}"


def key_id_of(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(PREFIX):
        return value[len(PREFIX):].split(":", 1)[0]
    return None


def unseal(value: Any, keys: dict[str, bytes], missing: str = ERASED) -> Any:
    """The plain value; `missing` when its key is gone; anything not sealed as it is."""
    key_id = key_id_of(value)
    if key_id is None:
        return value
    key = keys.get(key_id)
    if key is None:
        return missing
    blob = base64.b64decode(value[len(PREFIX) + len(key_id) + 1:])
    return AESGCM(key).decrypt(blob[:12], blob[12:], key_id.encode()).decode("utf-8")


def sealed_fields(data: dict[str, Any]) -> list[str]:
    return [f for f in PERSONAL_FIELDS if isinstance(data.get(f), str)]


def seal_data(data: dict[str, Any], key_id: str | None, key: bytes | None) -> dict[str, Any]:
    """A copy with the personal fields sealed; without a key (an erased customer) they are not kept."""
    out = dict(data)
    for name in sealed_fields(data):
        if key_id_of(out[name]) is None:
            out[name] = seal(key_id, key, out[name]) if key is not None and key_id else ERASED
    return out


def unseal_data(data: dict[str, Any], keys: dict[str, bytes], missing: str = ERASED) -> dict[str, Any]:
    return {k: unseal(v, keys, missing) if k in PERSONAL_FIELDS else v for k, v in data.items()}


def key_ids(datas: Iterable[dict[str, Any]]) -> set[str]:
    return {k for d in datas for f in SEALED_ATTRIBUTES if (k := key_id_of(d.get(f)))}


class Keyring:
    """The store's keys, read through the recorder's datastore; nothing is cached across batches,
    so an erasure by another process takes effect at its next batch."""

    def __init__(self, app: RecoveryApplication):
        self.app = app
        self._pepper: bytes | None = None

    def _rows(self, statement: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self.app.datastore.transaction(commit=False) as c:
            return self.app.dialect.rows(c, statement, params)

    def pepper(self) -> bytes:
        if self._pepper is None:
            with self.app.datastore.transaction(commit=True) as c:
                self.app.dialect.execute(c, "INSERT INTO recovery_secrets VALUES ('lookup', ?) ON CONFLICT DO NOTHING",
                                         (os.urandom(32).hex(),))
                value = self.app.dialect.rows(c, "SELECT value FROM recovery_secrets WHERE name = 'lookup'")[0]["value"]
            self._pepper = bytes.fromhex(value)
        return self._pepper

    def lookup(self, customer_id: str) -> str:
        return hmac.new(self.pepper(), customer_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def by_lookup(self, lookups: list[str]) -> dict[str, tuple[str, bytes]]:
        with self.app.datastore.transaction(commit=False) as c:
            rows = self.app.dialect.rows_in(c, "SELECT key_id, lookup, key FROM recovery_keys", "lookup", lookups,
                                            " ORDER BY key_id")
        found: dict[str, tuple[str, bytes]] = {}
        for r in rows:
            found.setdefault(r["lookup"], (r["key_id"], bytes.fromhex(r["key"])))
        return found

    def by_id(self, ids: Iterable[str]) -> dict[str, bytes]:
        with self.app.datastore.transaction(commit=False) as c:
            rows = self.app.dialect.rows_in(c, "SELECT key_id, key FROM recovery_keys", "key_id", sorted(set(ids)))
        return {r["key_id"]: bytes.fromhex(r["key"]) for r in rows}

    def readable(self, ids: Iterable[str]) -> tuple[dict[str, bytes], str]:
        """Keys for display, and what a field without one shows: [erased], or [sealed] for a
        reader who may not read keys at all."""
        try:
            return self.by_id(ids), ERASED
        except PersistenceError as e:
            if "permission denied" not in str(e):
                raise
            return {}, SEALED

    def erase(self, customer_id: str) -> tuple[int, list[str]]:
        """Destroy the customer's keys and repeat-index rows; returns how many keys, and the ids of
        the customer's complaints."""
        lookup = self.lookup(customer_id)
        with self.app.writer.held(), self.app.datastore.transaction(commit=True) as c:
            d = self.app.dialect
            keys = d.rows(c, "SELECT COUNT(*) AS n FROM recovery_keys WHERE lookup = ?", (lookup,))[0]["n"]
            complaints = d.rows(c, "SELECT complaint_id FROM recovery_customer_issues WHERE customer_id = ?"
                                " ORDER BY complaint_id", (lookup,))
            d.execute(c, "DELETE FROM recovery_keys WHERE lookup = ?", (lookup,))
            d.execute(c, "DELETE FROM recovery_customer_issues WHERE customer_id = ?", (lookup,))
        return int(keys), [r["complaint_id"] for r in complaints]
