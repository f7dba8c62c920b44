"""Where backups live: a customer KMS key and a private, versioned, TLS-only bucket; and the
asymmetric key that signs manifests and verification evidence."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backproof.contract import TIER_TAG

# Object tag the engine writes on every backup object; lifecycle rules key on it.
# Colder storage per tier, after the days given. Glacier Instant Retrieval keeps every
# backup restorable in milliseconds, so verification and restore never wait for a thaw.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-transition-general-considerations.html
TIER_TRANSITIONS = {
    "weekly": (s3.StorageClass.INFREQUENT_ACCESS, 30),
    "monthly": (s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, 30),
    "yearly": (s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, 30),
}


class BackupStorage(Construct):
    """The customer key, the backup bucket and the bucket that receives its access logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        object_lock_days: int,
        object_lock: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="backproof: backups, logs, notifications and workflow state",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Signs each manifest and verification report (the engine's jobs/signatures.py). An
        # asymmetric key: anyone given kms:GetPublicKey checks signatures offline; only the
        # backup, verify and restore tasks sign (`only_signers`). Asymmetric keys do not rotate.
        self.signing_key = kms.Key(
            self,
            "SigningKey",
            description="backproof: signs manifests and verification evidence",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            # Server access logs can only be delivered to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30)
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        lock = (
            s3.ObjectLockRetention.governance(Duration.days(object_lock_days))
            if object_lock_days
            else None
        )
        self.bucket = s3.Bucket(
            self,
            "Backups",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="backups/",
            # Object Lock can only be enabled when the bucket is created: a default retention
            # (`object_lock_days`) or per-tier locks the engine sets on each object.
            object_lock_enabled=bool(object_lock_days) or object_lock,
            object_lock_default_retention=lock,
            lifecycle_rules=self._lifecycle(),
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Every put must ask for SSE-KMS; a client that forgets is refused, not silently
        # given the default, so a misconfigured writer shows up at once.
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyUnencryptedPuts",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects("*")],
                conditions={"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
            )
        )

    def replicate(
        self, *, bucket_arn: str, region: str, kms_key_arn: str, object_lock: bool
    ) -> iam.Role:
        """Replicate every object to a bucket in another region (made outside this stack:
        versioned, with its own key), re-encrypted there with that key. Delete markers are
        replicated so retention takes effect in the replica too; deletes of a version (what
        the lifecycle's expiry or an attacker's permanent delete does) never are, so the
        replica keeps its own history for its own lifecycle to expire."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "ReplicationRole",
            assumed_by=iam.ServicePrincipal("s3.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description="backproof: S3 replication of the backup bucket to the second region",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetReplicationConfiguration", "s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
            )
        )
        read = [
            "s3:GetObjectVersionForReplication",
            "s3:GetObjectVersionAcl",
            "s3:GetObjectVersionTagging",
        ]
        if object_lock:  # a locked object's retention travels with it
            read += ["s3:GetObjectRetention", "s3:GetObjectLegalHold"]
        role.add_to_policy(
            iam.PolicyStatement(actions=read, resources=[self.bucket.arn_for_objects("*")])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                resources=[f"{bucket_arn}/*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[self.key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"},
                    "ArnLike": {
                        "kms:EncryptionContext:aws:s3:arn": [
                            self.bucket.bucket_arn,
                            self.bucket.arn_for_objects("*"),
                        ]
                    },
                },
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:Encrypt"],
                resources=[kms_key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                    "ArnLike": {
                        "kms:EncryptionContext:aws:s3:arn": [bucket_arn, f"{bucket_arn}/*"]
                    },
                },
            )
        )
        bucket = self.bucket.node.default_child
        assert isinstance(bucket, s3.CfnBucket)
        bucket.replication_configuration = s3.CfnBucket.ReplicationConfigurationProperty(
            role=role.role_arn,
            rules=[
                s3.CfnBucket.ReplicationRuleProperty(
                    id="second-region",
                    status="Enabled",
                    priority=0,
                    filter=s3.CfnBucket.ReplicationRuleFilterProperty(prefix=""),
                    delete_marker_replication=s3.CfnBucket.DeleteMarkerReplicationProperty(
                        status="Enabled"
                    ),
                    source_selection_criteria=s3.CfnBucket.SourceSelectionCriteriaProperty(
                        sse_kms_encrypted_objects=s3.CfnBucket.SseKmsEncryptedObjectsProperty(
                            status="Enabled"
                        )
                    ),
                    destination=s3.CfnBucket.ReplicationDestinationProperty(
                        bucket=bucket_arn,
                        encryption_configuration=s3.CfnBucket.EncryptionConfigurationProperty(
                            replica_kms_key_id=kms_key_arn
                        ),
                    ),
                )
            ],
        )
        return role

    def only_signers(self, roles: list[iam.IRole]) -> None:
        """No principal but `roles` may sign with the signing key, whatever IAM policies say
        (a deny in the key policy; each role's own policy grants the allow). ArnNotEquals
        with several values holds when the caller matches none of them."""
        self.signing_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheSigningTasksSign",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["kms:Sign"],
                resources=["*"],  # in a key policy "*" means this key
                conditions={"ArnNotEquals": {"aws:PrincipalArn": [r.role_arn for r in roles]}},
            )
        )

    @staticmethod
    def _lifecycle() -> list[s3.LifecycleRule]:
        rules = [
            s3.LifecycleRule(
                id="abort-incomplete-uploads",
                abort_incomplete_multipart_upload_after=Duration.days(1),
            ),
            # Retention deletes a backup's current versions; old versions go after 30 days.
            s3.LifecycleRule(id="expire-deleted", noncurrent_version_expiration=Duration.days(30)),
            # Once its old versions are gone a delete marker is all that is left: remove it, or
            # listings slow down with markers of every backup ever deleted.
            s3.LifecycleRule(id="remove-expired-delete-markers", expired_object_delete_marker=True),
        ]
        for tier, (storage_class, days) in TIER_TRANSITIONS.items():
            rules.append(
                s3.LifecycleRule(
                    id=f"colder-{tier}",
                    tag_filters={TIER_TAG: tier},
                    transitions=[
                        s3.Transition(
                            storage_class=storage_class, transition_after=Duration.days(days)
                        )
                    ],
                )
            )
        return rules
