"""An RDS-style master role on a server we are superuser of, to restore as RDS does.

The temporary RDS instance restores as its master user: not a superuser, but CREATEDB and
CREATEROLE, and a member of the group role `rds_superuser`. A local verification that
restored as a superuser would pass backups RDS cannot restore (C-language functions, base
types, operator classes, foreign-data wrappers...), so local instances restore as such a
role by default.

What `rds_superuser` is given here is deliberately modest: membership in `pg_monitor` and
`pg_signal_backend` (RDS documents that rds_superuser sees every session and may cancel or
terminate it), nothing that reads or writes other roles' data (no `pg_read_all_data`,
`pg_write_all_data`, BYPASSRLS). The master holds ADMIN OPTION on `rds_superuser`, as on RDS.
What RDS adds on top of plain PostgreSQL privileges is not emulated: creating extensions
that are not trusted (RDS allows its supported list), event triggers, `rds.*` parameters.
A backup that needs those fails here and would pass on RDS: a false alarm, never a false pass.
"""

from __future__ import annotations

import secrets

from psycopg import sql

from .target import Target

RDS_SUPERUSER = "rds_superuser"
MASTER_USER = "backproof"  # the master user's name on the RDS instance too (instances/rds.py)
# Built-in roles rds_superuser belongs to (both exist in every supported major, 10+).
RDS_SUPERUSER_MEMBER_OF = ("pg_monitor", "pg_signal_backend")


def create_rds_master(admin: Target, *, user: str = MASTER_USER) -> Target:
    """Create `rds_superuser` and a LOGIN master role with a random password on the server
    `admin` (a superuser) connects to; the master's target to the same database."""
    password = secrets.token_urlsafe(24)
    group, master = sql.Identifier(RDS_SUPERUSER), sql.Identifier(user)
    with admin.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(group))
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.SQL(", ").join(map(sql.Identifier, RDS_SUPERUSER_MEMBER_OF)), group
            )
        )
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN INHERIT CREATEDB CREATEROLE PASSWORD {}").format(
                master, sql.Literal(password)
            )
        )
        conn.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(group, master))
    return Target.from_params(**{**admin.params, "user": user, "password": password})
