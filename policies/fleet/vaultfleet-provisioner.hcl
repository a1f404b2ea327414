# vaultfleet-provisioner: what the token running `pulumi up` / `vaultfleet up` for cluster stacks
# needs. It manages objects named for the fleet (${mount_prefix}-*) and has no path to a secret
# engine's data. The shared stack writes this policy, so the shared stack itself runs with an
# admin token once; cluster stacks then run with a token holding only this policy:
#   vault token create -policy=vaultfleet-provisioner -ttl=1h
# KNOWN GAP (docs/pipeline.md): it can write any ${mount_prefix}-* policy body and attach any
# existing policy to a role at a fleet mount, so whoever holds it can grant a workload (and so
# themselves) anything: it is as strong as an admin token in two steps. Guard it as one until the
# per-cluster applier replaces it.

# Enable, tune, read and disable the per-cluster kubernetes auth mounts (sys/auth needs sudo).
path "sys/auth/${mount_prefix}-*" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}

# List auth mounts (the provider reads the mount's accessor and settings from here).
path "sys/auth" {
  capabilities = ["read"]
}

path "sys/mounts/auth/${mount_prefix}-*" {
  capabilities = ["read", "update"]
}

# The mounts' config (API host, CA, reviewer JWT) and roles. Vault globs `*` only at the end of a
# path, so one rule covers auth/<mount>/config and auth/<mount>/role/<name> of every fleet mount.
path "auth/${mount_prefix}-*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# The clusters' policies, all named ${mount_prefix}-<cluster>-<template>.
path "sys/policies/acl/${mount_prefix}-*" {
  capabilities = ["create", "read", "update", "delete"]
}

path "sys/policy/${mount_prefix}-*" {
  capabilities = ["create", "read", "update", "delete"]
}

# Answer `vaultfleet access` / `verify` checks of what a policy grants.
path "sys/capabilities" {
  capabilities = ["update"]
}
