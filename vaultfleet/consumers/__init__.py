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

In jwt mode (cluster.authMode jwt) the mount is Vault's jwt auth method: the same mount, roles and
policies, but each consumer names the method and its token its own way (Binding.auth_method):

    Vault Agent injector  auth-type jwt, auth-config-path <token file>, auth-config-remove-jwt-after-reading false
    Vault Agent           auto_auth method type jwt, config.path <token file>, remove_jwt_after_reading false
    external-secrets      auth.jwt: path, role, kubernetesServiceAccountToken.serviceAccountRef (+ audiences)
    VSO                   VaultAuth spec.method jwt, spec.jwt: role, serviceAccount, audiences

A role granted `db-creds` reads dynamic PostgreSQL credentials (consumers.database resolves where
they connect); each consumer gets them its own way, as a PostgreSQL URL:

    Vault Agent injector  agent-inject-secret-db-<role> + a template    database/creds/<role>
    Vault Agent           a template                                    database/creds/<role>
    external-secrets      VaultDynamicSecret generator + ExternalSecret path: database/creds/<role>
    VSO                   VaultDynamicSecret                            mount: database, path: creds/<role>
"""
