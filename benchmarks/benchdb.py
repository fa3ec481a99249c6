"""What the benchmark scripts share: a PostgreSQL database of their own, Django set up on it.

A benchmark drops and re-creates the databases it uses, so it refuses any DATABASE_URL whose
database name does not contain "bench".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def bench_database_url() -> dict[str, Any]:
    """The parsed DATABASE_URL, after checking it is a PostgreSQL benchmark database."""
    import dj_database_url

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit("Set DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/lrb_bench")
    parsed = dj_database_url.parse(url)
    if parsed["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("The benchmarks run on PostgreSQL: DATABASE_URL=postgres://…")
    if "bench" not in parsed["NAME"]:
        sys.exit(f"Refusing to drop {parsed['NAME']!r}: use a database name containing 'bench'.")
    return parsed


def admin(parsed: dict[str, Any]):
    """An autocommit connection to the server's maintenance database."""
    import psycopg2

    conn = psycopg2.connect(
        dbname="postgres",
        user=parsed["USER"] or None,
        password=parsed["PASSWORD"] or None,
        host=parsed["HOST"] or None,
        port=parsed["PORT"] or None,
    )
    conn.autocommit = True
    return conn


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_database(parsed: dict[str, Any], name: str, template: str | None = None) -> None:
    conn = admin(parsed)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_name(name)} WITH (FORCE)")
        clone = f" TEMPLATE {quote_name(template)}" if template else ""
        cur.execute(f"CREATE DATABASE {quote_name(name)}{clone}")
    conn.close()


def drop_database(parsed: dict[str, Any], name: str) -> None:
    conn = admin(parsed)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_name(name)} WITH (FORCE)")
    conn.close()


def database_url(parsed: dict[str, Any], name: str) -> str:
    from urllib.parse import quote

    auth = quote(parsed["USER"] or "", safe="")
    if parsed["PASSWORD"]:
        auth += ":" + quote(parsed["PASSWORD"], safe="")
    host = parsed["HOST"] or "127.0.0.1"
    port = parsed["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{quote(name, safe='')}"


def setup_django(settings_module: str = "config.settings.test") -> None:
    """Django on the database named in DATABASE_URL (which must exist)."""
    sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()


def use_database(name: str) -> None:
    """Point Django's default connection at another database of the same server."""
    from django.conf import settings
    from django.db import connection

    connection.close()
    settings.DATABASES["default"]["NAME"] = name
    connection.settings_dict["NAME"] = name
