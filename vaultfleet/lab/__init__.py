"""The local lab: a Vault-compatible dev server and Kubernetes control planes on 127.0.0.1."""
