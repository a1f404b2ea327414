"""What goes to Vault, rendered from validated stack files: policy bodies (policy.py), the applier
policy that pins a cluster's reviewed objects (applier.py), jwt mode's request bodies
(jwt_roles.py) and where Vault reaches an API server (endpoint.py). Pure: no Vault, no engine."""
