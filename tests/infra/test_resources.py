"""What each construct promises, asserted on the synthesized template."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from infra.functions import SPECS

from .conftest import CHAT_SECRET_ARN, REPLICA, Synth
from .policies import task_role


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    return policy_document.get("Statement", [])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- storage -----------------------------------------------------------------------------------
def test_the_key_rotates(synth: Synth) -> None:
    synth.assertions.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_backup_bucket_is_private_versioned_and_kms_encrypted(synth: Synth) -> None:
    synth.assertions.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": True,
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": Match.any_value(),
                        },
                    }
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": {
                "DestinationBucketName": Match.any_value(),
                "LogFilePrefix": "backups/",
            },
        },
    )


def test_older_tiers_move_to_colder_storage(synth: Synth) -> None:
    bucket = next(
        b
        for b in resources(synth.template, "AWS::S3::Bucket").values()
        if "LoggingConfiguration" in b["Properties"]
    )
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["colder-monthly"]["TagFilters"] == [{"Key": "backproof:tier", "Value": "monthly"}]
    assert rules["colder-monthly"]["Transitions"][0]["StorageClass"] == "GLACIER_IR"
    assert (
        rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        == 1
    )
    assert rules["remove-expired-delete-markers"]["ExpiredObjectDeleteMarker"] is True


def test_bucket_policy_denies_plain_http_and_unencrypted_puts(synth: Synth) -> None:
    policies = resources(synth.template, "AWS::S3::BucketPolicy")
    backups = [p for p in policies.values() if "Backups" in p["Properties"]["Bucket"]["Ref"]]
    assert len(backups) == 1
    statements = _statements(backups[0]["Properties"]["PolicyDocument"])
    denies = [s for s in statements if s["Effect"] == "Deny"]
    tls = [
        s
        for s in denies
        if s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert tls and all(s["Principal"] == {"AWS": "*"} for s in tls)
    assert "s3:*" in _as_list(tls[0]["Action"])
    unencrypted = [s for s in denies if "s3:PutObject" in _as_list(s["Action"])]
    assert unencrypted[0]["Condition"] == {
        "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}
    }


def test_object_lock_is_optional(synth: Synth, synth_two: Synth) -> None:
    for bucket in resources(synth.template, "AWS::S3::Bucket").values():
        assert not bucket["Properties"].get("ObjectLockEnabled")
    synth_two.assertions.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "ObjectLockEnabled": True,
            "ObjectLockConfiguration": {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}},
            },
        },
    )


# -- least privilege ---------------------------------------------------------------------------
def _function_roles(template: dict[str, Any]) -> set[str]:
    return {
        fn["Properties"]["Role"]["Fn::GetAtt"][0]
        for fn in resources(template, "AWS::Lambda::Function").values()
    }


def test_no_function_role_allows_a_wildcard_action(synth: Synth) -> None:
    roles = _function_roles(synth.template)
    assert len(roles) == len(resources(synth.template, "AWS::Lambda::Function"))  # one role each
    checked = 0
    for policy in resources(synth.template, "AWS::IAM::Policy").values():
        attached = {r["Ref"] for r in policy["Properties"]["Roles"]}
        if not attached & roles:
            continue
        for statement in _statements(policy["Properties"]["PolicyDocument"]):
            for action in _as_list(statement["Action"]):
                checked += 1
                assert "*" not in action, f"{attached}: wildcard action {action}"
    for role_id in roles:
        role = synth.template["Resources"][role_id]["Properties"]
        assert not role.get("ManagedPolicyArns"), f"{role_id} uses a managed policy"
    assert checked > 20


def test_instance_deletion_is_limited_to_tagged_backproof_instances(synth: Synth) -> None:
    synth.assertions.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "rds:DeleteDBInstance",
                                "Condition": {
                                    "StringEquals": {"rds:db-tag/backproof:ephemeral": "true"}
                                },
                            }
                        )
                    ]
                )
            },
        },
    )


def test_tasks_read_only_the_configured_secrets_of_their_action(synth: Synth) -> None:
    source = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:backproof/orders-AbCdEf"
    restore = (
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:backproof/orders-staging-restore-"
        "GhIjKl"
    )
    named = {}
    for action in ("backup", "verify", "restore", "native"):
        # Given each task's role, the secrets it reads by name (not RDS's tagged ones)
        role = task_role(synth.template, action)
        named[action] = {
            r for r in role.granted("secretsmanager:GetSecretValue") if "rds!" not in r
        }
    # Then the dump reads the source's backup secret, a restore only its target's own secret,
    # the native check the source's (for the database's name), a verification none
    assert named == {
        "backup": {source},
        "verify": set(),
        "restore": {restore},
        "native": {source},
    }


def test_kms_grants_only_for_rds(synth: Synth) -> None:
    grants = [
        statement
        for policy in resources(synth.template, "AWS::IAM::Policy").values()
        for statement in _statements(policy["Properties"]["PolicyDocument"])
        if "kms:CreateGrant"
        in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    ]
    assert grants
    for statement in grants:
        condition = dict(statement["Condition"])
        assert condition.pop("Bool") == {"kms:GrantIsForAWSResource": "true"}
        # A grant on any key (a restore keeps its source's key) is for RDS's use only
        resource = statement["Resource"]
        if not (isinstance(resource, dict) and "Fn::GetAtt" in resource):  # not the stack's key
            via = condition.pop("StringEquals")["kms:ViaService"]
            assert "rds." in json.dumps(via)
        assert condition == {}


# -- compute -----------------------------------------------------------------------------------
def test_dump_and_restore_run_as_arm64_fargate_tasks_with_room_to_restore(synth: Synth) -> None:
    synth.assertions.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "RequiresCompatibilities": ["FARGATE"],
            "RuntimePlatform": {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"},
            "EphemeralStorage": {"SizeInGiB": 200},
            "ContainerDefinitions": [
                Match.object_like(
                    {
                        "Name": "task",
                        "Environment": Match.array_with(
                            [Match.object_like({"Name": "BACKPROOF_STORE"})]
                        ),
                        "LogConfiguration": Match.object_like({"LogDriver": "awslogs"}),
                    }
                )
            ],
        },
    )
    synth.assertions.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
    )


def test_functions_are_arm64_traced_with_the_layer(synth: Synth) -> None:
    functions = resources(synth.template, "AWS::Lambda::Function")
    assert len(functions) == len(SPECS)
    for fn in functions.values():
        props = fn["Properties"]
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert len(props["Layers"]) == 1
        assert "VpcConfig" not in props  # none reaches a database: dumps and restores are tasks


# -- networking --------------------------------------------------------------------------------
def test_temporary_instances_admit_only_the_restore_task(synth: Synth) -> None:
    ingress = resources(synth.template, "AWS::EC2::SecurityGroupIngress")
    assert len(ingress) == 1
    rule = next(iter(ingress.values()))["Properties"]
    assert rule["FromPort"] == rule["ToPort"] == 5432
    assert "TaskSecurityGroup" in rule["SourceSecurityGroupId"]["Fn::GetAtt"][0]
    assert "InstanceSecurityGroup" in rule["GroupId"]["Fn::GetAtt"][0]
    groups = resources(synth.template, "AWS::EC2::SecurityGroup")
    instance_group = groups[rule["GroupId"]["Fn::GetAtt"][0]]["Properties"]
    assert "SecurityGroupIngress" not in instance_group


def test_vpc_endpoints_only_when_asked(synth: Synth, synth_two: Synth) -> None:
    assert not resources(synth.template, "AWS::EC2::VPCEndpoint")
    endpoints = resources(synth_two.template, "AWS::EC2::VPCEndpoint")
    # two VPCs, five interface endpoints and the S3 gateway each
    assert len(endpoints) == 12
    assert sum(e["Properties"]["VpcEndpointType"] == "Gateway" for e in endpoints.values()) == 2


# -- schedules and monitoring ------------------------------------------------------------------
def _schedule_inputs(template: dict[str, Any]) -> list[dict[str, Any]]:

    return [
        json.loads(s["Properties"]["Target"]["Input"])
        for s in resources(template, "AWS::Scheduler::Schedule").values()
    ]


def test_one_schedule_per_database_and_tier_plus_the_janitor(synth_two: Synth) -> None:
    inputs = _schedule_inputs(synth_two.template)
    backups = sorted((i["database"], i["tier"]) for i in inputs if "tier" in i)
    assert backups == [
        ("billing", "daily"),
        ("billing", "yearly"),
        ("orders", "daily"),
        ("orders", "monthly"),
        ("orders", "weekly"),
    ]
    assert inputs.count({}) == 2  # the janitor and the freshness function


def test_freshness_runs_every_quarter_hour_from_its_own_schedule(synth: Synth) -> None:
    # The freshness function is invoked directly by EventBridge Scheduler, not by a workflow
    (schedule,) = [
        s
        for s in resources(synth.template, "AWS::Scheduler::Schedule").values()
        if "Freshness" in json.dumps(s["Properties"]["Target"]["Arn"])
    ]
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "cron(0/15 * * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "Etc/UTC"
    # and it knows which databases to report on
    (fn,) = [
        f
        for f in resources(synth.template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "handlers.freshness.handler"
    ]
    assert fn["Properties"]["Environment"]["Variables"]["BACKPROOF_DATABASES"] == "orders"


def test_schedules_keep_their_time_zone(synth: Synth) -> None:
    synth.assertions.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {"ScheduleExpression": "cron(15 2 * * ? *)", "ScheduleExpressionTimezone": "Europe/Berlin"},
    )


def test_settings_parameter_per_database(synth_two: Synth) -> None:
    names = sorted(
        p["Properties"]["Name"]
        for p in resources(synth_two.template, "AWS::SSM::Parameter").values()
    )
    assert names == ["/backproof/prod/databases/billing", "/backproof/prod/databases/orders"]


def test_topic_is_encrypted_and_every_alarm_notifies_it(synth: Synth) -> None:
    topics = resources(synth.template, "AWS::SNS::Topic")
    assert len(topics) == 1
    ((topic_id, topic),) = topics.items()
    assert "KmsMasterKeyId" in topic["Properties"]
    synth.assertions.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "dba-oncall@example.com"}
    )
    alarms = resources(synth.template, "AWS::CloudWatch::Alarm")
    names = sorted(alarms)
    for prefix in (
        "MonitoringBackupExecutionFailed",
        "MonitoringVerifyExecutionFailed",
        "MonitoringRestoreExecutionFailed",
        "MonitoringJanitorExecutionFailed",
        "MonitoringInstanceLeaked",
        "MonitoringNoVerifiedBackuporders",
        "MonitoringRtoOverTargetorders",
        "MonitoringRpoOverTargetorders",
        "MonitoringSizeAnomalyorders",
    ):
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]


def test_no_verified_backup_alarm_reads_the_freshness_metric_and_missing_data_breaches(
    synth_two: Synth,
) -> None:
    # Given two databases: orders backed up daily, billing daily and yearly
    alarms = {
        k: v["Properties"]
        for k, v in resources(synth_two.template, "AWS::CloudWatch::Alarm").items()
        if k.startswith("MonitoringNoVerifiedBackup")
    }
    assert len(alarms) == 2
    for database in ("orders", "billing"):
        (props,) = [
            p for p in alarms.values() if {"Name": "database", "Value": database} in p["Dimensions"]
        ]
        # Then each reads the freshness function's metric for its own database
        assert props["Namespace"] == "Backproof"
        assert props["MetricName"] == "SecondsSinceVerifiedBackup"
        assert {"Name": "service", "Value": "backproof-freshness"} in props["Dimensions"]
        assert props["Statistic"] == "Maximum"
        # with the allowed age (the most frequent tier, 24 h, plus 14 h slack) in seconds
        assert props["Threshold"] == 38 * 3600
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        # over the function's 15-minute cadence, two periods in a row
        assert props["Period"] == 900
        assert props["EvaluationPeriods"] == 2 and props["DatapointsToAlarm"] == 2
        # and no data at all (no schedule, broken function, region outage) pages too
        assert props["TreatMissingData"] == "breaching"


def test_the_janitor_no_longer_publishes_the_age(synth: Synth) -> None:
    metrics = {
        a["Properties"].get("MetricName")
        for a in resources(synth.template, "AWS::CloudWatch::Alarm").values()
    }
    assert "VerifiedBackupAgeHours" not in metrics
    (janitor,) = [
        f
        for f in resources(synth.template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "handlers.janitor.handler"
    ]
    assert "BACKPROOF_DATABASES" not in janitor["Properties"]["Environment"]["Variables"]
    body = json.dumps(resources(synth.template, "AWS::CloudWatch::Dashboard"))
    assert "SecondsSinceVerifiedBackup" in body and "VerifiedBackupAgeHours" not in body


def test_notify_function_publishes_to_the_topic_only(synth: Synth) -> None:
    (fn_id, fn) = next(
        (k, f)
        for k, f in resources(synth.template, "AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == "handlers.notify.handler"
    )
    env = fn["Properties"]["Environment"]["Variables"]
    topic_id = next(iter(resources(synth.template, "AWS::SNS::Topic")))
    assert env["BACKPROOF_TOPIC_ARN"] == {"Ref": topic_id}
    assert env["BACKPROOF_NOTIFY_SUCCESS"] == "false"
    assert "BACKPROOF_CHAT_WEBHOOK_SECRET_ARN" not in env  # none configured in cdk.json
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        st
        for policy in resources(synth.template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for st in _statements(policy["Properties"]["PolicyDocument"])
    ]
    publish = [st for st in statements if st["Action"] == "sns:Publish"]
    assert publish == [{"Action": "sns:Publish", "Effect": "Allow", "Resource": {"Ref": topic_id}}]
    # The state machines no longer publish themselves: they invoke the notify function
    for policy in resources(synth.template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            continue
        for st in _statements(policy["Properties"]["PolicyDocument"]):
            assert "sns:Publish" not in _as_list(st["Action"]), fn_id


def test_a_dashboard_per_deployment(synth: Synth) -> None:
    synth.assertions.has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": "backproof-prod"}
    )


def test_a_chat_webhook_secret_is_readable_by_the_notify_function_only(synth_two: Synth) -> None:
    # Given a deployment with a chat webhook secret and success notifications on
    functions = resources(synth_two.template, "AWS::Lambda::Function")
    (notify,) = [
        f for f in functions.values() if f["Properties"]["Handler"] == "handlers.notify.handler"
    ]
    env = notify["Properties"]["Environment"]["Variables"]
    assert env["BACKPROOF_CHAT_WEBHOOK_SECRET_ARN"] == CHAT_SECRET_ARN
    assert env["BACKPROOF_NOTIFY_SUCCESS"] == "true"
    # Then exactly one role may read that secret: the notify function's
    readers = {
        role["Ref"]
        for policy in resources(synth_two.template, "AWS::IAM::Policy").values()
        for st in _statements(policy["Properties"]["PolicyDocument"])
        if CHAT_SECRET_ARN in _as_list(st["Resource"])
        for role in policy["Properties"]["Roles"]
    }
    assert readers == {notify["Properties"]["Role"]["Fn::GetAtt"][0]}


# -- second region -----------------------------------------------------------------------------
def _replication_role_policy(template: dict[str, Any]) -> list[dict[str, Any]]:
    roles = [
        name
        for name, role in resources(template, "AWS::IAM::Role").items()
        if "s3.amazonaws.com"
        in json.dumps(role["Properties"]["AssumeRolePolicyDocument"]["Statement"])
    ]
    return [
        s
        for policy in resources(template, "AWS::IAM::Policy").values()
        if any(r["Ref"] in roles for r in policy["Properties"]["Roles"])
        for s in _statements(policy["Properties"]["PolicyDocument"])
    ]


def test_replication_only_when_a_replica_is_configured(synth: Synth, synth_two: Synth) -> None:
    for bucket in resources(synth.template, "AWS::S3::Bucket").values():
        assert "ReplicationConfiguration" not in bucket["Properties"]
    assert _replication_role_policy(synth.template) == []

    (bucket,) = [
        b
        for b in resources(synth_two.template, "AWS::S3::Bucket").values()
        if "ReplicationConfiguration" in b["Properties"]
    ]
    (rule,) = bucket["Properties"]["ReplicationConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert rule["SourceSelectionCriteria"] == {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
    assert rule["Destination"] == {
        "Bucket": REPLICA["bucket_arn"],
        "EncryptionConfiguration": {"ReplicaKmsKeyID": REPLICA["kms_key_arn"]},
    }


def test_replication_role_is_least_privilege(synth_two: Synth) -> None:
    statements = {
        tuple(sorted(_as_list(s["Action"]))): s
        for s in _replication_role_policy(synth_two.template)
    }
    assert set(statements) == {
        ("s3:GetReplicationConfiguration", "s3:ListBucket"),
        (
            "s3:GetObjectLegalHold",  # the bucket has Object Lock in this configuration
            "s3:GetObjectRetention",
            "s3:GetObjectVersionAcl",
            "s3:GetObjectVersionForReplication",
            "s3:GetObjectVersionTagging",
        ),
        ("s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags"),
        ("kms:Decrypt",),
        ("kms:Encrypt",),
    }
    assert all(s["Effect"] == "Allow" for s in statements.values())
    replicate = statements[("s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags")]
    assert replicate["Resource"] == f"{REPLICA['bucket_arn']}/*"
    encrypt = statements[("kms:Encrypt",)]
    assert encrypt["Resource"] == REPLICA["kms_key_arn"]
    assert encrypt["Condition"]["StringEquals"] == {
        "kms:ViaService": "s3.eu-central-1.amazonaws.com"
    }
    decrypt = statements[("kms:Decrypt",)]
    assert "Fn::GetAtt" in decrypt["Resource"]  # this stack's key, not a wildcard
    assert "kms:ViaService" in decrypt["Condition"]["StringEquals"]
