"""Vault Agent: a configuration (HCL's JSON form) with kubernetes auto-auth and the role's templates."""

from __future__ import annotations

from vaultfleet.consumers.bindings import Binding, SecretTemplate
from vaultfleet.consumers.injector import INJECTOR_TOKEN_DIR, SECRETS_DIR


def agent_config(
    binding: Binding, templates: list[SecretTemplate], token_path: str | None = None, destination_dir: str = SECRETS_DIR
) -> dict:
    """A Vault Agent configuration (HCL's JSON form): kubernetes auto-auth and the role's templates.

    It runs as a sidecar (renewing leases); `-exit-after-auth` makes it render once and exit, as an
    init container. It listens on nothing. `token_path` must hold a token for the role's audience.
    """
    token_path = token_path or (f"{INJECTOR_TOKEN_DIR}/token" if binding.role.audience else None)
    method_config = {"role": binding.role.name}
    if token_path:
        method_config["token_path"] = token_path
    return {
        "vault": {"address": binding.vault_address},
        "auto_auth": {
            # The agent wants the auth/ prefix (its default is auth/kubernetes).
            # exit_on_err: a refused login stops the agent (the pod shows it) instead of retrying unseen.
            "method": [
                {"type": "kubernetes", "mount_path": binding.auth_path, "exit_on_err": True, "config": method_config}
            ],
        },
        # Likewise a template it cannot render (denied, missing) once its retries are spent.
        "template_config": {"exit_on_retry_failure": True},
        "template": [{"destination": f"{destination_dir}/{t.name}", "contents": t.contents} for t in templates],
    }
