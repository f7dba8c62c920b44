"""Names shared by the engine and the deployed stack (`infra/`), defined once.

`infra/` imports this module and nothing else from the engine: a tag, prefix or metric name
changed here changes both the code that writes it and the IAM conditions and alarms that
read it.
"""

from __future__ import annotations

# -- object tags in the store ---------------------------------------------------------------
# Every stored object carries its backup's tier; the bucket's lifecycle rules move tiers by it.
TIER_TAG = "backproof:tier"

# -- temporary instances ----------------------------------------------------------------------
# Every temporary instance, created by the CLI or by a workflow, is named with this prefix and
# carries EPHEMERAL_TAG=true; IAM allows creating and deleting only such instances, and the
# engine refuses to delete any other (a second line behind IAM).
INSTANCE_PREFIX = "bp-"
EPHEMERAL_TAG = "backproof:ephemeral"
EXPIRES_TAG = "backproof:expires-at"
BACKUP_TAG = "backproof:backup-id"
DEPLOYMENT_TAG = "backproof:deployment"
# On an instance restored from RDS's own backups: what it was restored from (a snapshot, or a
# source instance and time), for whoever finds it in the console.
RESTORED_FROM_TAG = "backproof:restored-from"
# On every dump/restore task: the execution that started it, so an execution that ends
# (timed out, failed, stopped) can have its task stopped.
EXECUTION_TAG = "backproof:execution"

# -- metrics (Powertools EMF) -------------------------------------------------------------------
METRICS_NAMESPACE = "Backproof"
METRIC_BACKUP_SUCCEEDED = "BackupSucceeded"
METRIC_BACKUP_FAILED = "BackupFailed"
METRIC_BACKUP_BYTES = "BackupBytes"
METRIC_BACKUP_SECONDS = "BackupSeconds"
METRIC_VERIFICATION_SUCCEEDED = "VerificationSucceeded"
METRIC_VERIFICATION_FAILED = "VerificationFailed"
METRIC_VERIFICATION_INCOMPLETE = "VerificationIncomplete"
METRIC_RESTORE_FAILED = "RestoreFailed"
METRIC_CHECK_FAILURES = "CheckFailures"
METRIC_RESTORE_SECONDS = "RestoreSeconds"
# Per verification: time to a checked database (RTO measured) and the data's age then (RPO).
METRIC_RECOVERY_SECONDS = "RecoverySeconds"
METRIC_RECOVERY_POINT_AGE = "RecoveryPointAgeSeconds"
METRIC_LEAKED_INSTANCES = "LeakedInstancesDeleted"
METRIC_INSTANCES_NOT_DELETED = "ExpiredInstancesNotDeleted"
METRIC_STALE_SLOTS = "StaleSlotsReleased"
METRIC_ORPHAN_TASKS_STOPPED = "OrphanTasksStopped"
# Published every 15 minutes per database (dimension `database`) by the freshness function,
# read from the store itself; a database never verified reports NEVER_VERIFIED_SECONDS.
METRIC_SECONDS_SINCE_VERIFIED = "SecondsSinceVerifiedBackup"
NEVER_VERIFIED_SECONDS = 10 * 365 * 24 * 3600
METRIC_BACKUPS_DELETED = "BackupsDeleted"
METRIC_RETENTION_DELETE_FAILURES = "RetentionDeleteFailures"

# -- error names the workflows act on -----------------------------------------------------------
# The engine's exception class names (errors.py) travel as Step Functions error names.
ERROR_BAD_INPUT = "BadInput"
# Every BadInput of errors.py by class name (a test keeps the two in step): a workflow that
# catches these rejects the request, where any other error is a failure of the job.
BAD_INPUT_ERRORS = (
    "BadInput",
    "ConfigurationError",
    "ToolNotFound",
    "SourceUnavailable",
    "StoreUnavailable",
    "BackupNotFound",
)
ERROR_VERIFICATION_FAILED = "VerificationFailed"
# The verification could not finish for reasons outside the backup; not a defect.
ERROR_COULD_NOT_VERIFY = "CouldNotVerify"
ERROR_INSTANCE_BUSY = "InstanceBusy"
# Worth another attempt: the source or the store was unreachable for a while.
RETRYABLE_TASK_ERRORS = ("SourceUnavailable", "UploadFailed")

# -- the task's size --------------------------------------------------------------------------
# The Fargate task's CPU units, passed by the workflows (1024 a vCPU); the parallel jobs of a
# dump, a verification or a restore default to the task's vCPUs (jobs/__init__.py).
TASK_CPU_ENV = "BACKPROOF_TASK_CPU"
