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


SQLITE, POSTGRES = Dialect(), Dialect()
POSTGRES.postgres = True
