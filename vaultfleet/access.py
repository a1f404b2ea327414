"""Who can do what: ServiceAccount -> role -> policy -> path -> capabilities, from the stack files."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vaultfleet.config import ClusterStack
from vaultfleet.policy import parse_rules, render_cluster_policies


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
        bodies = render_cluster_policies(stack, policy_dir)
        for role in stack.roles:
            for template in role.policies:
                name = stack.policy_name(template)
                for rule in parse_rules(bodies[name], name):
                    for ns in role.namespaces:
                        for sa in role.service_accounts:
                            rows.append(Grant(stack.name, stack.mount_path, ns, sa, role.name, name, rule.path, rule.capabilities))
    return rows
