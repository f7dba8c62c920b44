"""Per VPC: the security groups tasks and temporary instances use, and optional endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from constructs import Construct

from .config import Network

POSTGRES_PORT = 5432
HTTPS_PORT = 443
# Interface endpoints the dump/restore task needs when its subnets have no route out:
# pull the image (ECR API + registry), write logs, read the connection secret, report to
# Step Functions. S3 goes through the free gateway endpoint.
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "states")
# us-east-1 list price per interface endpoint per availability zone per hour (USD).
# https://aws.amazon.com/privatelink/pricing/
ENDPOINT_HOURLY_USD = 0.01
HOURS_PER_MONTH = 730


def endpoint_monthly_cost(availability_zones: int) -> float:
    """Fixed monthly cost of the interface endpoints in one VPC (data processing extra)."""
    return round(
        len(INTERFACE_ENDPOINTS) * availability_zones * ENDPOINT_HOURLY_USD * HOURS_PER_MONTH, 2
    )


@dataclass(frozen=True)
class VpcResources:
    vpc_id: str
    task_security_group_id: str
    instance_security_group_id: str
    subnet_group_name: str


class Networking(Construct):
    """Security groups per VPC: the restore task alone may reach a temporary instance."""

    def __init__(
        self, scope: Construct, construct_id: str, *, networks: dict[str, Network], deployment: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpcs: dict[str, VpcResources] = {}
        for index, network in enumerate(networks.values()):
            self.vpcs[network.vpc_id] = self._vpc(f"Vpc{index}", network, deployment)

    def _vpc(self, cid: str, network: Network, deployment: str) -> VpcResources:
        scope = Construct(self, cid)
        task_sg = ec2.CfnSecurityGroup(
            scope,
            "TaskSecurityGroup",
            vpc_id=network.vpc_id,
            group_description=f"backproof {deployment}: dump and restore tasks",
            security_group_egress=[
                ec2.CfnSecurityGroup.EgressProperty(
                    ip_protocol="tcp",
                    from_port=POSTGRES_PORT,
                    to_port=POSTGRES_PORT,
                    cidr_ip="0.0.0.0/0",
                    description="PostgreSQL sources and restore targets",
                ),
                ec2.CfnSecurityGroup.EgressProperty(
                    ip_protocol="tcp",
                    from_port=HTTPS_PORT,
                    to_port=HTTPS_PORT,
                    cidr_ip="0.0.0.0/0",
                    description="AWS APIs (S3, ECR, logs, Secrets Manager, Step Functions)",
                ),
            ],
        )
        instance_sg = ec2.CfnSecurityGroup(
            scope,
            "InstanceSecurityGroup",
            vpc_id=network.vpc_id,
            group_description=f"backproof {deployment}: temporary verification instances",
            # No egress: the instance only answers the restore task.
            security_group_egress=[
                ec2.CfnSecurityGroup.EgressProperty(
                    ip_protocol="icmp",
                    from_port=252,
                    to_port=86,
                    cidr_ip="255.255.255.255/32",
                    description="disallow all egress",
                )
            ],
        )
        ec2.CfnSecurityGroupIngress(
            scope,
            "InstanceFromTask",
            group_id=instance_sg.attr_group_id,
            source_security_group_id=task_sg.attr_group_id,
            ip_protocol="tcp",
            from_port=POSTGRES_PORT,
            to_port=POSTGRES_PORT,
            description="restore task to temporary instance",
        )
        subnet_group = rds.CfnDBSubnetGroup(
            scope,
            "SubnetGroup",
            db_subnet_group_description=f"backproof {deployment}: temporary verification instances",
            subnet_ids=list(network.subnet_ids),
        )
        if network.vpc_endpoints:
            self._endpoints(scope, network, task_sg)
        return VpcResources(
            vpc_id=network.vpc_id,
            task_security_group_id=task_sg.attr_group_id,
            instance_security_group_id=instance_sg.attr_group_id,
            subnet_group_name=subnet_group.ref,
        )

    @staticmethod
    def _endpoints(scope: Construct, network: Network, task_sg: ec2.CfnSecurityGroup) -> None:
        region = Stack.of(scope).region
        endpoint_sg = ec2.CfnSecurityGroup(
            scope,
            "EndpointSecurityGroup",
            vpc_id=network.vpc_id,
            group_description="backproof: interface endpoints, HTTPS from tasks only",
            security_group_ingress=[
                ec2.CfnSecurityGroup.IngressProperty(
                    ip_protocol="tcp",
                    from_port=HTTPS_PORT,
                    to_port=HTTPS_PORT,
                    source_security_group_id=task_sg.attr_group_id,
                    description="tasks",
                )
            ],
        )
        for service in INTERFACE_ENDPOINTS:
            ec2.CfnVPCEndpoint(
                scope,
                "Endpoint" + service.replace(".", "").title(),
                vpc_id=network.vpc_id,
                service_name=f"com.amazonaws.{region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=list(network.subnet_ids),
                security_group_ids=[endpoint_sg.attr_group_id],
            )
        ec2.CfnVPCEndpoint(
            scope,
            "EndpointS3",
            vpc_id=network.vpc_id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=list(network.route_table_ids),
        )
