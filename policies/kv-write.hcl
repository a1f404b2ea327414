# Read and write the cluster's own subtree of the fleet's KV v2 mount (e.g. for a CI deployer).
path "${kv_mount}/data/clusters/${cluster}/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}

path "${kv_mount}/metadata/clusters/${cluster}/*" {
  capabilities = ["read", "list", "delete"]
}
