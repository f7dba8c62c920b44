"""Each database's validated settings, stored where the workflows read them at run time."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from .config import Config
from .networking import VpcResources


class DatabaseSettings(Construct):
    """One SSM String parameter per database: `/backproof/<deployment>/databases/<name>`.

    Workflows look a database up by name, so a schedule's payload and an operator's
    console input stay two fields long however much is configured.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: Config, vpcs: dict[str, VpcResources]
    ) -> None:
        super().__init__(scope, construct_id)
        self.prefix = f"/backproof/{config.deployment}/databases"
        stack = Stack.of(self)
        self.arn_prefix = stack.format_arn(
            service="ssm",
            resource="parameter",
            resource_name=self.prefix.lstrip("/"),
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        self.parameters: dict[str, ssm.StringParameter] = {}
        for db in config.databases:
            vpc = vpcs[db.vpc_id]
            settings = {
                **db.settings(),
                "task_security_group_ids": [vpc.task_security_group_id, db.security_group_id],
                "instance_security_group_id": vpc.instance_security_group_id,
                "subnet_group_name": vpc.subnet_group_name,
            }
            self.parameters[db.name] = ssm.StringParameter(
                self,
                f"Db-{db.name}",
                parameter_name=f"{self.prefix}/{db.name}",
                string_value=stack.to_json_string(settings),
                description=f"backproof settings for database {db.name}",
            )
