"""`vaultfleet adopt`: take over a cluster already wired to Vault (by hand or by Terraform) without
one failed login (docs/adopt.md).

observe.py reads what exists (the auth mount, its config and roles in Vault; the reviewer in the
cluster); describe.py turns it into the stack file that reproduces it and lists what the format
cannot carry; run.py writes the file and imports every object into the stacks, the way the
program registers it (program/adoption.py), so the first preview shows no changes.
"""
