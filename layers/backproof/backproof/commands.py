"""Subcommands contributed by modules other than cli.py; each registrar adds one parser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .verify import add_verify_parser

REGISTRARS: list[Callable[[Any], None]] = [add_verify_parser]
