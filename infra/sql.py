"""One SQL text for SQLite and PostgreSQL: statements are written with `?` placeholders and
converted for psycopg. Rows are read by column name on both."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class Dialect:
    postgres = False

    def q(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def execute(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> None:
        cursor.execute(self.q(statement), tuple(params))

    def executemany(self, cursor: Any, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            cursor.executemany(self.q(statement), rows)

    def rows(self, cursor: Any, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor.execute(self.q(statement), tuple(params))
        return [dict(r) for r in cursor.fetchall()]

    def in_list(self, n: int) -> str:
        return ",".join("?" * n)

    def rows_in(self, cursor: Any, select: str, column: str, values: Sequence[Any],
                tail: str = "", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """`select ... WHERE column IN (values) tail`, in chunks that keep statements small."""
        found: list[dict[str, Any]] = []
        values = list(values)
        for i in range(0, len(values), 500):
            chunk = values[i : i + 500]
            found += self.rows(cursor, f"{select} WHERE {column} IN ({self.in_list(len(chunk))}){tail}",
                               (*chunk, *params))
        return found


SQLITE, POSTGRES = Dialect(), Dialect()
POSTGRES.postgres = True
