# vaultfleet-previewer: what `pulumi preview --refresh` and `vaultfleet preview` of any stack read,
# and nothing else: no write anywhere, no secret (KV data, database credentials, a reviewer JWT
# (Vault never returns one)). The shared stack writes this policy; the pipeline's previewer
# identity (auth/${pipeline_mount}, vaultfleet:pipeline) gets it, or an admin gives a pull-request
# job a token with it: vault token create -policy=vaultfleet-previewer -ttl=15m
# It can read policy bodies of the fleet and mount settings: they are reviewed code, not secrets.

# Auth and secrets mounts: which exist, their type and tuning.
path "sys/auth" {
  capabilities = ["read"]
}

path "sys/auth/*" {
  capabilities = ["read"]
}

path "sys/mounts" {
  capabilities = ["read"]
}

path "sys/mounts/*" {
  capabilities = ["read"]
}

# The cluster mounts' config (API host, CA, issuer; never the reviewer JWT) and roles.
path "auth/${mount_prefix}-*" {
  capabilities = ["read", "list"]
}

# The pipeline's own jwt mount and its roles.
path "auth/${pipeline_mount}/config" {
  capabilities = ["read"]
}

path "auth/${pipeline_mount}/role/*" {
  capabilities = ["read", "list"]
}

# The fleet's policies (clusters' and vaultfleet's own).
path "sys/policy/${mount_prefix}-*" {
  capabilities = ["read"]
}

path "sys/policies/acl/${mount_prefix}-*" {
  capabilities = ["read"]
}

path "sys/policy/vaultfleet-*" {
  capabilities = ["read"]
}

path "sys/policies/acl/vaultfleet-*" {
  capabilities = ["read"]
}

# The database engine's connections (Vault never returns the password) and roles.
path "${database_mount}/config/*" {
  capabilities = ["read", "list"]
}

path "${database_mount}/roles/*" {
  capabilities = ["read", "list"]
}
