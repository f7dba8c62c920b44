"""Stop the dump/restore task of a workflow execution that ended badly.

A `.waitForTaskToken` task keeps running when its execution fails, times out or is stopped;
a restore would go on rewriting its target. EventBridge reports the execution's end to the
`stop_tasks` function, which stops every task tagged with that execution.
"""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .fragments import task_arn_pattern


class TaskStopper(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.Function,
        cluster_arn: str,
        machines: list[sfn.IStateMachine],
    ) -> None:
        super().__init__(scope, construct_id)
        function.add_environment("BACKPROOF_CLUSTER", cluster_arn)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ecs:ListTasks"],
                resources=["*"],
                conditions={"ArnEquals": {"ecs:cluster": cluster_arn}},
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ecs:DescribeTasks", "ecs:StopTask"],
                resources=[task_arn_pattern(cluster_arn)],
            )
        )
        self.rule = events.Rule(
            self,
            "ExecutionEnded",
            description="backproof: stop the task of an execution that failed, timed out or "
            "was stopped",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                    "stateMachineArn": [m.state_machine_arn for m in machines],
                },
            ),
            targets=[targets.LambdaFunction(function, retry_attempts=8)],
        )
