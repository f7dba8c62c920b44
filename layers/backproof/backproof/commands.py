"""Subcommands contributed by modules other than cli.py; each registrar adds one parser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .demo import add_demo_parser
from .restore import add_restore_parser
from .verify import add_verify_parser

REGISTRARS: list[Callable[[Any], None]] = [add_verify_parser, add_restore_parser, add_demo_parser]
