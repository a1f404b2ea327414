"""What a cluster wired by hand keeps when vaultfleet takes it over (issue 27): its mount path, its
reviewer binding's name, policies attached by name, the mount's default token type. Each is
written where the rest of the cluster's objects are and pinned like them; the fleet's own names
stay out of reach."""

from __future__ import annotations

import pytest

from tests.harness import FILE, FLEET, accepted, cluster, cluster_values, problems, refused, role
from vaultfleet.render.applier import applier_rules, set_order
from vaultfleet.render.policy import render_previewer


def pins(stack) -> dict:
    return {path: allowed for path, _, allowed in applier_rules(stack, "https://a:6443", "PEM")}


def test_a_cluster_keeps_its_own_mount_path_and_its_policies_keep_the_fleets_names():
    stack = accepted(cluster(mountPath="kubernetes"))
    assert stack.mount_path == "kubernetes"
    assert stack.token_policies(stack.roles[0]) == ["k8s-lab-a-kv-read"]
    assert {"auth/kubernetes/config", "auth/kubernetes/role/app"} <= pins(stack).keys()
    assert not [p for p in pins(stack) if "k8s-lab-a" in p]


def test_the_previewer_reads_a_mount_outside_the_fleets_prefix_by_name(project):
    shared = accepted({"kind": "shared", **FLEET}, "vault")
    body = render_previewer(shared, project / "policies", cluster_mounts=["k8s-lab-a", "kubernetes"])
    assert 'path "auth/kubernetes/role/*"' in body and 'path "auth/kubernetes/config"' in body
    assert 'path "auth/kubernetes/*"' not in body  # nothing else under it (an approle mount's role-id)
    assert 'path "auth/k8s-lab-a' not in body  # under the prefix: the template's glob reads it


def test_existing_policies_are_attached_by_name_and_pinned_with_the_rendered_ones():
    stack = accepted(cluster_values(roles=[role(existingPolicies=["team-a-read", "shared.ro"])]))
    assert stack.token_policies(stack.roles[0]) == ["k8s-lab-a-kv-read", "team-a-read", "shared.ro"]
    assert pins(stack)["auth/k8s-lab-a/role/app"]["token_policies"] == [
        set_order(["k8s-lab-a-kv-read", "team-a-read", "shared.ro"])
    ]
    # A role may attach only existing policies.
    only = accepted(cluster_values(roles=[role(policies=[], existingPolicies=["team-a-read"])]))
    assert only.token_policies(only.roles[0]) == ["team-a-read"]


ITEM = "vaultfleet:roles[0].existingPolicies[0]"


@pytest.mark.parametrize(
    ("name", "field", "fragment"),
    [
        ("root", ITEM, "'root' is Vault's unlimited policy"),
        # The stack-level check names the role and key in its message.
        (
            "k8s-lab-b-kv-read",
            "vaultfleet",
            "roles[0].existingPolicies: 'k8s-lab-b-kv-read' is a name vaultfleet manages",
        ),
        ("vaultfleet-apply-lab-a", "vaultfleet", "'vaultfleet-apply-lab-a' is a name vaultfleet manages"),
        ("Team A", ITEM, "must be a Vault policy name"),
    ],
)
def test_an_existing_policy_may_not_be_root_nor_one_of_the_fleets(name, field, fragment):
    refused(cluster_values(roles=[role(existingPolicies=[name])]), field, fragment)


def test_a_role_attaches_at_least_one_policy():
    refused(
        cluster_values(roles=[role(policies=[])]),
        "vaultfleet:roles[0]",
        "a role attaches at least one policy (policies or existingPolicies)",
    )


def test_the_mounts_default_token_type_is_kept_and_pinned_and_batch_is_refused():
    stack = accepted(cluster_values(roles=[role(tokenType="default")]))
    assert pins(stack)["auth/k8s-lab-a/role/app"]["token_type"] == ["default"]
    assert pins(accepted(cluster_values()))["auth/k8s-lab-a/role/app"]["token_type"] == ["service"]
    found = problems(cluster_values(roles=[role(tokenType="batch")]))
    assert any(fld == "vaultfleet:roles[0].tokenType" for _, fld, _ in found), found


@pytest.mark.parametrize("path", ["token", "Kube", "a/b"])
def test_a_mount_path_vault_keeps_or_cannot_hold_is_refused(path):
    found = problems(cluster(mountPath=path))
    assert any(f == FILE and fld == "vaultfleet:cluster.mountPath" for f, fld, _ in found), found


def test_a_file_with_its_own_prefix_reaches_no_other_clusters_policies():
    from vaultfleet.stackfile.fleet import fleet_conflicts

    lab_b = accepted(cluster_values(), "lab-b")
    # lab-a keeps its mount under another prefix and names lab-b's policy as existing.
    attacker = accepted(
        cluster_values(
            mountPrefix="team",
            cluster={"kubeContext": "lab-a", "mountPath": "k8s-lab-a"},
            roles=[role(existingPolicies=["k8s-lab-b-kv-write"])],
        )
    )
    assert attacker.token_policies(attacker.roles[0]) == ["team-lab-a-kv-read", "k8s-lab-b-kv-write"]  # per file
    (problem,) = fleet_conflicts([attacker, lab_b], None)
    assert problem[:2] == (FILE, "vaultfleet:roles[0].existingPolicies[0]")
    assert "'k8s-lab-b-kv-write' is a name the fleet manages" in problem[2]


def test_two_clusters_rendering_one_policy_name_are_refused():
    from vaultfleet.stackfile.fleet import fleet_conflicts

    lab_a = accepted(cluster_values())
    # Cluster `a` under prefix k8s-lab renders k8s-lab-a-kv-read: lab-a's policy.
    a = accepted(cluster_values(mountPrefix="k8s-lab", cluster={"kubeContext": "a", "mountPath": "team-a"}), "a")
    problems = fleet_conflicts([lab_a, a], None)
    assert {(p[1], p[2]) for p in problems} >= {
        ("vaultfleet:policies[0]", "renders policy 'k8s-lab-a-kv-read', which stack a renders too"),
        ("vaultfleet:policies[0]", "renders policy 'k8s-lab-a-kv-read', which stack lab-a renders too"),
    }
