"""The local lab: a Vault-compatible server, PostgreSQL and Kubernetes control planes on 127.0.0.1.

lab.py starts and stops the parts (record.py, vault.py, kubernetes.py, postgres.py); docs/lab.md.
"""
