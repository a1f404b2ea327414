"""Vault Agent: a configuration (HCL's JSON form) with kubernetes or jwt auto-auth and the role's templates."""

from __future__ import annotations

from vaultfleet.consumers.bindings import Binding, SecretTemplate
from vaultfleet.consumers.injector import INJECTOR_TOKEN_FILE, SECRETS_DIR


def agent_config(
    binding: Binding, templates: list[SecretTemplate], token_path: str | None = None, destination_dir: str = SECRETS_DIR
) -> dict:
    """A Vault Agent configuration (HCL's JSON form): auto-auth at the binding's mount and the role's templates.

    It runs as a sidecar (renewing leases); `-exit-after-auth` makes it render once and exit, as an
    init container. It listens on nothing. `token_path` must hold a token for the role's audience
    (the kubernetes method's `token_path`, the jwt method's `path`).
    """
    token_path = token_path or (INJECTOR_TOKEN_FILE if binding.role.audience else None)
    method_config: dict = {"role": binding.role.name}
    if binding.auth_method == "jwt":
        # jwt mode requires an audience, so there is always a file; by default the agent deletes the
        # file it read, which would fail on (or strip) a projected token that kubelet keeps refreshing.
        method_config.update(path=token_path, remove_jwt_after_reading=False)
    elif token_path:
        method_config["token_path"] = token_path
    return {
        "vault": {"address": binding.vault_address},
        "auto_auth": {
            # The agent wants the auth/ prefix (its default is auth/<type>).
            # exit_on_err: a refused login stops the agent (the pod shows it) instead of retrying unseen.
            "method": [
                {
                    "type": binding.auth_method,
                    "mount_path": binding.auth_path,
                    "exit_on_err": True,
                    "config": method_config,
                }
            ],
        },
        # Likewise a template it cannot render (denied, missing) once its retries are spent.
        "template_config": {"exit_on_retry_failure": True},
        "template": [{"destination": f"{destination_dir}/{t.name}", "contents": t.contents} for t in templates],
    }
