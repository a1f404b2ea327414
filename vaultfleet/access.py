"""Who can do what: ServiceAccount -> role -> policy -> path -> capabilities, from the stack files;
and the pipeline's identities (a CI job's claims -> role -> policy -> path) of the shared stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vaultfleet.render.policy import (
    cluster_policy_rules,
    for_service_account,
    parse_rules,
    previewer_grants,
    render_previewer,
)
from vaultfleet.stackfile.pipeline import identity_policies, preview_grants_name
from vaultfleet.stackfile.schema import ClusterStack, SharedStack


@dataclass(frozen=True)
class _Unmanaged:
    path: str = "(body not managed by vaultfleet: see the policy in Vault)"
    capabilities: tuple[str, ...] = ()


UNMANAGED = _Unmanaged()


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
    login: str = "reviewer-token"
    """How Vault checks the login: the cluster's authMode, or `pipeline` (a CI job's OIDC token)."""

    def to_json(self) -> dict:
        return {**asdict(self), "capabilities": list(self.capabilities)}


def grants(stacks: list, policy_dir: Path, clusters: list[ClusterStack] | None = None) -> list[Grant]:
    """Rows for the given stacks; `clusters`: the fleet's cluster stacks, whose applier policies the
    pipeline's applier holds (default: the cluster stacks among `stacks`)."""
    clusters = clusters if clusters is not None else [s for s in stacks if isinstance(s, ClusterStack)]
    rows = []
    for stack in stacks:
        if isinstance(stack, SharedStack):
            rows += pipeline_grants(stack, policy_dir, clusters)
            continue
        rules = cluster_policy_rules(stack, policy_dir)
        for role in stack.roles:
            for name in stack.token_policies(role):
                # A policy attached as it is in Vault (existingPolicies): its body is not here.
                for rule in rules.get(name, [UNMANAGED]):
                    for ns in role.namespaces:
                        for sa in role.service_accounts:
                            # Templated paths differ per ServiceAccount: show each one's own.
                            path = for_service_account(rule.path, ns, sa)
                            rows.append(
                                Grant(
                                    stack.name,
                                    stack.mount_path,
                                    ns,
                                    sa,
                                    role.name,
                                    name,
                                    path,
                                    rule.capabilities,
                                    stack.cluster.auth_mode,
                                )
                            )
    return rows


def pipeline_grants(stack: SharedStack, policy_dir: Path, clusters: list[ClusterStack]) -> list[Grant]:
    """A CI job's identity as a grant row: namespace `ci`, the claims its token needs in place of a
    ServiceAccount. The policies are the shared stack's own (one applier policy per cluster)."""
    from vaultfleet.render.applier import applier_paths, applier_policy_name

    pipeline = stack.pipeline
    if pipeline is None:
        return []
    # Rendered as the program renders them (program/args.py): in the shared layout each cluster's
    # state key and mount end the previewer policy; per-cluster, each is its cluster's own policy
    # vaultfleet-preview-<cluster> (access_args), which the previewer holds too.
    per_cluster = stack.fleet.cluster_access == "per-cluster"
    previewer = render_previewer(
        stack,
        policy_dir,
        state_keys=[] if per_cluster else [c.state_key for c in clusters if c.state_key],
        cluster_mounts=[] if per_cluster else [c.mount_path for c in clusters],
    )
    rules = {"vaultfleet-previewer": [(r.path, r.capabilities) for r in parse_rules(previewer, "")]}
    for cluster in clusters:
        rules[applier_policy_name(cluster.name)] = [(path, tuple(caps)) for path, caps in applier_paths(cluster)]
        if per_cluster:
            grants = previewer_grants([cluster.mount_path], [cluster.state_key] if cluster.state_key else [])
            rules[preview_grants_name(cluster.name)] = [(r.path, r.capabilities) for r in parse_rules(grants, "")]
    names = [c.name for c in clusters]
    rows = []
    for identity, claims in (("previewer", pipeline.previewer), ("applier", pipeline.applier)):
        who = ",".join(f"{k}={v}" for k, v in sorted(claims.items()))
        for policy in identity_policies(identity, names, per_cluster):
            for path, caps in rules.get(policy, []):
                rows.append(
                    Grant(stack.name, pipeline.mount, "ci", who, identity, policy, path, tuple(caps), "pipeline")
                )
    return rows
