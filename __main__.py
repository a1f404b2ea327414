"""The fleet's Pulumi program: the one in the installed vaultfleet package (vaultfleet.program.main),
run on this directory's Pulumi.yaml, stacks/ and policies/. Upgrade it by pinning another version."""

from vaultfleet.program.main import run

run()
