"""backproof: logical PostgreSQL backups, each proved restorable."""

__version__ = "0.1.0"
