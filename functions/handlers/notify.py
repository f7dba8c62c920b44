"""Tell people: the state machines' one way to notify (failures always, verified backups when
`notify_success` is on), and the dead-man's-switch ping after each verified backup.

The event: {"event": "<what happened>", "execution": "$$.Execution.Id", "detail": <the error
or result>, "state": <the execution's state>}. The message (messages.py) goes to the SNS topic,
and to a Slack-compatible chat webhook (`{"text": ...}`) when one is configured. A failed chat
delivery or ping is logged and reported, never raised: only SNS failing fails this function,
and the state machine carries on whatever happens here.
"""

from __future__ import annotations

import json
import urllib.request
from functools import cache
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from .env import NotifySettings, settings
from .events import field
from .messages import build
from .observability import logger, tracer

SETTINGS = settings()
NOTIFY = NotifySettings.from_environ()
HTTP_TIMEOUT_SECONDS = 5
USER_AGENT = "backproof-notify"


class DeliveryError(RuntimeError):
    """An outbound HTTP call did not succeed."""


@cache
def clients() -> dict[str, Any]:
    return {name: boto3.client(name) for name in ("sns", "secretsmanager")}


def http(url: str, body: dict[str, Any] | None = None) -> int:
    """GET (no body) or POST JSON to an http(s) URL, with a timeout; the status code."""
    scheme = urlparse(url).scheme
    if scheme not in ("http", "https"):  # the URL itself may hold a token: never echoed
        raise DeliveryError(f"refusing a URL whose scheme is {scheme!r}, not http(s)")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"User-Agent": USER_AGENT}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, data=data, headers=headers, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as answer:  # noqa: S310
            return int(answer.status)
    except (URLError, OSError, ValueError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


def webhook_url(secret_arn: str) -> str:
    """The secret holds the URL itself, or JSON with `url` (or `webhook_url`)."""
    value = clients()["secretsmanager"].get_secret_value(SecretId=secret_arn)["SecretString"]
    try:
        parsed = json.loads(value)
    except ValueError:
        return str(value).strip()
    if isinstance(parsed, dict):
        return str(parsed.get("url") or parsed.get("webhook_url") or "").strip()
    return str(parsed).strip()


def _chat(text: str) -> str:
    if not NOTIFY.webhook_secret_arn:
        return "not configured"
    try:
        http(webhook_url(NOTIFY.webhook_secret_arn), {"text": text})
    except (DeliveryError, ClientError, BotoCoreError) as exc:
        logger.warning("chat webhook not delivered", extra={"error": str(exc)})
        return f"failed: {exc}"
    return "delivered"


def _ping(url: str | None) -> str:
    if not url:
        return "not configured"
    try:
        http(url)
    except DeliveryError as exc:
        logger.warning("ping not delivered", extra={"error": str(exc)})
        return f"failed: {exc}"
    return "delivered"


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = field(event, "event")
    state = field(event, "state", dict, default={})
    message = build(
        name, field(event, "execution"), event.get("detail"), state, SETTINGS.deployment
    )
    result: dict[str, Any] = {"event": name, "subject": message.subject}
    if name == "verified":
        settings_ = state.get("config", {}).get("settings", {}) if isinstance(state, dict) else {}
        result["ping"] = _ping(settings_.get("ping_url") if isinstance(settings_, dict) else None)
        if not NOTIFY.notify_success:
            result["published"] = False
            return result
    answer = clients()["sns"].publish(
        TopicArn=NOTIFY.topic_arn, Subject=message.subject, Message=message.text
    )
    result["published"] = True
    result["message_id"] = answer.get("MessageId")
    result["chat"] = _chat(message.text)
    logger.info(
        "notified",
        extra={"event": name, "database": message.database, "backup_id": message.backup_id},
    )
    return result
