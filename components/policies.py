"""The cluster's Vault policies, rendered from policies/*.hcl before the program reaches here."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_vault as vault


@dataclass
class ClusterPoliciesArgs:
    policies: dict[str, pulumi.Input[str]]
    """Policy name -> rendered, already checked HCL body (an Output when it names the mount's
    accessor, known only once the mount exists). Names carry the cluster's mount path."""


class ClusterPolicies(pulumi.ComponentResource):
    """One `vault.Policy` per rendered template.

    Outputs:
        names: the policy names, in declaration order.
    """

    names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ClusterPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vaultfleet:vault:ClusterPolicies", name, None, opts)
        created = [
            vault.Policy(
                f"{name}-{policy_name}", name=policy_name, policy=body, opts=pulumi.ResourceOptions(parent=self)
            )
            for policy_name, body in args.policies.items()
        ]
        self.names = pulumi.Output.all(*[p.name for p in created])
        self.register_outputs({"names": self.names})
