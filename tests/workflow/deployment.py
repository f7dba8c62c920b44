"""The synthesized stack, stood up inside moto: state machines run by moto's interpreter,
Lambda tasks routed in-process to the real handlers, Fargate tasks run as local processes of
the real container entry point (with the arguments and environment the workflow passed).

moto cannot run containers or Lambda code, and its Wait states and retries really sleep; the
patches that bridge that are all here, each with its reason.
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.session
import pytest
from moto.awslambda.models import LambdaBackend
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.stepfunctions.parser import models as sfn_models
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
    StateTaskServiceEcs,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
    WaitFunction,
)

from infra.compute import ACTION_TAG
from tests.infra.asl import PSEUDO, machines, render

from .conftest import SLOTS_TABLE, SUBNET_GROUP, LambdaContext, World

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "functions" / "task" / "entry.py"
BACKPROOF_CLI = Path(sys.executable).parent / "backproof"
EXECUTION_TIMEOUT_S = 150


def _post(url: str, body: dict[str, Any] | None = None) -> None:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310
    urllib.request.urlopen(request).close()  # noqa: S310 (the loopback moto server)


def enable_execution(endpoint: str) -> None:
    """A clean moto (the server is shared by the session) that runs state machines."""
    _post(f"{endpoint}/moto-api/reset")
    _post(f"{endpoint}/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})


def patch_moto(monkeypatch: pytest.MonkeyPatch, handlers: dict[str, ModuleType]) -> None:

    def invoke(
        self: Any,
        function_name: str,
        qualifier: Any,
        body: Any,
        headers: Any,
        response_headers: dict[str, Any],
    ) -> bytes:
        # moto would need Docker to run a function; run the real handler in-process instead.
        name = function_name.rsplit(":", 1)[-1].removeprefix("bp-")
        try:
            result = handlers[name].handler(json.loads(body or b"{}"), LambdaContext())
        except Exception as exc:  # surfaced to Step Functions as the function's error
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()
        return json.dumps(result).encode()

    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
    # Wait states and retry intervals: a minute in AWS, no time here.
    monkeypatch.setattr(WaitFunction, "_wait_interval", lambda self, env, wait_seconds: None)
    monkeypatch.setattr(retrier_decl, "time", _FastTime())
    # moto's port of the Step Functions interpreter passes ECS parameters in Step Functions'
    # casing (Cluster, TaskDefinition) to boto3, which wants cluster, taskDefinition, and reads
    # the answer in the same casing; translate both ways with botocore's own shapes.
    for cls, service in ((StateTaskServiceEcs, "ecs"), (StateTaskServiceSfn, "stepfunctions")):
        monkeypatch.setattr(cls, "_normalise_parameters", _boto_request(cls, service))
        monkeypatch.setattr(cls, "_normalise_response", _boto_response(service))
    # moto deep-copies the state machine on every StartExecution; a machine whose program has
    # already run tasks holds objects that cannot be copied, so fall back to a shallow copy.

    monkeypatch.setattr(sfn_models, "copy", _TolerantCopy())
    patch_moto_eni(monkeypatch)


def patch_moto_eni(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's RunTask with awsvpc networking reads an attribute its ENI model lacks."""
    if not hasattr(NetworkInterface, "private_dns_name"):
        monkeypatch.setattr(
            NetworkInterface,
            "private_dns_name",
            property(lambda self: "ip-10-20-1-10.ec2.internal"),
            raising=False,
        )


def _operation(service: str, action: str) -> Any:

    model = botocore.session.get_session().get_service_model(service)
    return model.operation_model("".join(part.title() for part in action.split("_")))


def _boto_request(cls: Any, service: str) -> Any:
    original = cls._normalise_parameters

    def normalise(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: Any = None,
        service_action_name: str | None = None,
    ) -> None:
        original(self, parameters, boto_service_name, service_action_name)
        action = service_action_name or self._get_boto_service_action()
        self._to_boto_request(parameters, _operation(service, action).input_shape)

    return normalise


def _boto_response(service: str) -> Any:
    def normalise(
        self: Any,
        response: Any,
        boto_service_name: Any = None,
        service_action_name: str | None = None,
    ) -> None:
        action = service_action_name or self._get_boto_service_action()
        self._from_boto_response(response, _operation(service, action).output_shape)

    return normalise


class _TolerantCopy:
    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:

        try:
            return copy.deepcopy(value, memo)
        except Exception:
            return copy.copy(value)

    @staticmethod
    def copy(value: Any) -> Any:

        return copy.copy(value)


class _FastTime:
    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 0.01))


@dataclass
class TaskRun:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    # The action of the task definition the workflow ran (so, in AWS, the task role it had).
    definition: str = ""


