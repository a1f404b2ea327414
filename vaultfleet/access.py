"""Who can do what: ServiceAccount -> role -> policy -> path -> capabilities, from the stack files."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vaultfleet.project.policy import cluster_policy_rules, for_service_account
from vaultfleet.project.schema import ClusterStack


@dataclass(frozen=True)
class Grant:
    cluster: str
    mount: str
    namespace: str
    service_account: str
    role: str
    policy: str
    path: str
    capabilities: tuple[str, ...]

    def to_json(self) -> dict:
        return {**asdict(self), "capabilities": list(self.capabilities)}


def grants(stacks: list, policy_dir: Path) -> list[Grant]:
    rows = []
    for stack in stacks:
        if not isinstance(stack, ClusterStack):
            continue
        rules = cluster_policy_rules(stack, policy_dir)
        for role in stack.roles:
            for template in role.policies:
                name = stack.policy_name(template)
                for rule in rules[name]:
                    for ns in role.namespaces:
                        for sa in role.service_accounts:
                            # Templated paths differ per ServiceAccount: show each one's own.
                            path = for_service_account(rule.path, ns, sa)
                            rows.append(
                                Grant(stack.name, stack.mount_path, ns, sa, role.name, name, path, rule.capabilities)
                            )
    return rows
