"""Subcommands contributed by modules other than cli.py; each registrar adds one parser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REGISTRARS: list[Callable[[Any], None]] = []
