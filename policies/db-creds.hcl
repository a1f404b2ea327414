# Dynamic database credentials: read them for each database role the cluster declares in
# vaultfleet:databaseRoles (this template is rendered once per role and merged), and renew or
# revoke the leases they come with (a sidecar renews while the pod runs and revokes on shutdown).
path "${database_mount}/creds/${database_role}" {
  capabilities = ["read"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/revoke" {
  capabilities = ["update"]
}
