"""The config of a cluster's auth mount: how Vault reaches the cluster's API server and reviews
ServiceAccount tokens there. Written by the cluster's stack, within what its applier policy pins."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_vault as vault


@dataclass
class KubernetesAuthConfigArgs:
    mount_path: str
    """The cluster's auth mount (made by the shared stack)."""
    kubernetes_host: str
    """API server URL as Vault reaches it."""
    kubernetes_ca_cert: str
    """PEM CA certificate of the API server."""
    token_reviewer_jwt: pulumi.Input[str] | None
    """JWT of the reviewer ServiceAccount (kept secret in state); None: Vault reviews each login
    with the login's own token (client-jwt mode), and never with a token of its own host."""
    issuer: str | None = None
    """Expected `iss` of ServiceAccount tokens; None leaves issuer validation off (Vault's default)."""


class KubernetesAuthConfig(pulumi.ComponentResource):
    """`vault write auth/<mount>/config kubernetes_host=... kubernetes_ca_cert=... token_reviewer_jwt=...`.

    Outputs:
        mount_path: the mount the config belongs to.
    """

    mount_path: pulumi.Output[str]

    def __init__(self, name: str, args: KubernetesAuthConfigArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:KubernetesAuthConfig", name, None, opts)
        reviewer = (
            {"token_reviewer_jwt": pulumi.Output.secret(args.token_reviewer_jwt)}
            if args.token_reviewer_jwt is not None
            # Not the token of a pod Vault may run in either: the client's own, always.
            else {"disable_local_ca_jwt": True}
        )
        config = vault.kubernetes.AuthBackendConfig(
            f"{name}-config",
            backend=args.mount_path,
            kubernetes_host=args.kubernetes_host,
            kubernetes_ca_cert=args.kubernetes_ca_cert,
            issuer=args.issuer,
            disable_iss_validation=args.issuer is None,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["tokenReviewerJwt"]),
            **reviewer,
        )
        self.mount_path = config.backend
        self.register_outputs({"mount_path": self.mount_path})
