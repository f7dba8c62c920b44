"""When a workflow execution ends badly (failed, timed out, stopped), stop the dump/restore
task it started: `.waitForTaskToken` never stops an ECS task itself, and a restore left
running would go on rewriting its target after the workflow reported failure.

Triggered by EventBridge's "Step Functions Execution Status Change" events. The task also
stops itself when its heartbeat finds the workflow gone; this is the faster, outside line.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit

from backproof.contract import EXECUTION_TAG, METRIC_ORPHAN_TASKS_STOPPED
from backproof.errors import BadInput

from .observability import logger, metrics, tracer

ENDED_BADLY = ("FAILED", "TIMED_OUT", "ABORTED")


@cache
def ecs() -> Any:
    return boto3.client("ecs")


def tasks_of(client: Any, cluster: str, execution_arn: str) -> list[str]:
    """Running task ARNs in the cluster tagged with this execution."""
    found = []
    for page in client.get_paginator("list_tasks").paginate(cluster=cluster):
        arns = page.get("taskArns", [])
        if not arns:
            continue
        described = client.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])
        for task in described.get("tasks", []):
            tags = {t.get("key"): t.get("value") for t in task.get("tags", [])}
            if tags.get(EXECUTION_TAG) == execution_arn and task.get("lastStatus") != "STOPPED":
                found.append(task["taskArn"])
    return found


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict) or not detail.get("executionArn"):
        raise BadInput("event is not a Step Functions execution status change (no detail)")
    execution, status = str(detail["executionArn"]), str(detail.get("status", ""))
    if status not in ENDED_BADLY:
        return {"execution": execution, "status": status, "stopped": []}
    cluster = os.environ["BACKPROOF_CLUSTER"]
    stopped = []
    for task in tasks_of(ecs(), cluster, execution):
        ecs().stop_task(
            cluster=cluster, task=task, reason=f"backproof: its execution ended {status}"
        )
        stopped.append(task)
    metrics.add_metric(name=METRIC_ORPHAN_TASKS_STOPPED, unit=MetricUnit.Count, value=len(stopped))
    if stopped:
        logger.warning(
            "stopped tasks of an ended execution",
            extra={"execution": execution, "status": status, "tasks": stopped},
        )
    return {"execution": execution, "status": status, "stopped": stopped}
