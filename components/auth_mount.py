"""The cluster's own `kubernetes` auth mount in Vault, and its config."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_vault as vault


@dataclass
class KubernetesAuthMountArgs:
    path: str
    """Mount path, unique per cluster (e.g. k8s-lab-a): logins go to auth/<path>/login."""
    kubernetes_host: str
    """API server URL as Vault reaches it."""
    kubernetes_ca_cert: str
    """PEM CA certificate of the API server."""
    token_reviewer_jwt: pulumi.Input[str]
    """JWT of the reviewer ServiceAccount (kept secret in state)."""
    issuer: str | None = None
    """Expected `iss` of ServiceAccount tokens; None leaves issuer validation off (Vault's default)."""
    description: str = ""


class KubernetesAuthMount(pulumi.ComponentResource):
    """`vault auth enable -path=<path> kubernetes` + `vault write auth/<path>/config ...`.

    Outputs:
        path: the mount path.
        accessor: the mount accessor (for identity templating in policies).
    """

    path: pulumi.Output[str]
    accessor: pulumi.Output[str]

    def __init__(self, name: str, args: KubernetesAuthMountArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:KubernetesAuthMount", name, None, opts)

        backend = vault.AuthBackend(
            f"{name}-backend",
            type="kubernetes",
            path=args.path,
            description=args.description,
            opts=pulumi.ResourceOptions(parent=self),
        )
        vault.kubernetes.AuthBackendConfig(
            f"{name}-config",
            backend=backend.path,
            kubernetes_host=args.kubernetes_host,
            kubernetes_ca_cert=args.kubernetes_ca_cert,
            token_reviewer_jwt=pulumi.Output.secret(args.token_reviewer_jwt),
            issuer=args.issuer,
            disable_iss_validation=args.issuer is None,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["tokenReviewerJwt"]),
        )

        self.path = backend.path
        self.accessor = backend.accessor
        self.register_outputs({"path": self.path, "accessor": self.accessor})
