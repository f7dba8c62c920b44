"""The state machines, checked on the synthesized definition JSON itself."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import entry
import pytest

from backproof.contract import EXECUTION_TAG

from .asl import FAIL, cycles, definition, edges, machines, paths_skipping
from .conftest import Synth

DELETE = "DeleteInstance"
HANDOVER = "KeepInstance"  # an operator restore hands the instance over instead of deleting it
# Where an instance comes into being: created, or restored from RDS's own backups (native).
CREATION = ("CreateInstance", "RestoreInstance")


def states_of(synth: Synth, name: str) -> dict[str, Any]:
    return definition(synth.template, machines(synth.template)[name])["States"]


def while_instance_lives(states: dict[str, Any], guards: set[str]) -> set[str]:
    """States that can run after instance creation was attempted and before a guard."""
    seen, todo = set(), [c for c in CREATION if c in states]
    while todo:
        name = todo.pop()
        if name in seen or name in guards or name not in states:
            continue
        seen.add(name)
        todo.extend(edges(states[name]))
    return seen


def violations(states: dict[str, Any], guards: set[str]) -> list[list[str]]:
    found = []
    for name in sorted(while_instance_lives(states, guards)):
        found += paths_skipping(states, name, guards)
    return found


def test_five_state_machines(synth: Synth) -> None:
    assert set(machines(synth.template)) == {"backup", "verify", "restore", "janitor", "native"}


@pytest.mark.parametrize(
    ("machine", "guards"),
    [("verify", {DELETE}), ("restore", {DELETE, HANDOVER}), ("native", {DELETE})],
)
def test_no_path_after_instance_creation_skips_deletion(
    synth: Synth, machine: str, guards: set[str]
) -> None:
    states = states_of(synth, machine)
    assert any(c in states for c in CREATION) and DELETE in states
    assert len(while_instance_lives(states, guards)) >= 8
    assert violations(states, guards) == []


def test_the_walk_finds_a_missing_catch(synth: Synth) -> None:
    # Given the verify machine with the restore task's catch removed
    states = copy.deepcopy(states_of(synth, "verify"))
    del states["RestoreAndCheck"]["Catch"]
    # Then an error in the restore task ends the execution with the instance still alive
    assert ["RestoreAndCheck", FAIL] in violations(states, {DELETE})


@pytest.mark.parametrize(
    ("machine", "state", "removed"),
    [("native", "CheckRestoredInstance", "Catch"), ("native", "RestoreInstance", "Catch")],
)
def test_the_walk_finds_a_missing_catch_on_the_native_paths(
    synth: Synth, machine: str, state: str, removed: str
) -> None:
    states = copy.deepcopy(states_of(synth, machine))
    del states[state][removed]
    assert [state, FAIL] in violations(states, {DELETE})


@pytest.mark.parametrize(
    ("machine", "task"), [("verify", "RestoreAndCheck"), ("native", "CheckRestoredInstance")]
)
def test_verify_deletes_on_success_too(synth: Synth, machine: str, task: str) -> None:
    states = states_of(synth, machine)
    assert states[task]["Next"] == DELETE
    assert "End" not in states["ReleaseSlot"]


def test_every_loop_has_a_ceiling(synth: Synth) -> None:
    for name in ("verify", "restore", "native"):
        states = states_of(synth, name)
        loops = cycles(states)
        assert loops, "the poll loop is missing"
        for loop in loops:
            ceilings = [
                rule
                for member in loop
                if states[member]["Type"] == "Choice"
                for rule in states[member]["Choices"]
                if rule.get("Variable") == "$.poll.count"
                and "NumericGreaterThanEquals" in rule
                and rule["Next"] not in loop
            ]
            assert ceilings, f"{name}: loop {loop} has no exit on a poll count"
            assert any(states[m]["Type"] == "Wait" for m in loop)


def test_retries_are_only_on_errors_that_can_pass(synth: Synth) -> None:
    for name in machines(synth.template):
        for state_name, state in states_of(synth, name).items():
            for retry in state.get("Retry", []):
                assert "States.ALL" not in retry["ErrorEquals"], (name, state_name)
                assert "States.TaskFailed" not in retry["ErrorEquals"], (name, state_name)
                assert retry.get("MaxAttempts", 3) * retry.get("IntervalSeconds", 1) > 0


def test_dump_retries_only_transient_engine_errors(synth: Synth) -> None:
    dump = states_of(synth, "backup")["Dump"]
    assert dump["Resource"] == "arn:aws:states:::ecs:runTask.waitForTaskToken"
    assert dump["Retry"][0]["ErrorEquals"] == [
        "SourceUnavailable",
        "UploadFailed",
        "ECS.AmazonECSException",
    ]
    assert dump["HeartbeatSeconds"] == 600


def test_fargate_tasks_get_their_token_and_request(synth: Synth) -> None:
    for machine, state in (
        ("backup", "Dump"),
        ("verify", "RestoreAndCheck"),
        ("restore", "RestoreIntoNewInstance"),
        ("native", "CheckRestoredInstance"),
    ):
        params = states_of(synth, machine)[state]["Parameters"]
        container = params["Overrides"]["ContainerOverrides"][0]
        assert container["Environment"] == [
            {"Name": "BACKPROOF_TASK_TOKEN", "Value.$": "$$.Task.Token"},
            {"Name": "BACKPROOF_TASK_CPU", "Value.$": params["Overrides"]["Cpu.$"]},
        ]
        assert container["Command.$"].startswith("States.Array('")
        assert params["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"


def test_verification_waits_for_a_slot_with_a_ceiling(synth: Synth) -> None:
    acquire = states_of(synth, "verify")["AcquireSlot"]
    assert acquire["Resource"].endswith(":states:::dynamodb:updateItem")
    (retry,) = acquire["Retry"]
    assert retry["ErrorEquals"] == ["DynamoDB.ConditionalCheckFailedException"]
    assert retry["MaxAttempts"] * retry["IntervalSeconds"] <= 13 * 3600
    assert acquire["Parameters"]["ExpressionAttributeValues"][":limit"] == {"N": "2"}


def test_restore_validates_before_it_touches_anything(synth: Synth) -> None:
    definition_ = definition(synth.template, machines(synth.template)["restore"])
    assert definition_["StartAt"] == "ValidateRequest"
    states = definition_["States"]
    assert states["ValidateRequest"]["Catch"][0]["Next"] == "RequestRejected"
    route = states["RouteRequest"]
    assert route["Choices"][0] == {
        "Variable": "$.plan.dry_run",
        "BooleanEquals": True,
        "Next": "DryRunPlanned",
    }


def test_logging_and_tracing_on_every_machine(synth: Synth) -> None:
    for logical_id in machines(synth.template).values():
        props = synth.template["Resources"][logical_id]["Properties"]
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert props["LoggingConfiguration"]["Level"] == "ALL"


def test_every_task_action_is_one_the_container_entry_point_knows(synth: Synth) -> None:
    seen = set()
    for name in machines(synth.template):
        for state in states_of(synth, name).values():
            if state.get("Resource", "").endswith("ecs:runTask.waitForTaskToken"):
                command = state["Parameters"]["Overrides"]["ContainerOverrides"][0]["Command.$"]
                seen.add(re.match(r"States\.Array\('(\w+)'", command).group(1))  # type: ignore[union-attr]
    assert seen == set(entry.ACTIONS)


def test_an_execution_that_ends_badly_has_its_task_stopped(synth: Synth) -> None:
    # Every dump/restore task carries the execution that started it
    tasks = [
        state
        for name in machines(synth.template)
        for state in states_of(synth, name).values()
        if state.get("Resource", "").startswith("arn:aws:states:::ecs:runTask")
    ]
    assert tasks
    for state in tasks:
        assert state["Parameters"]["Tags"] == [{"Key": EXECUTION_TAG, "Value.$": "$$.Execution.Id"}]
    # and an execution that fails, times out or is stopped reaches the function that stops them
    (rule,) = [r for r in synth.template["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert len(pattern["detail"]["stateMachineArn"]) == 4
    (target,) = rule["Properties"]["Targets"]
    assert "StopTasks" in json.dumps(target["Arn"])


@pytest.mark.parametrize("machine", ["verify", "restore"])
def test_every_path_that_took_a_lock_gives_it_back(synth: Synth, machine: str) -> None:
    states = states_of(synth, machine)
    releases = {"ReleaseLock", "FailedReleaseLock"}
    assert releases <= set(states)
    # From the state after a successful acquisition, no path ends without releasing it
    after = states["AcquireLock"]["Next"]
    assert paths_skipping(states, after, releases) == []
    # and a lock another execution holds ends the run naming that execution, touching nothing
    busy = [c for c in states["AcquireLock"]["Catch"] if "ConditionalCheck" in c["ErrorEquals"][0]]
    assert busy and busy[0]["Next"] == "LockHolder"


# -- RDS's own ways back, and rollbacks ----------------------------------------------------------
def test_native_verification_rejects_bad_input_then_takes_a_slot_before_restoring(
    synth: Synth,
) -> None:
    definition_ = definition(synth.template, machines(synth.template)["native"])
    states = definition_["States"]
    assert definition_["StartAt"] == "PlanWayBack"
    (rejected, *_) = states["PlanWayBack"]["Catch"]
    assert rejected["Next"] == "RequestRejected" and "BadInput" in rejected["ErrorEquals"]
    assert "CreateInstance" not in states  # RDS's own backups are restored, never created
    before_restore = paths_skipping(states, "PlanWayBack", {"AcquireSlot"})
    assert all("RestoreInstance" not in path for path in before_restore)
    # Every path after the slot was taken gives it back (a stuck release: the janitor frees it)
    assert paths_skipping(states, states["AcquireSlot"]["Next"], {"ReleaseSlot"}) == []
    restore = states["RestoreInstance"]
    assert restore["Parameters"]["way_back.$"] == "$.plan.way_back"
    assert restore["ResultPath"] == "$.restored"  # the name stays at $.instance for deletion


def test_a_point_in_time_request_runs_the_native_verification(synth: Synth) -> None:
    states = states_of(synth, "restore")
    assert states["ValidateRequest"]["Next"] == "AdoptDatabase"
    route = states["RouteWayBack"]
    (pitr,) = route["Choices"]
    assert pitr == {
        "Variable": "$.plan.target.kind",
        "StringEquals": "point_in_time",
        "Next": "PointInTimeDryRun",
    }
    dry = states["PointInTimeDryRun"]
    assert dry["Choices"][0]["Next"] == "DryRunPlanned" and dry["Default"] == "RestorePointInTime"
    start = states["RestorePointInTime"]
    assert start["Resource"].endswith(":states:::states:startExecution.sync:2")
    assert start["Parameters"]["Input"]["mode"] == "point_in_time"
    assert start["Parameters"]["Input"]["time.$"] == "$.plan.target.time"
    assert [c["Next"] for c in start["Catch"]] == ["RestoreRecordFailure"]
    # A rollback is a restore into the existing target, naming the restore it undoes
    request = states["PrepareExistingRequest"]["Parameters"]
    assert request["rollback.$"] == "$.plan.rollback"


def test_ways_back_are_scheduled_per_database_into_the_native_machine(synth: Synth) -> None:
    native = machines(synth.template)["native"]
    schedules = [
        r["Properties"]
        for r in synth.template["Resources"].values()
        if r["Type"] == "AWS::Scheduler::Schedule"
        and native in json.dumps(r["Properties"]["Target"]["Arn"])
    ]
    assert [json.loads(s["Target"]["Input"]) for s in schedules] == [
        {"database": "orders", "mode": "snapshot"}
    ]
    assert schedules[0]["ScheduleExpression"] == "cron(30 5 ? * MON *)"
