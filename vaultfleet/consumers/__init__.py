"""Consumer configuration that matches the mount and roles vaultfleet creates, from the stack file.

No Vault and no cluster: everything comes from the validated stack config and the rendered
policies. Each consumer spells the auth mount and the KV path its own way, which is where
hand-written configurations go wrong; for the mount k8s-lab-a and the secret clusters/lab-a/config
of the KV v2 mount kv:

    Vault Agent injector  vault.hashicorp.com/auth-path   auth/k8s-lab-a   secret kv/data/clusters/lab-a/config
    Vault Agent           auto_auth method mount_path     auth/k8s-lab-a   template kv/data/clusters/lab-a/config
    external-secrets      auth.kubernetes.mountPath       k8s-lab-a        path: kv, version: v2, key clusters/lab-a/config
    VSO                   VaultAuth spec.mount            k8s-lab-a        mount: kv, type: kv-v2, path clusters/lab-a/config

(external-secrets and VSO put `auth/` in front themselves; the injector and the agent take the
path as written.) A role with an audience accepts only tokens minted for it, so each consumer is
told to request one: a projected ServiceAccount token for the injector,
serviceAccountRef.audiences for external-secrets, kubernetes.audiences for VSO.

A role granted `db-creds` reads dynamic PostgreSQL credentials (consumers.database resolves where
they connect); each consumer gets them its own way, as a PostgreSQL URL:

    Vault Agent injector  agent-inject-secret-db-<role> + a template    database/creds/<role>
    Vault Agent           a template                                    database/creds/<role>
    external-secrets      VaultDynamicSecret generator + ExternalSecret path: database/creds/<role>
    VSO                   VaultDynamicSecret                            mount: database, path: creds/<role>
"""
