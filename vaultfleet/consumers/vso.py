"""Vault Secrets Operator: VaultConnection + VaultAuth logging in with the role, a VaultStaticSecret of
the example secret, and a VaultDynamicSecret per database role."""

from __future__ import annotations

from vaultfleet.consumers.bindings import Binding, k8s_object
from vaultfleet.consumers.database import DATABASE_URL_KEY, DatabaseCredentials

# vault-secrets-operator 0.10.0 (tools/fetch-crds.sh) serves secrets.hashicorp.com/v1beta1.
VSO_API_VERSION = "secrets.hashicorp.com/v1beta1"


def vso_objects(binding: Binding, databases: list[DatabaseCredentials] = ()) -> list[dict]:
    """Vault Secrets Operator VaultConnection + VaultAuth, a VaultStaticSecret of the example secret,
    and a VaultDynamicSecret per database role."""
    objects = vso_auth(binding)
    auth = objects[-1]["metadata"]["name"]
    if binding.kv_key:
        secret = binding.kv_key.rsplit("/", 1)[1]
        objects.append(
            k8s_object(
                VSO_API_VERSION,
                "VaultStaticSecret",
                secret,
                binding.namespace,
                {
                    "vaultAuthRef": auth,
                    "mount": binding.kv_mount,
                    "type": "kv-v2",
                    "path": binding.kv_key,
                    "refreshAfter": "60s",
                    "destination": {"name": secret, "create": True},
                },
            )
        )
    for database in databases:
        # VSO renews the lease (at renewalPercent of it) and fetches new credentials when it can no
        # longer be renewed; the lease is revoked when the object is deleted.
        objects.append(
            k8s_object(
                VSO_API_VERSION,
                "VaultDynamicSecret",
                database.name,
                binding.namespace,
                {
                    "vaultAuthRef": auth,
                    "mount": database.mount,
                    "path": f"creds/{database.role}",  # relative to the mount
                    "revoke": True,
                    "destination": {
                        "name": database.name,
                        "create": True,
                        # Beside the username and password VSO writes: the URL (VSO's templates read .Secrets).
                        "transformation": {
                            "templates": {
                                DATABASE_URL_KEY: {
                                    "text": database.target.url('get .Secrets "username"', 'get .Secrets "password"'),
                                }
                            }
                        },
                    },
                },
            )
        )
    return objects


def vso_auth(binding: Binding) -> list[dict]:
    """Vault Secrets Operator VaultConnection + VaultAuth logging in with the binding's role."""
    connection = "vaultfleet"
    # The same fields under spec.kubernetes and spec.jwt: VSO requests the ServiceAccount's token for
    # the audiences and sends it to either login.
    login: dict = {"role": binding.role.name, "serviceAccount": binding.service_account}
    if binding.role.audience:
        login["audiences"] = [binding.role.audience]
    return [
        k8s_object(
            VSO_API_VERSION,
            "VaultConnection",
            connection,
            binding.namespace,
            {"address": binding.vault_address, "skipTLSVerify": False},
        ),
        # No auth/ prefix: VSO logs in at auth/<mount>/login.
        k8s_object(
            VSO_API_VERSION,
            "VaultAuth",
            f"vaultfleet-{binding.role.name}",
            binding.namespace,
            {
                "vaultConnectionRef": connection,
                "method": binding.auth_method,
                "mount": binding.mount_path,
                binding.auth_method: login,
            },
        ),
    ]
