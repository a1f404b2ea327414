"""Vault Agent injector: a strategic-merge patch for a Deployment's pod template (annotations,
ServiceAccount, a token volume for the role's audience)."""

from __future__ import annotations

from vaultfleet.consumers.bindings import Binding, SecretTemplate

INJECTOR = "vault.hashicorp.com/"
# Projected volume holding a token for the role's audience; the injector mounts it into its agent
# containers (agent-service-account-token-volume-name) and logs in with it.
TOKEN_VOLUME = "vault-token"
# Where the injector mounts that volume when no app container does (vault-k8s DefaultServiceAccountMount).
INJECTOR_TOKEN_DIR = "/var/run/secrets/vault.hashicorp.com/serviceaccount"
INJECTOR_TOKEN_FILE = f"{INJECTOR_TOKEN_DIR}/token"  # the volume's serviceAccountToken path
SECRETS_DIR = "/vault/secrets"  # where the injector's agent writes rendered secrets


def injector_patch(binding: Binding, templates: list[SecretTemplate]) -> dict:
    """A strategic-merge patch for a Deployment's pod template: annotations, ServiceAccount, token volume.

    Apply with `kubectl patch deployment NAME -n NAMESPACE --patch-file FILE`.
    """
    annotations = {
        f"{INJECTOR}agent-inject": "true",
        f"{INJECTOR}service": binding.vault_address,
        f"{INJECTOR}auth-path": binding.auth_path,  # the injector's agent wants the auth/ prefix
        f"{INJECTOR}role": binding.role.name,
    }
    if binding.auth_method == "jwt":
        # vault-k8s fills in the kubernetes method's token_path, which jwt ignores: the jwt method reads
        # `path` (auth-config-<key> becomes the method's <key>, '-' as '_'; the role is added). The
        # file is kubelet's projected token: the agent must not delete it after reading.
        annotations[f"{INJECTOR}auth-type"] = "jwt"
        annotations[f"{INJECTOR}auth-config-path"] = INJECTOR_TOKEN_FILE
        annotations[f"{INJECTOR}auth-config-remove-jwt-after-reading"] = "false"
    pod_spec: dict = {"serviceAccountName": binding.service_account}
    if binding.role.audience:
        # The pod's default token is for the API server's audience; the role would refuse it.
        annotations[f"{INJECTOR}agent-service-account-token-volume-name"] = TOKEN_VOLUME
        pod_spec["volumes"] = [_token_volume(binding.role.audience)]
    for t in templates:
        annotations[f"{INJECTOR}agent-inject-secret-{t.name}"] = t.vault_path
        annotations[f"{INJECTOR}agent-inject-template-{t.name}"] = t.contents
    if binding.database_creds:
        # The sidecar renews the leases while the pod runs; revoking its token on shutdown revokes
        # them too (they are the token's children), so the users are dropped with the pod.
        annotations[f"{INJECTOR}agent-revoke-on-shutdown"] = "true"
    return {"spec": {"template": {"metadata": {"annotations": annotations}, "spec": pod_spec}}}


def _token_volume(audience: str) -> dict:
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "sources": [{"serviceAccountToken": {"audience": audience, "expirationSeconds": 3600, "path": "token"}}]
        },
    }
