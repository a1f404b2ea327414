# Read the cluster's own subtree of the fleet's KV v2 mount: kv/data/clusters/<cluster>/...
path "${kv_mount}/data/clusters/${cluster}/*" {
  capabilities = ["read"]
}

path "${kv_mount}/metadata/clusters/${cluster}/*" {
  capabilities = ["read", "list"]
}