@dataclass
class Deployment:
    template: dict[str, Any]
    world: World
    env: dict[str, str]
    arns: dict[str, str] = field(default_factory=dict)
    machine_arns: dict[str, str] = field(default_factory=dict)
    # The task action each registered task definition is for (its ACTION_TAG).
    task_actions: dict[str, str] = field(default_factory=dict)
    tasks: list[TaskRun] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: int = 0

    # -- stand the stack up -----------------------------------------------------------------
    def resolve(self, node: dict[str, Any]) -> str:
        if "Ref" in node and node["Ref"] in PSEUDO:
            return PSEUDO[node["Ref"]]
        key = node["Ref"] if "Ref" in node else ".".join(node["Fn::GetAtt"])
        if key in self.arns:
            return self.arns[key]
        raise KeyError(f"no moto resource stands for {key}")

    def deploy(self, source_secret_arn: str) -> None:
        resources = self.template["Resources"]
        iam = boto3.client("iam")
        role = iam.create_role(RoleName=f"bp-{os.urandom(3).hex()}", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        lambda_ = boto3.client("lambda")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("index.py", "def handler(event, context):\n    return event\n")
        for logical_id, res in resources.items():
            kind, props = res["Type"], res.get("Properties", {})
            if kind == "AWS::Lambda::Function":
                name = props["Handler"].split(".")[1]
                try:
                    arn = lambda_.create_function(
                        FunctionName=f"bp-{name}",
                        Runtime="python3.12",
                        Role=role,
                        Handler="index.handler",
                        Code={"ZipFile": code.getvalue()},
                    )["FunctionArn"]
                except lambda_.exceptions.ResourceConflictException:
                    arn = lambda_.get_function(FunctionName=f"bp-{name}")["Configuration"][
                        "FunctionArn"
                    ]
                self.arns[f"{logical_id}.Arn"] = arn
            elif kind == "AWS::ECS::Cluster":
                cluster = boto3.client("ecs").create_cluster(clusterName="backproof")["cluster"]
                self.arns[f"{logical_id}.Arn"] = cluster["clusterArn"]
            elif kind == "AWS::SNS::Topic":
                self.arns[logical_id] = boto3.client("sns").create_topic(Name="backproof")[
                    "TopicArn"
                ]
            elif kind == "AWS::DynamoDB::GlobalTable":
                self.arns[logical_id] = SLOTS_TABLE
                self.arns[f"{logical_id}.Arn"] = (
                    f"arn:aws:dynamodb:us-east-1:123456789012:table/{SLOTS_TABLE}"
                )
            elif kind == "AWS::EC2::SecurityGroup":
                self.arns[f"{logical_id}.GroupId"] = self.world.security_group_id
            elif kind == "AWS::RDS::DBSubnetGroup":
                self.arns[logical_id] = SUBNET_GROUP
        self._task_definitions(resources)
        self._settings(resources, source_secret_arn)
        sfn = boto3.client("stepfunctions")
        ids = machines(self.template)
        for name in (
            "verify",
            "backup",
            "native",
            "restore",
            "janitor",
        ):  # backup starts verify, restore starts native: create those first
            definition = render(
                resources[ids[name]]["Properties"]["DefinitionString"], self.resolve
            )
            arn = sfn.create_state_machine(
                name=f"{name}-{os.urandom(3).hex()}", definition=definition, roleArn=role
            )["stateMachineArn"]
            self.arns[ids[name]] = self.machine_arns[name] = arn

    def _task_definitions(self, resources: dict[str, Any]) -> None:
        """One registered task definition per synthesized one (one per task action), so each
        RunTask names the definition of the action it runs, as in AWS."""
        ecs = boto3.client("ecs")
        for logical_id, res in resources.items():
            if res["Type"] != "AWS::ECS::TaskDefinition":
                continue
            props = res["Properties"]
            (action,) = [t["Value"] for t in props["Tags"] if t["Key"] == ACTION_TAG]
            (container,) = props["ContainerDefinitions"]
            environment = [
                {"name": e["Name"], "value": render(e["Value"], self._env_value)}
                for e in container["Environment"]
            ]
            arn = ecs.register_task_definition(
                family=f"backproof-{action}",
                requiresCompatibilities=["FARGATE"],
                networkMode="awsvpc",
                cpu=props["Cpu"],
                memory=props["Memory"],
                containerDefinitions=[
                    {
                        "name": container["Name"],
                        "image": "backproof",
                        "memory": 4096,
                        "environment": environment,
                    }
                ],
            )["taskDefinition"]["taskDefinitionArn"]
            self.arns[logical_id] = arn
            self.task_actions[arn] = action

    def _env_value(self, node: dict[str, Any]) -> str:
        """The container's environment names the bucket and key: point them at this world."""
        key = node.get("Ref") or ".".join(node.get("Fn::GetAtt", []))
        if key in PSEUDO:
            return PSEUDO[key]
        if "SigningKey" in key:
            return self.world.signing_key_arn
        return self.world.key_arn if "Key" in key else self.world.bucket

    def _settings(self, resources: dict[str, Any], source_secret_arn: str) -> None:
        """The synthesized settings parameter, with this world's network and source secret."""
        ssm = boto3.client("ssm")
        for res in resources.values():
            if res["Type"] != "AWS::SSM::Parameter":
                continue
            settings = json.loads(render(res["Properties"]["Value"], self.resolve))
            settings.update(
                subnet_ids=self.world.subnet_ids,
                secret_arn=source_secret_arn,
                task_security_group_ids=[self.world.security_group_id],
            )
            ssm.put_parameter(
                Name=res["Properties"]["Name"],
                Value=json.dumps(settings),
                Type="String",
                Overwrite=True,
            )

    # -- the Fargate stand-in -----------------------------------------------------------------
    def start_task_runner(self) -> None:
        threading.Thread(target=self._run_tasks, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run_tasks(self) -> None:
        ecs = boto3.client("ecs")
        seen: set[str] = set()
        cluster = next(v for k, v in self.arns.items() if "Cluster" in k)
        while not self._stop.wait(0.2):
            arns = [a for a in ecs.list_tasks(cluster=cluster)["taskArns"] if a not in seen]
            if not arns:
                continue
            for task in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]:
                seen.add(task["taskArn"])
                with self._lock:
                    self._running += 1
                threading.Thread(target=self._run_task, args=(task,), daemon=True).start()

    def _run_task(self, task: dict[str, Any]) -> None:
        """What Fargate would do: the container's entry point with the workflow's overrides."""
        definition = boto3.client("ecs").describe_task_definition(
            taskDefinition=task["taskDefinitionArn"]
        )["taskDefinition"]["containerDefinitions"][0]
        override = task["overrides"]["containerOverrides"][0]
        env = {**self.env, "BACKPROOF_CLI": str(BACKPROOF_CLI)}
        env.update({e["name"]: e["value"] for e in definition.get("environment", [])})
        env.update({e["name"]: e["value"] for e in override.get("environment", [])})
        action = self.task_actions.get(task["taskDefinitionArn"], "")
        try:
            if action != override["command"][0]:
                # In AWS the task would run with another action's role: refuse it loudly.
                self._refuse(env, override["command"], action)
                return
            command = [sys.executable, str(ENTRY), *override["command"]]
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, check=False, timeout=300
            )
            self.tasks.append(
                TaskRun(override["command"], done.returncode, done.stdout, done.stderr, action)
            )
        finally:
            with self._lock:
                self._running -= 1

    def _refuse(self, env: dict[str, str], command: list[str], action: str) -> None:
        cause = f"the {command[0]} action ran under the task definition for {action or 'none'}"
        self.tasks.append(TaskRun(command, 1, "", cause, action))
        boto3.client("stepfunctions").send_task_failure(
            taskToken=env["BACKPROOF_TASK_TOKEN"], error="WrongTaskDefinition", cause=cause
        )

    # -- running ------------------------------------------------------------------------------
    def _wait_for_tasks(self) -> None:
        """A task reports to the workflow just before its process exits: let it finish."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self._lock:
                if self._running == 0:
                    return
            time.sleep(0.05)

    def history(self, arn: str) -> list[str]:
        return _history(boto3.client("stepfunctions"), arn)

    def execute(self, machine: str, payload: dict[str, Any]) -> dict[str, Any]:
        sfn = boto3.client("stepfunctions")
        arn = sfn.start_execution(
            stateMachineArn=self.machine_arns[machine],
            name=f"test-{os.urandom(4).hex()}",
            input=json.dumps(payload),
        )["executionArn"]
        deadline = time.monotonic() + EXECUTION_TIMEOUT_S
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                self._wait_for_tasks()
                described["history"] = self.history(arn)
                # Nested executions (backup starts verify) follow, for the test's message.
                for other in self.machine_arns.values():
                    for execution in sfn.list_executions(stateMachineArn=other)["executions"]:
                        if execution["executionArn"] != arn and execution["status"] == "FAILED":
                            described["history"] += [
                                f"-- {execution['executionArn']}",
                                *self.history(execution["executionArn"]),
                            ]
                return described
            time.sleep(0.2)
        raise TimeoutError(f"{machine} execution still running after {EXECUTION_TIMEOUT_S}s")


def _history(sfn: Any, arn: str) -> list[str]:
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["type"] + ":" + _state_name(e) for e in events]


def _state_name(event: dict[str, Any]) -> str:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            if "name" in value:
                return str(value["name"])
            if "error" in value:  # a failure: keep what it said, for the test's message
                return f":{value['error']}: {str(value.get('cause', ''))[:300]}"
    return ""


def entered(result: dict[str, Any]) -> list[str]:
    """Names of the states an execution entered, in order."""
    return [
        e.split(":", 1)[1]
        for e in result["history"]
        if e.startswith(
            (
                "TaskStateEntered",
                "ChoiceStateEntered",
                "PassStateEntered",
                "WaitStateEntered",
                "SucceedStateEntered",
                "FailStateEntered",
            )
        )
    ]
