"""The identity Vault uses to review ServiceAccount tokens: `vault-auth` in the cluster."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass
class ReviewerIdentityArgs:
    namespace: str
    """Namespace of the reviewer ServiceAccount (it must exist; kube-system by default)."""
    service_account_name: str = "vault-auth"
    """Name of the reviewer ServiceAccount."""
    binding_name: str | None = None
    """ClusterRoleBinding name; default `<service account>-<namespace>-auth-delegator`."""
    token_secret_name: str | None = None
    """The token Secret's name; default `<service account>-token`. Renaming it replaces the Secret
    create-before-delete: the new token reaches Vault before the old one stops working."""


def binding_name(service_account: str, namespace: str) -> str:
    """The default name of the reviewer's ClusterRoleBinding to system:auth-delegator."""
    return f"{service_account}-{namespace}-auth-delegator"


class ReviewerIdentity(pulumi.ComponentResource):
    """ServiceAccount + ClusterRoleBinding to `system:auth-delegator` + a long-lived token Secret.

    Outputs:
        service_account_name: the ServiceAccount's name.
        token: the reviewer JWT (secret), filled in by the cluster's token controller.
    """

    service_account_name: pulumi.Output[str]
    token: pulumi.Output[str]

    def __init__(self, name: str, args: ReviewerIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:cluster:ReviewerIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": args.service_account_name, "namespace": args.namespace},
            opts=child,
        )
        # system:auth-delegator lets the reviewer call TokenReview (and SubjectAccessReview).
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-auth-delegator",
            metadata={"name": args.binding_name or binding_name(args.service_account_name, args.namespace)},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            subjects=[{"kind": "ServiceAccount", "name": args.service_account_name, "namespace": args.namespace}],
            opts=child,
        )
        # Clusters >= 1.24 create no token Secret by themselves; the token controller fills this one
        # asynchronously, so the provider waits until .data.token exists before Vault is configured.
        secret = k8s.core.v1.Secret(
            f"{name}-token",
            metadata={
                "name": args.token_secret_name or f"{args.service_account_name}-token",
                "namespace": args.namespace,
                "annotations": {
                    "kubernetes.io/service-account.name": args.service_account_name,
                    "pulumi.com/waitFor": "jsonpath={.data.token}",
                },
            },
            type="kubernetes.io/service-account-token",
            # The token controller owns .data; the program never sets it. A Secret adopted from a
            # cluster wired by hand carries its data into the state's inputs (an import records the
            # live object), and a diff on it would replace the Secret: a new token Vault lacks.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account], ignore_changes=["data"]),
        )

        self.service_account_name = account.metadata.apply(lambda m: m["name"])
        self.token = pulumi.Output.secret(secret.data.apply(lambda d: base64.b64decode(d["token"]).decode()))
        self.register_outputs({"service_account_name": self.service_account_name, "token": self.token})


CLIENT_REVIEW_BINDING = "vaultfleet-client-token-review"


@dataclass
class ClientTokenReviewArgs:
    service_accounts: list[tuple[str, str]]
    """(namespace, name) of every ServiceAccount the cluster's roles bind."""
    binding_name: str = CLIENT_REVIEW_BINDING


class ClientTokenReview(pulumi.ComponentResource):
    """client-jwt mode: Vault reviews each login with the login's own token, so each ServiceAccount
    a role binds (and only those) may call TokenReview: one ClusterRoleBinding to
    system:auth-delegator naming them. No reviewer ServiceAccount, no stored token.

    Outputs:
        binding_name: the ClusterRoleBinding's name.
    """

    binding_name: pulumi.Output[str]

    def __init__(self, name: str, args: ClientTokenReviewArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:cluster:ClientTokenReview", name, None, opts)
        binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-auth-delegator",
            metadata={"name": args.binding_name},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            subjects=[{"kind": "ServiceAccount", "name": sa, "namespace": ns} for ns, sa in args.service_accounts],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.binding_name = binding.metadata.apply(lambda m: m["name"])
        self.register_outputs({"binding_name": self.binding_name})
