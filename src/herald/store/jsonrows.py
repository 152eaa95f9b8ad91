"""Passing many rows to one statement as a single JSON parameter.

Both databases expand a JSON array into rows (PostgreSQL ``json_array_elements``, SQLite
``json_each``), so a batch of N inserts or updates is one statement with one bound value
instead of N round trips or N×columns parameters. ``->>`` extracts a field as text on
both; ``CAST`` gives it its column type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from herald.store.database import Dialect

#: SQL types accepted by both dialects' CAST.
INTEGER = "INTEGER"
BIGINT = "BIGINT"
REAL = "DOUBLE PRECISION"
TEXT = "TEXT"


def source(dialect: Dialect, param: str) -> str:
    """The FROM item yielding one row per array element, as ``e.value``."""
    if dialect == "postgresql":
        return f"json_array_elements(CAST(:{param} AS json)) AS e(value)"
    return f"json_each(:{param}) AS e"


def field(name: str, sql_type: str = TEXT) -> str:
    """An element's field, cast to ``sql_type``."""
    return f"CAST(e.value ->> '{name}' AS {sql_type})"


def fields(columns: Sequence[tuple[str, str]]) -> str:
    """``field`` for each ``(name, type)``, comma-separated, aliased to the name."""
    return ", ".join(f"{field(name, sql_type)} AS {name}" for name, sql_type in columns)


def dumps(rows: Iterable[object]) -> str:
    return orjson.dumps(list(rows)).decode()
