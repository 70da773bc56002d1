"""One SQL text for SQLite and PostgreSQL: statements are written with `?` placeholders and
converted for psycopg. Rows are read by column name on both."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import psycopg

# From this many rows an insert goes through COPY (see Dialect._insert_staged): three statements
# instead of one, but rows encoded in C instead of Python (about five times faster for thousands).
STAGED_ROWS = 200


class Cursor(Protocol):
    """What the SQL here needs of a cursor: eventsourcing's SQLite cursor (or sqlite3's) or a
    psycopg one, as a datastore's transaction gives it."""

    def execute(self, statement: Any, params: Any = ..., /) -> object: ...

    def executemany(self, statement: Any, rows: Any, /) -> object: ...

    def fetchall(self) -> list[Any]: ...


class Dialect:
    postgres = False

    def q(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def execute(self, cursor: Cursor, statement: str, params: Sequence[Any] = ()) -> None:
        cursor.execute(self.q(statement), tuple(params))

    def executemany(self, cursor: Cursor, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            cursor.executemany(self.q(statement), rows)

    def insert(self, cursor: Cursor, table: str, columns: Sequence[str], types: Sequence[str],
               rows: Sequence[Sequence[Any]], tail: str = "", copy: bool = False) -> None:
        """INSERT many rows. On PostgreSQL one statement whatever the count: the columns go as
        arrays through unnest(), so neither psycopg nor the server handles a statement per row;
        with `copy` (not in pipeline mode, where COPY is refused), many rows go through COPY.
        `types` are the columns' SQL types (text columns take str, bigint ones int); `tail` (ON
        CONFLICT ...) must hold no placeholders, and an upsert's conflict keys must be unique
        within the rows (PostgreSQL updates a row once per statement)."""
        if not rows:
            return
        if not self.postgres:
            self.executemany(cursor, f"INSERT INTO {table} ({', '.join(columns)}) "
                                     f"VALUES ({self.in_list(len(columns))}) "
                             + tail, rows)
            return
        if copy and len(rows) >= STAGED_ROWS:
            self._insert_staged(cast("psycopg.Cursor[Any]", cursor), table, columns, types, rows, tail)
            return
        arrays = ", ".join(f"%s::{t}[]" if t in _LITERALS else f"%b::{t}[]" for t in types)
        cursor.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {tail}",
                       [_LITERALS[t](column) if t in _LITERALS else list(column)
                        for t, column in zip(types, zip(*rows))])

    def _insert_staged(self, cursor: psycopg.Cursor[Any], table: str, columns: Sequence[str], types: Sequence[str],
                       rows: Sequence[Sequence[Any]], tail: str) -> None:
        """Binary COPY (rows encoded in C) into a temporary table of this session, then one
        INSERT ... SELECT from it. The staging table is emptied in the same transaction, so a
        rollback leaves it as it was."""
        stage = f"stage_{table}_{zlib.crc32(repr((columns, types)).encode()):08x}"
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ("
                       + ", ".join(f"{c} {t}" for c, t in zip(columns, types)) + ")")
        with cursor.copy(f"COPY {stage} FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM {stage} {tail}")
        cursor.execute(f"TRUNCATE {stage}")

    def delete_in(self, cursor: Cursor, table: str, column: str, values: Sequence[Any]) -> None:
        if not values:
            return
        if self.postgres:
            cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%b)", (list(values),))
        else:
            self.executemany(cursor, f"DELETE FROM {table} WHERE {column} = ?", [(v,) for v in values])

    def delete_keys(self, cursor: Cursor, table: str, columns: Sequence[str], keys: Sequence[Sequence[Any]]) -> None:
        """DELETE the rows whose `columns` hold one of `keys` (text columns)."""
        if not keys:
            return
        match = " AND ".join(f"{c} = ?" for c in columns)
        if self.postgres:
            cursor.execute(f"DELETE FROM {table} WHERE ({', '.join(columns)}) IN (SELECT * FROM unnest("
                           + ", ".join("%s::text[]" for _ in columns) + "))",
                           [list(column) for column in zip(*keys)])
        else:
            self.executemany(cursor, f"DELETE FROM {table} WHERE {match}", keys)

    def answers(self, datastore: Any) -> bool:
        """Whether the database answers a trivial query: after a failure, tells a fault of the data
        (it answers) from a database that is away."""
        try:
            with datastore.transaction(commit=False) as c:
                self.rows(c, "SELECT 1 AS one")
            return True
        except Exception:  # noqa: BLE001 - any failure to answer means the store is away
            return False

    def rows(self, cursor: Cursor, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor.execute(self.q(statement), tuple(params))
        return [dict(r) for r in cursor.fetchall()]

    def in_list(self, n: int) -> str:
        return ",".join("?" * n)

    def rows_in(self, cursor: Cursor, select: str, column: str, values: Sequence[Any],
                tail: str = "", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """`select ... WHERE column IN (values) tail`, each value once: on PostgreSQL one statement
        with an array, on SQLite in chunks that keep statements small.

        On PostgreSQL one index probe per value, whatever the planner believes: `column = ANY(array)`
        of a batch's thousand values was planned as a scan of the whole table (a full scan costs
        less than a thousand probes at the default random_page_cost), so every batch took longer
        as history grew. OFFSET 0 keeps the per-value subquery from being turned into a join."""
        found: list[dict[str, Any]] = []
        values = list(dict.fromkeys(values))
        if self.postgres:
            if not values:
                return found
            cursor.execute(self.q(f"SELECT found.* FROM unnest(%b) AS wanted(value) CROSS JOIN LATERAL"
                                  f" ({select} WHERE {column} = wanted.value{tail} OFFSET 0) AS found"),
                           (values, *params))
            return [dict(r) for r in cursor.fetchall()]
        for i in range(0, len(values), 500):
            chunk = values[i : i + 500]
            found += self.rows(cursor, f"{select} WHERE {column} IN ({self.in_list(len(chunk))}){tail}",
                               (*chunk, *params))
        return found


def _text_array(values: Iterable[Any]) -> str:
    return "{" + ",".join("NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def _bigint_array(values: Iterable[Any]) -> str:
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"


# Array literals built with str.join: psycopg dumps lists element by element in Python, which
# was the largest client-side cost of a batch's writes.
_LITERALS = {"text": _text_array, "bigint": _bigint_array}

SQLITE, POSTGRES = Dialect(), Dialect()
POSTGRES.postgres = True
