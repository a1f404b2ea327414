"""`release`'s state edit: exactly one cluster's objects leave the shared stack's state, and what
stays no longer depends on them (the engine would refuse the import otherwise)."""

from __future__ import annotations

from typer.testing import CliRunner

from vaultfleet.cli import app
from vaultfleet.release import without_cluster

SHARED = "urn:pulumi:vault::vaultfleet::vaultfleet:vault:SharedVault"
ACCESS = f"{SHARED}$vaultfleet:vault:ClusterAccess"


def resource(urn: str, type_: str, parent: str | None = None, **extra) -> dict:
    return {"urn": urn, "type": type_, **({"parent": parent} if parent else {}), **extra}


def deployment() -> dict:
    a, b = f"{ACCESS}::fleet-cluster-lab-a", f"{ACCESS}::fleet-cluster-lab-ab"
    mount_a = f"{ACCESS}$vaultfleet:vault:KubernetesAuthMount::fleet-cluster-lab-a-auth"
    backend_a = (
        f"{ACCESS}$vaultfleet:vault:KubernetesAuthMount$vault:index/authBackend:AuthBackend::fleet-cluster-lab-a-auth"
    )
    return {
        "version": 3,
        "deployment": {
            "manifest": {},
            "resources": [
                resource("urn:pulumi:vault::vaultfleet::pulumi:pulumi:Stack::vaultfleet-vault", "pulumi:pulumi:Stack"),
                resource(f"{SHARED}::fleet", "vaultfleet:vault:SharedVault"),
                resource(a, "vaultfleet:vault:ClusterAccess", f"{SHARED}::fleet"),
                resource(mount_a, "vaultfleet:vault:KubernetesAuthMount", a),
                resource(backend_a, "vault:index/authBackend:AuthBackend", mount_a),
                # A cluster whose name starts with the released one's stays.
                resource(b, "vaultfleet:vault:ClusterAccess", f"{SHARED}::fleet"),
                resource(
                    f"{SHARED}$vault:index/policy:Policy::fleet-previewer",
                    "vault:index/policy:Policy",
                    f"{SHARED}::fleet",
                    dependencies=[a, b],
                    propertyDependencies={"policy": [backend_a, b]},
                    deletedWith=a,
                ),
            ],
        },
    }


def test_the_cluster_and_its_descendants_leave_and_nothing_else():
    before = deployment()
    edited, removed = without_cluster(before, "lab-a")
    assert [(u.rsplit("::", 2)[1].rsplit("$", 1)[-1], u.rsplit("::", 1)[1]) for u in removed] == [
        ("vaultfleet:vault:ClusterAccess", "fleet-cluster-lab-a"),
        ("vaultfleet:vault:KubernetesAuthMount", "fleet-cluster-lab-a-auth"),
        ("vault:index/authBackend:AuthBackend", "fleet-cluster-lab-a-auth"),
    ]
    kept = {r["urn"].rsplit("::", 1)[1]: r for r in edited["deployment"]["resources"]}
    assert set(kept) == {"vaultfleet-vault", "fleet", "fleet-cluster-lab-ab", "fleet-previewer"}
    previewer = kept["fleet-previewer"]
    assert previewer["dependencies"] == [f"{ACCESS}::fleet-cluster-lab-ab"]
    assert previewer["propertyDependencies"] == {"policy": [f"{ACCESS}::fleet-cluster-lab-ab"]}
    assert "deletedWith" not in previewer
    assert len(before["deployment"]["resources"]) == 7  # the export itself is not changed


def test_a_cluster_not_in_the_state_leaves_it_as_it_was():
    before = deployment()
    edited, removed = without_cluster(before, "lab-z")
    assert (edited, removed) == (before, [])


def test_release_refuses_the_shared_stack_and_an_unknown_stack_before_touching_anything(project):
    runner = CliRunner()
    for name, reason in (("vault", "is the shared stack"), ("lab-z", "no stack file for lab-z")):
        result = runner.invoke(app, ["release", name, "--yes"])
        assert result.exit_code == 2, result.output
        assert "release refused, nothing changed" in result.output and reason in result.output
    assert (project / "stacks" / "Pulumi.vault.yaml").exists()
