"""The freshness function (what pages when backups stop being verified) and the notify function
(what people read), in-process against moto, with a local HTTP server standing in for the chat
webhook and the dead-man's-switch ping."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import boto3
import pytest

from backproof.contract import NEVER_VERIFIED_SECONDS
from backproof.store import open_store
from infra.functions import SPECS
from infra.monitoring import FRESHNESS_SERVICE
from tests.conftest import SourceDatabase, take_backup
from tests.support.backdate import backdate

from .conftest import EVENTS, TOPIC_ARN, LambdaContext, World, event, load_handlers
from .test_handlers import emf

CTX = LambdaContext()
BACKUP_ID = "20261121T050312.123Z-1a2b3c"
EXECUTION = (
    "arn:aws:states:eu-west-1:123456789012:execution:VerifyStateMachine1A2B3C4D-AbCdEfGh:"
    "orders-7f6e5d4c"
)
CONSOLE = (
    "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1"
    f"#/v2/executions/details/{EXECUTION}"
)


# -- a local HTTP endpoint -----------------------------------------------------------------------
@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Endpoint:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """An HTTP server on 127.0.0.1 that records every request and answers `status`."""
    state = Endpoint(url="")

    class Recorder(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.received.append(
                Received(self.command, self.path, dict(self.headers), self.rfile.read(length))
            )
            self.send_response(state.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = _record  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


# -- helpers -----------------------------------------------------------------------------------
def subscribe_queue() -> str:
    """An SQS queue subscribed to the topic (raw delivery): what reached people."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="notified")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns").subscribe(
        TopicArn=TOPIC_ARN,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "false"},
    )
    return url


