"""The configuration in cdk.json is validated at synth: mistakes name the database and field."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, load
from infra.functions import LAMBDA_PYTHON, layer_directory

from .conftest import ROOT, cdk_context, synthesize


def example() -> dict[str, Any]:
    return copy.deepcopy(cdk_context()["backproof"])


def test_example_configuration_is_valid() -> None:
    config = load(example())
    assert [db.name for db in config.databases] == ["orders"]
    assert set(config.databases[0].schedules) == {"daily", "weekly", "monthly"}
    # TLS verifies the server's certificate unless the configuration says otherwise
    assert config.databases[0].sslmode == "verify-full"
    assert config.databases[0].settings()["sslmode"] == "verify-full"


def _break(path: list[Any], value: Any) -> dict[str, Any]:
    raw = example()
    node: Any = raw
    for step in path[:-1]:
        node = node[step]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ["databases", 0, "secret_arn"],
            KeyError,
            "database 'orders': field 'secret_arn' is missing",
        ),
        (
            ["databases", 0, "secret_arn"],
            "orders-secret",
            "field 'secret_arn' has an invalid value",
        ),
        (["databases", 0, "subnet_ids"], ["subnet-0a1b2c3d4e5f60718"], "field 'subnet_ids' needs"),
        (
            ["databases", 0, "schedules", "daily", "cron"],
            "0 2 * * *",
            "schedules.daily: field 'cron'",
        ),
        (["databases", 0, "schedules", "daily", "time_zone"], "Mars/Olympus", "field 'time_zone'"),
        (
            ["databases", 0, "schedules", "hourly"],
            {"cron": "cron(0 * * * ? *)"},
            "'schedules.hourly'",
        ),
        (["databases", 0, "retention", "weekly"], KeyError, "field 'retention.weekly' is missing"),
        (
            ["databases", 0, "retention", "daily"],
            0,
            "field 'retention.daily' must be a whole number",
        ),
        (["databases", 0, "task_memory_mib"], 1024, "field 'task_memory_mib' 1024 is not valid"),
        (["databases", 0, "verify_instance_class"], "t4g.medium", "field 'verify_instance_class'"),
        (["databases", 0, "checks", "freshness"], {"orders.created_at": "26h"}, "must name schema"),
        (["databases", 0, "retention_days"], 7, "field 'retention_days' is not a known field"),
        (["databases", 0, "name"], "Orders DB", "field 'name' has an invalid value"),
        (["max_concurrent_verifications"], 0, "deployment: field 'max_concurrent_verifications'"),
        (["databases"], [], "field 'databases' must list at least one database"),
        (["databases", 0, "sslmode"], "verify", "field 'sslmode' must be one of"),
        (["databases", 0, "lock_wait_timeout_minutes"], -1, "field 'lock_wait_timeout_minutes'"),
        (
            ["databases", 0, "retention", "daily"],
            {"days": 30},
            "retention.daily: field 'count' is missing",
        ),
        (
            ["databases", 0, "retention", "daily"],
            {"count": 7, "days": 0},
            "retention.daily: field 'days' must be 1..3660",
        ),
        (
            ["databases", 0, "retention", "daily"],
            {"count": 7, "age": 30},
            "retention.daily: field 'age' is not a known field",
        ),
        (["databases", 0, "ping_url"], "http://hc-ping.com/x", "field 'ping_url' has an invalid"),
        (["chat_webhook_secret_arn"], "https://hooks.slack.com/x", "'chat_webhook_secret_arn'"),
        (["notify_success"], "yes", "deployment: field 'notify_success' must be bool"),
    ],
)
def test_a_wrong_or_missing_field_is_named(path: list[Any], value: Any, message: str) -> None:
    # Given the example configuration with one field broken
    raw = _break(path, value)
    # When it is validated, Then the error names the database and the field
    with pytest.raises(ConfigError) as caught:
        load(raw)
    assert message in str(caught.value)


def test_retention_by_count_or_by_count_and_age() -> None:
    # Given a tier kept by count and age, another by count only (existing configs stay valid)
    raw = example()
    raw["databases"][0]["retention"] = {
        "daily": {"count": 7, "days": 10},
        "weekly": 5,
        "monthly": 12,
    }
    # When validated, Then counts and age windows are read apart and reach the settings
    db = load(raw).databases[0]
    assert db.retention == {"daily": 7, "weekly": 5, "monthly": 12}
    assert db.retention_days == {"daily": 10}
    assert db.settings()["retention_days"] == {"daily": 10}
    assert load(example()).databases[0].settings()["retention_days"] == {}


def test_notification_settings() -> None:
    # Given a chat webhook secret, success notifications and a dead-man's-switch ping URL
    raw = example()
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:backproof/chat-AbCdEf"
    raw.update(chat_webhook_secret_arn=secret, notify_success=True)
    raw["databases"][0]["ping_url"] = "https://hc-ping.com/0f1e2d3c-4b5a"
    # Then they are read; the ping URL travels with the database's settings
    config = load(raw)
    assert config.chat_webhook_secret_arn == secret and config.notify_success is True
    assert config.databases[0].settings()["ping_url"] == "https://hc-ping.com/0f1e2d3c-4b5a"
    # And all are optional: nothing is sent anywhere new unless configured
    default = load(example())
    assert default.chat_webhook_secret_arn is None and default.notify_success is False
    assert default.databases[0].settings()["ping_url"] is None


def test_restoring_over_a_backup_source_needs_the_flag() -> None:
    # Given a restore target that is the backed-up database itself
    raw = example()
    source = raw["databases"][0]
    source["restore_targets"] = [{"name": "orders", "secret_arn": source["secret_arn"]}]
    # When the configuration is validated, Then it is refused naming the flag
    with pytest.raises(ConfigError, match="allow_restore_over_source' must be true"):
        load(raw)
    # And with the flag it is allowed (the console still demands the typed confirmation)
    source["restore_targets"][0]["allow_restore_over_source"] = True
    assert load(raw).databases[0].restore_targets[0].allow_restore_over_source


def test_duplicate_database_names_are_refused() -> None:
    raw = example()
    raw["databases"].append(copy.deepcopy(raw["databases"][0]))
    with pytest.raises(
        ConfigError, match="database 'orders': field 'name' is used by more than one"
    ):
        load(raw)


def test_endpoints_need_route_tables() -> None:
    raw = _break(["databases", 0, "route_table_ids"], KeyError)
    raw["vpc_endpoints"] = True
    with pytest.raises(ConfigError, match="'route_table_ids' is needed when vpc_endpoints is on"):
        load(raw)


def test_configuration_may_live_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "backproof.json"
    path.write_text(json.dumps(example()))
    assert load(str(path)).deployment == "prod"


def test_synth_fails_on_a_bad_configuration(placeholder_layer: Path, tmp_path: Path) -> None:
    # Given cdk.json context whose database lacks its connection secret
    context = cdk_context()
    del context["backproof"]["databases"][0]["secret_arn"]
    # When the app is synthesized, Then synth stops with the field's name
    with pytest.raises(ConfigError, match="database 'orders': field 'secret_arn' is missing"):
        synthesize(context, placeholder_layer, tmp_path)


def test_a_configured_layer_directory_must_hold_a_built_layer(tmp_path: Path) -> None:

    with pytest.raises(FileNotFoundError, match=r"has no python/ folder; run layers/build\.py"):
        layer_directory(str(tmp_path))
    (tmp_path / "python").mkdir()
    assert layer_directory(str(tmp_path)) == tmp_path


def test_layer_targets_the_functions_runtime() -> None:

    spec = importlib.util.spec_from_file_location("layer_build", ROOT / "layers" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PYTHON_VERSION == LAMBDA_PYTHON
    assert all("aarch64" in platform for platform in module.PLATFORMS)


# -- RDS's own ways back -------------------------------------------------------------------------
def test_ways_back_are_configured_per_database() -> None:
    (db,) = load(example()).databases
    assert db.rds_instance_id == "orders-prod"
    assert db.verify_snapshots is not None and db.verify_point_in_time is None
    assert db.settings()["verify_snapshots"]["cron"] == "cron(30 5 ? * MON *)"
    assert db.settings()["rds_instance_id"] == "orders-prod"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["databases", 0, "rds_instance_id"], KeyError, "'verify_snapshots' needs rds_instance_id"),
        (["databases", 0, "rds_instance_id"], "orders--prod", "'rds_instance_id' has an invalid"),
        (["databases", 0, "rds_instance_id"], "1orders", "'rds_instance_id' has an invalid"),
        (["databases", 0, "verify_point_in_time"], {"cron": "daily"}, "'cron' has an invalid"),
        (
            ["databases", 0, "verify_snapshots"],
            {"cron": "cron(0 5 * * ? *)", "zone": "UTC"},
            "'zone' is not a known field",
        ),
    ],
)
def test_ways_back_mistakes_are_named(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(_break(path, value))


def test_replica_is_optional_and_validated() -> None:
    assert load(example()).replica is None
    key = "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    good = {"bucket_arn": "arn:aws:s3:::dr-backups", "region": "eu-central-1", "kms_key_arn": key}
    replica = load({**example(), "replica": good}).replica
    assert replica is not None and replica.region == "eu-central-1"
    for broken, message in [
        ({"bucket_arn": "dr-backups"}, "field 'bucket_arn' has an invalid value"),
        ({"region": "Frankfurt"}, "field 'region' has an invalid value"),
        ({"kms_key_arn": "alias/dr"}, "field 'kms_key_arn' has an invalid value"),
        ({"kms_key_arn": key.replace("eu-central-1", "eu-west-1")}, "is a key in eu-west-1"),
        ({"storage_class": "GLACIER"}, "field 'storage_class' is not a known field"),
    ]:
        with pytest.raises(ConfigError, match=r"deployment replica: .*" + message):
            load({**example(), "replica": {**good, **broken}})
    with pytest.raises(ConfigError, match="field 'region' is missing"):
        load({**example(), "replica": {"bucket_arn": good["bucket_arn"]}})


def test_an_entry_may_be_every_matching_database_of_an_instance() -> None:
    # Given an entry declared as an instance: every database but the scratch ones
    raw = example()
    raw["databases"][0].update(databases="*", exclude_databases=["scratch_*", "postgres"])
    (db,) = load(raw).databases
    # Then the workflows read the pattern and the exclusions from its settings
    assert db.settings()["databases"] == "*"
    assert db.settings()["exclude_databases"] == ["scratch_*", "postgres"]
    # And an ordinary entry has none
    assert load(example()).databases[0].settings()["databases"] is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("exclude_databases", ["scratch_*"], "'exclude_databases' applies to an instance"),
        ("databases", "", "'databases' has an invalid"),
        ("databases", "app\n*", "'databases' has an invalid"),
        ("databases", ["*"], "'databases'"),
    ],
)
def test_instance_mistakes_are_named(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(_break(["databases", 0, field], value))
