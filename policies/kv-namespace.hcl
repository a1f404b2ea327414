# Read the subtree of the login's own namespace: kv/data/clusters/<cluster>/namespaces/<namespace>/...
# One role bound to many namespaces (or `*`) gives each its own subtree and no other: Vault fills
# in the namespace from the ServiceAccount's login (the entity alias of this cluster's mount).
path "${kv_mount}/data/clusters/${cluster}/namespaces/{{identity.entity.aliases.${mount_accessor}.metadata.service_account_namespace}}/*" {
  capabilities = ["read"]
}

path "${kv_mount}/metadata/clusters/${cluster}/namespaces/{{identity.entity.aliases.${mount_accessor}.metadata.service_account_namespace}}/*" {
  capabilities = ["read", "list"]
}