def notifications(queue_url: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def notify_handlers(
    world: World, monkeypatch: pytest.MonkeyPatch, **env: str
) -> dict[str, ModuleType]:
    """Cold-start the handlers with the notify function's extra environment."""
    boto3.client("sns").create_topic(Name="backproof")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_handlers(world, monkeypatch)


def webhook_secret(url: str) -> str:
    return boto3.client("secretsmanager").create_secret(
        Name="backproof/chat", SecretString=json.dumps({"url": url})
    )["ARN"]


# -- samples -------------------------------------------------------------------------------------
def test_every_function_has_a_sample_event() -> None:
    # Given the functions the stack deploys
    for name, spec in SPECS.items():
        module = spec.handler.split(".")[1]
        # Then events/handlers/ holds at least one sample for each
        folder = EVENTS / "handlers"
        samples = [*folder.glob(f"{module}.json"), *folder.glob(f"{module}-*.json")]
        assert samples, f"no sample event for {name} in events/handlers/"


# -- freshness -----------------------------------------------------------------------------------
def test_freshness_publishes_seconds_since_the_newest_verified_backup_per_database(
    world: World,
    orders_db: SourceDatabase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given orders with a verified backup, and billing never verified
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", FRESHNESS_SERVICE)
    handlers = load_handlers(world, monkeypatch)
    monkeypatch.setattr(handlers["freshness"], "DATABASES", ("orders", "billing"))
    store, result = take_backup(orders_db, world, name="orders", tier="daily", fingerprints=False)
    stored = store.find(result.manifest.backup_id)
    store.write_verification(stored, {"verdict": "verified", "timings": {"restore_seconds": 3}})
    capsys.readouterr()
    # When the scheduled invocation runs with its sample event
    answer = handlers["freshness"].handler(event("handlers/freshness"), CTX)
    # Then each database gets one EMF document with its own database dimension
    docs = [d for d in emf(capsys.readouterr().out) if "SecondsSinceVerifiedBackup" in d]
    by_db = {d["database"]: d for d in docs}
    assert sorted(by_db) == ["billing", "orders"]
    for doc in docs:
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "Backproof"
        # exactly the dimensions the alarm in infra/monitoring.py reads
        assert [sorted(d) for d in directive["Dimensions"]] == [["database", "service"]]
        assert directive["Metrics"] == [{"Name": "SecondsSinceVerifiedBackup", "Unit": "Seconds"}]
        assert doc["service"] == FRESHNESS_SERVICE
    # orders' backup was taken seconds ago; billing reports a value far above any threshold
    assert 0 <= by_db["orders"]["SecondsSinceVerifiedBackup"] < 600
    assert by_db["billing"]["SecondsSinceVerifiedBackup"] == NEVER_VERIFIED_SECONDS
    assert answer["seconds_since_verified"]["billing"] == NEVER_VERIFIED_SECONDS


def test_an_instance_is_as_fresh_as_its_stalest_current_database_and_forgets_dropped_ones(
    world: World,
    orders_db: SourceDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an instance "prod" backed up daily: prod.orders verified today, prod.billing
    # backed up today but never verified, and prod.legacy last backed up (and verified) ten
    # days ago, before it was dropped from the instance
    handlers = load_handlers(world, monkeypatch)
    monkeypatch.setattr(handlers["freshness"], "DATABASES", ("prod",))
    freshness = handlers["freshness"]
    monkeypatch.setattr(freshness, "INSTANCES", {"prod": freshness.Instance(24, 38 * 3600)})
    alarms = freshness.MemberAlarms(
        prefix="backproof-test-NoVerifiedBackup-",
        topic_arn=TOPIC_ARN,
        service=FRESHNESS_SERVICE,
        period_s=900,
        periods=2,
    )
    monkeypatch.setattr(freshness, "MEMBER_ALARMS", alarms)
    cloudwatch = boto3.client("cloudwatch")
    # and an alarm left from prod.gone, a database no longer in the instance
    cloudwatch.put_metric_alarm(
        AlarmName=alarms.name("prod.gone"),
        MetricName="SecondsSinceVerifiedBackup",
        Namespace="Backproof",
        Statistic="Maximum",
        Period=900,
        EvaluationPeriods=2,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    store = open_store(world.store_url, kms_key_id=world.key_arn)
    _, orders = take_backup(orders_db, world, name="prod.orders", fingerprints=False)
    store.write_verification(store.find(orders.manifest.backup_id), {"verdict": "verified"})
    take_backup(orders_db, world, name="prod.billing", fingerprints=False)
    _, legacy = take_backup(orders_db, world, name="prod.legacy", fingerprints=False)
    store.write_verification(store.find(legacy.manifest.backup_id), {"verdict": "verified"})
    backdate(store, boto3.client("s3"), legacy.manifest.backup_id, timedelta(days=10))
    # When freshness runs
    ages = handlers["freshness"].handler({}, CTX)["seconds_since_verified"]
    # Then each current database has its own age, the dropped one is left out, and the
    # instance (what its alarm watches) is as stale as billing: never verified
    assert set(ages) == {"prod", "prod.orders", "prod.billing"}
    assert ages["prod.orders"] < 600
    assert ages["prod"] == ages["prod.billing"] == NEVER_VERIFIED_SECONDS
    # and each current database has its own alarm on its own metric, paging the topic; the
    # dropped database's alarm is gone
    found = {
        a["AlarmName"]: a
        for a in cloudwatch.describe_alarms(AlarmNamePrefix=alarms.prefix)["MetricAlarms"]
    }
    assert set(found) == {alarms.name("prod.orders"), alarms.name("prod.billing")}
    billing = found[alarms.name("prod.billing")]
    assert {d["Name"]: d["Value"] for d in billing["Dimensions"]} == {
        "service": FRESHNESS_SERVICE,
        "database": "prod.billing",
    }
    assert billing["AlarmActions"] == [TOPIC_ARN]
    assert billing["Threshold"] == 38 * 3600 and billing["TreatMissingData"] == "breaching"
    # When billing is verified too, Then the instance is fresh again
    billing = store.list_backups("prod.billing")[-1]
    store.write_verification(billing, {"verdict": "verified"})
    assert handlers["freshness"].handler({}, CTX)["seconds_since_verified"]["prod"] < 600


def test_freshness_counts_neither_could_not_verify_nor_safety_backups(
    world: World,
    orders_db: SourceDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handlers = load_handlers(world, monkeypatch)
    store = open_store(world.store_url, kms_key_id=world.key_arn)
    # Given a backup whose only run could not verify (the instance never came up)
    _, inconclusive = take_backup(orders_db, world, name="orders", tier="daily", fingerprints=False)
    store.write_verification(
        store.find(inconclusive.manifest.backup_id),
        {"verdict": "could-not-verify", "passed": False, "error": "instance never available"},
    )
    # and a verified safety backup filed beside its backups (where releases before the safety
    # namespace put an operator restore's undo)
    _, safety = take_backup(orders_db, world, name="orders", tier="safety", fingerprints=False)
    store.write_verification(store.find(safety.manifest.backup_id), {"verdict": "verified"})
    # When freshness runs, Then orders counts as never verified: the alarm fires
    answer = handlers["freshness"].handler({}, CTX)
    assert answer["seconds_since_verified"] == {"orders": NEVER_VERIFIED_SECONDS}


def test_freshness_leaves_the_metric_missing_when_the_store_is_unreadable(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a store the function cannot read (the bucket is gone)
    handlers = load_handlers(world, monkeypatch)
    s3 = boto3.client("s3")
    s3.delete_bucket_encryption(Bucket=world.bucket)
    s3.delete_bucket(Bucket=world.bucket)
    capsys.readouterr()
    # When it runs, Then it fails naming the database, and publishes nothing (missing data
    # breaches: the alarm fires rather than reporting a healthy age)
    with pytest.raises(Exception, match="could not read the backups of orders") as caught:
        handlers["freshness"].handler({}, CTX)
    assert type(caught.value).__name__ == "FreshnessUnknown"
    assert not [d for d in emf(capsys.readouterr().out) if "SecondsSinceVerifiedBackup" in d]


# -- notify ------------------------------------------------------------------------------------
def test_a_failed_verification_notification_names_everything_needed_to_act(
    world: World, monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint
) -> None:
    # Given a chat webhook configured through its secret, and the topic's subscribers
    secret = webhook_secret(f"{endpoint.url}/services/T000/B000/XXXX")
    handlers = notify_handlers(world, monkeypatch, BACKPROOF_CHAT_WEBHOOK_SECRET_ARN=secret)
    queue = subscribe_queue()
    # When the verify workflow reports a verification whose checks found a difference
    result = handlers["notify"].handler(event("handlers/notify-verification-failed"), CTX)
    # Then one message reached the topic
    assert result["published"] is True and result["chat"] == "delivered"
    (sent,) = notifications(queue)
    text, subject = sent["Message"], sent["Subject"]
    # naming the database, what happened, the backup, the error and the failed check
    assert subject == f"backproof test: verification of backup {BACKUP_ID} of orders failed"
    assert "Database:      orders" in text
    assert f"Backup:        {BACKUP_ID}" in text
    assert "Error:         VerificationFailed" in text
    assert "row_count public.orders: expected 100000, found 99999" in text
    # with a link straight to the execution in the console, and what to do next
    assert f"Execution:     {CONSOLE}" in text
    assert "What to do:" in text and "take a new backup now" in text
    # And the chat webhook got the same text as Slack-compatible JSON
    (post,) = endpoint.received
    assert post.method == "POST" and post.path == "/services/T000/B000/XXXX"
    assert post.headers["Content-Type"] == "application/json"
    assert json.loads(post.body) == {"text": text}


def test_an_integrity_failure_before_any_backup_was_resolved_still_notifies(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a failure caught before the integrity step returned (only the console input known)
    handlers = notify_handlers(world, monkeypatch)
    queue = subscribe_queue()
    message = f"backup {BACKUP_ID} failed integrity checks: integrity.sha256 (expected a, found b)"
    error = {
        "Error": "IntegrityFailure",
        "Cause": json.dumps({"errorMessage": message, "errorType": "IntegrityFailure"}),
    }
    handlers["notify"].handler(
        {
            "event": "verification-failed",
            "execution": EXECUTION,
            "detail": error,
            "state": {"database": "orders", "backup_id": "latest", "error": error},
        },
        CTX,
    )
    (sent,) = notifications(queue)
    # Then the message names the backup the error is about (not just "latest"), the cause
    # and the link
    assert f"Backup:        {BACKUP_ID}" in sent["Message"]
    assert f"Cause:         {message}" in sent["Message"]
    assert CONSOLE in sent["Message"]


def test_a_verified_backup_pings_the_dead_mans_switch_and_stays_quiet_by_default(
    world: World, monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint
) -> None:
    # Given success notifications off (the default) and a ping URL in the database's settings
    handlers = notify_handlers(world, monkeypatch)
    queue = subscribe_queue()
    sample = event("handlers/notify-verified")
    sample["state"]["config"]["settings"]["ping_url"] = f"{endpoint.url}/ping/0f1e2d3c"
    # When a verification succeeds
    result = handlers["notify"].handler(sample, CTX)
    # Then the ping URL was called, and nobody was messaged
    assert result["ping"] == "delivered" and result["published"] is False
    (ping,) = endpoint.received
    assert ping.method == "GET" and ping.path == "/ping/0f1e2d3c"
    assert notifications(queue) == []


def test_success_notifications_are_opt_in(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given notify_success on, and no ping configured
    handlers = notify_handlers(world, monkeypatch, BACKPROOF_NOTIFY_SUCCESS="true")
    queue = subscribe_queue()
    sample = event("handlers/notify-verified")
    sample["state"]["config"]["settings"]["ping_url"] = None
    # When a verification succeeds, Then people are told, with the measured restore time
    result = handlers["notify"].handler(sample, CTX)
    assert result["ping"] == "not configured" and result["published"] is True
    (sent,) = notifications(queue)
    assert sent["Subject"] == f"backproof test: backup {BACKUP_ID} of orders verified"
    assert "Restore:       312.4 s" in sent["Message"]


def test_a_failing_ping_or_webhook_never_fails_the_notification(
    world: World, monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint
) -> None:
    # Given a webhook that answers 500 and a ping URL where nothing listens
    endpoint.status = 500
    secret = webhook_secret(f"{endpoint.url}/hook")
    handlers = notify_handlers(
        world,
        monkeypatch,
        BACKPROOF_CHAT_WEBHOOK_SECRET_ARN=secret,
        BACKPROOF_NOTIFY_SUCCESS="true",
    )
    queue = subscribe_queue()
    sample = event("handlers/notify-verified")
    sample["state"]["config"]["settings"]["ping_url"] = "http://127.0.0.1:9/ping"
    # When the notification runs, Then both failures are reported, neither raised
    result = handlers["notify"].handler(sample, CTX)
    assert result["ping"].startswith("failed: ")
    assert result["chat"] == "failed: HTTPError: HTTP Error 500: Internal Server Error"
    # and the topic still got the message
    assert len(notifications(queue)) == 1
