"""A fresh PostgreSQL schema per benchmark run, so runs never touch each other's (or the tests') tables."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import text

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def fresh_schema(base_url: str, *, prefix: str = "gb_bench") -> tuple[str, Callable[[], None]]:
    """Create an empty schema; return a URL whose connections use it, and a function dropping it."""
    from fulfilment.core.db import make_engine

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}", drop
