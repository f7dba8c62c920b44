"""The signing flags, one spelling for every command that signs or checks signatures.

--signing-key PATH        private key, PEM (env BACKPROOF_SIGNING_KEY): signs what the
                          command writes; its public half checks what it reads
--verify-key PATH         public key, PEM (env BACKPROOF_VERIFY_KEY): checks only
--signing-kms-key-id KEY  KMS asymmetric key (env BACKPROOF_SIGNING_KMS_KEY_ID): signs
                          with kms:Sign, checks with its public key (kms:GetPublicKey)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..signing import Signing, open_signing


def add_signing_args(p: argparse.ArgumentParser, *, sign: bool = True, check: bool = True) -> None:
    group = p.add_argument_group("signatures (manifests and verification evidence)")
    if sign or check:
        group.add_argument(
            "--signing-key",
            type=Path,
            default=os.environ.get("BACKPROOF_SIGNING_KEY"),
            metavar="PATH",
            help=(
                "private key (PEM, EC P-256 or RSA) that signs what this command writes"
                + ("; its public half checks signatures" if check else "")
                if sign
                else "private key (PEM): only its public half is used, to check signatures"
            ),
        )
    if check:
        group.add_argument(
            "--verify-key",
            type=Path,
            default=os.environ.get("BACKPROOF_VERIFY_KEY"),
            metavar="PATH",
            help="public key (PEM) that checks signatures; signs nothing",
        )
    group.add_argument(
        "--signing-kms-key-id",
        default=os.environ.get("BACKPROOF_SIGNING_KMS_KEY_ID"),
        metavar="KEY",
        help="KMS asymmetric key (KeyUsage SIGN_VERIFY): "
        + ("signs with kms:Sign, " if sign else "")
        + ("checks with its public key (kms:GetPublicKey)" if check else ""),
    )


def signing_from_args(args: argparse.Namespace, *, sign: bool = True) -> Signing | None:
    """The keys the flags name (None: signing not configured). `sign` False: a KMS key is only
    read (kms:GetPublicKey), never asked to sign."""
    return open_signing(
        signing_key=getattr(args, "signing_key", None),
        verify_key=getattr(args, "verify_key", None),
        kms_key_id=getattr(args, "signing_kms_key_id", None),
        sign_with_kms=sign,
    )
