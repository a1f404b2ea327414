"""`vaultfleet verify`: a real login per role (logins.py) and, for a reviewer-token cluster, the
stored reviewer token checked the way Vault uses it (reviewer.py)."""
