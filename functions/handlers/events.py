"""Event parsing shared by the handlers: a bad event fails with the field's name."""

from __future__ import annotations

from typing import Any

from backproof.errors import BadInput


def field(event: dict[str, Any], name: str, kind: type = str, *, default: Any = ...) -> Any:
    if not isinstance(event, dict):
        raise BadInput(f"event must be a JSON object, got {type(event).__name__}")
    if name not in event or event[name] is None:
        if default is ...:
            raise BadInput(f"event field '{name}' is missing")
        return default
    value = event[name]
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # Step Functions passes JSON numbers through as floats
    if isinstance(value, bool) and kind is not bool:
        raise BadInput(f"event field '{name}' must be {kind.__name__}, got a boolean")
    if not isinstance(value, kind):
        raise BadInput(f"event field '{name}' must be {kind.__name__}, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise BadInput(f"event field '{name}' is empty")
    return value


def only(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    """Reject a field nobody reads: a typo (`backupid`) must not be silently ignored."""
    if not isinstance(obj, dict):
        raise BadInput(f"{where} must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        shown = ", ".join(sorted(a for a in allowed if not a.startswith("AWS_")))
        raise BadInput(f"{where} has an unknown field '{unknown[0]}'; allowed: {shown}")
