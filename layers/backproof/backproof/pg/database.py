"""Databases on a server: creating one to restore into, listing what one already holds."""

from __future__ import annotations

from psycopg import sql

from .target import Target

# Names a fresh server (or RDS) already uses; a restore of a database so named gets a suffix.
RESERVED_DATABASES = ("postgres", "template0", "template1", "rdsadmin")

_USER_RELATIONS_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
"""


def create_database(admin: Target, dbname: str) -> Target:
    """Create `dbname` (UTF8, from template0) on the server `admin` connects to."""
    with admin.connect(autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(dbname)
            )
        )
    return admin.with_dbname(dbname)


def user_relations(target: Target) -> set[tuple[str, str]]:
    """(schema, name) of every relation the database holds, extension members excluded."""
    with target.connect(autocommit=True) as conn:
        return {(s, n) for s, n in conn.execute(_USER_RELATIONS_SQL).fetchall()}
