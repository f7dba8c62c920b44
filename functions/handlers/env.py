"""Environment read once at cold start and validated; a missing variable fails by name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


class MissingSetting(RuntimeError):
    """A required environment variable is missing or malformed (a deployment bug)."""


def required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise MissingSetting(
            f"environment variable {name} is not set; the stack sets it on every function"
        )
    return value


@dataclass(frozen=True)
class Settings:
    store_url: str
    kms_key_id: str
    deployment: str

    @classmethod
    def from_environ(cls) -> Settings:
        store = required("BACKPROOF_STORE")
        if not store.startswith("s3://"):
            raise MissingSetting(
                f"environment variable BACKPROOF_STORE must be an s3:// URL, got {store!r}"
            )
        return cls(
            store_url=store,
            kms_key_id=required("BACKPROOF_KMS_KEY_ID"),
            deployment=required("BACKPROOF_DEPLOYMENT"),
        )


@dataclass(frozen=True)
class JanitorSettings:
    slots_table: str
    slots_key: str

    @classmethod
    def from_environ(cls) -> JanitorSettings:
        return cls(required("BACKPROOF_SLOTS_TABLE"), required("BACKPROOF_SLOTS_KEY"))


def databases() -> tuple[str, ...]:
    """The configured databases' names (BACKPROOF_DATABASES, comma-separated)."""
    return tuple(n for n in required("BACKPROOF_DATABASES").split(",") if n)


@dataclass(frozen=True)
class Instance:
    """A configured instance: how long its latest runs span, and its alarm's threshold."""

    window_hours: int
    threshold_s: int


def instances() -> dict[str, Instance]:
    """Configured instances (BACKPROOF_INSTANCES, `name=hours/seconds,…`: the hours between
    their most frequent backups, and the NoVerifiedBackup threshold); empty when none."""
    found: dict[str, Instance] = {}
    for item in os.environ.get("BACKPROOF_INSTANCES", "").split(","):
        if not item.strip():
            continue
        name, _, values = item.partition("=")
        hours, _, seconds = values.partition("/")
        if not (hours.isdigit() and seconds.isdigit()):
            raise MissingSetting(f"BACKPROOF_INSTANCES entry {item!r} is not name=hours/seconds")
        found[name.strip()] = Instance(int(hours), int(seconds))
    return found


@dataclass(frozen=True)
class NotifySettings:
    """Where notifications go: the SNS topic always, a chat webhook when one is configured."""

    topic_arn: str
    webhook_secret_arn: str | None
    notify_success: bool

    @classmethod
    def from_environ(cls) -> NotifySettings:
        success = os.environ.get("BACKPROOF_NOTIFY_SUCCESS", "false").strip().lower()
        if success not in ("true", "false"):
            raise MissingSetting(
                f"environment variable BACKPROOF_NOTIFY_SUCCESS must be true or false, got "
                f"{success!r}"
            )
        return cls(
            topic_arn=required("BACKPROOF_TOPIC_ARN"),
            webhook_secret_arn=os.environ.get("BACKPROOF_CHAT_WEBHOOK_SECRET_ARN", "").strip()
            or None,
            notify_success=success == "true",
        )


@cache
def settings() -> Settings:
    return Settings.from_environ()
