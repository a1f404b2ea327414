"""external-secrets: a SecretStore (or ClusterSecretStore) logging in with the role, an ExternalSecret
of the example secret, and a VaultDynamicSecret generator per database role."""

from __future__ import annotations

from vaultfleet.consumers.bindings import Binding, k8s_object
from vaultfleet.consumers.database import DATABASE_URL_KEY, DatabaseCredentials

# external-secrets 1.3.2 (tools/fetch-crds.sh) serves external-secrets.io/v1 only: v1beta1 stopped
# being served in 0.17.
ESO_API_VERSION = "external-secrets.io/v1"
ESO_GENERATOR_API_VERSION = "generators.external-secrets.io/v1alpha1"  # the only version 1.3.2 serves


def eso_objects(binding: Binding, cluster_store: bool = False, databases: list[DatabaseCredentials] = ()) -> list[dict]:
    """An external-secrets SecretStore (or ClusterSecretStore), an ExternalSecret of the example secret,
    and per database role a VaultDynamicSecret generator with the ExternalSecret that runs it."""
    store = eso_store(binding, cluster_store)
    objects = [store]
    if binding.kv_key:
        secret = binding.kv_key.rsplit("/", 1)[1]
        objects.append(
            k8s_object(
                ESO_API_VERSION,
                "ExternalSecret",
                secret,
                binding.namespace,
                {
                    "refreshInterval": "1h",
                    "secretStoreRef": {"kind": store["kind"], "name": store["metadata"]["name"]},
                    "target": {"name": secret},
                    # The key inside the mount, without data/: version v2 adds it.
                    "dataFrom": [{"extract": {"key": binding.kv_key}}],
                },
            )
        )
    for database in databases:
        objects += eso_database(binding, database)
    return objects


def eso_database(binding: Binding, database: DatabaseCredentials) -> list[dict]:
    """A VaultDynamicSecret generator for the role's credentials and an ExternalSecret running it.

    A SecretStore reads static secrets only; dynamic ones come from a generator, which logs in
    itself (same mount, role, ServiceAccount). external-secrets neither renews nor revokes the
    lease: each refresh issues new credentials and the old ones lapse with their lease, so the
    refresh comes at half the lease and workloads must pick up the changed Secret.
    """
    generator = k8s_object(
        ESO_GENERATOR_API_VERSION,
        "VaultDynamicSecret",
        database.name,
        binding.namespace,
        {
            "path": database.path,  # the whole Vault path, mount included
            "method": "GET",
            "resultType": "Data",  # username, password
            "provider": {"server": binding.vault_address, "auth": _eso_auth(binding)},
        },
    )
    external = k8s_object(
        ESO_API_VERSION,
        "ExternalSecret",
        database.name,
        binding.namespace,
        {
            "refreshInterval": f"{max(database.default_ttl // 2, 1)}s",
            "target": {
                "name": database.name,
                # Merge: the Secret keeps username and password and gains the URL.
                "template": {
                    "engineVersion": "v2",
                    "mergePolicy": "Merge",
                    "data": {DATABASE_URL_KEY: database.target.url(".username", ".password")},
                },
            },
            "dataFrom": [
                {
                    "sourceRef": {
                        "generatorRef": {
                            "apiVersion": ESO_GENERATOR_API_VERSION,
                            "kind": "VaultDynamicSecret",
                            "name": database.name,
                        }
                    }
                }
            ],
        },
    )
    return [generator, external]


def _eso_auth(binding: Binding, cluster_store: bool = False) -> dict:
    """`auth` of a store or generator: external-secrets requests the ServiceAccount's token itself."""
    account: dict = {"name": binding.service_account}
    if binding.role.audience:
        account["audiences"] = [binding.role.audience]
    if cluster_store:
        account["namespace"] = binding.namespace
    if binding.auth_method == "jwt":
        # No auth/ prefix: external-secrets logs in at auth/<path>/login. (1.3.2 also adds the audience
        # `vault` unless the deprecated kubernetesServiceAccountToken.audiences says otherwise; Vault
        # accepts a token any of whose audiences the role binds.)
        return {
            "jwt": {
                "path": binding.mount_path,
                "role": binding.role.name,
                "kubernetesServiceAccountToken": {"serviceAccountRef": account},
            }
        }
    # No auth/ prefix: external-secrets logs in at auth/<mountPath>/login.
    return {"kubernetes": {"mountPath": binding.mount_path, "role": binding.role.name, "serviceAccountRef": account}}


def eso_store(binding: Binding, cluster_store: bool = False) -> dict:
    """An external-secrets SecretStore (or ClusterSecretStore) logging in with the binding's role."""
    provider = {
        "vault": {
            "server": binding.vault_address,
            "path": binding.kv_mount,
            "version": "v2",
            "auth": _eso_auth(binding, cluster_store),
        }
    }
    if cluster_store:
        name = f"vaultfleet-{binding.role.name}-{binding.namespace}"
        # Only the role's namespace may use a store that logs in as one of its ServiceAccounts.
        store = k8s_object(
            ESO_API_VERSION,
            "ClusterSecretStore",
            name,
            None,
            {"provider": provider, "conditions": [{"namespaces": [binding.namespace]}]},
        )
    else:
        name = f"vaultfleet-{binding.role.name}"
        store = k8s_object(ESO_API_VERSION, "SecretStore", name, binding.namespace, {"provider": provider})
    return store
