"""The previewer's read-only grant in a cluster (`vaultfleet:cluster.previewerGroup`), without
servers: `get` by name on exactly the objects the cluster's stack makes, the reviewer's Secret only
in its own namespace; a built-in group is refused."""

from __future__ import annotations

import pulumi
import pytest

from tests.harness import ComponentTest, cluster_values
from vaultfleet.stackfile.schema import ConfigError, parse


@pytest.mark.parametrize("group", ["system:authenticated", "system:masters", "", "two words"])
def test_a_group_that_is_not_the_previewers_alone_is_refused(group):
    values = cluster_values()
    values["cluster"]["previewerGroup"] = group
    with pytest.raises(ConfigError) as info:
        parse(values, "lab-a", "stacks/Pulumi.lab-a.yaml")
    assert info.value.problems[0][1] == "vaultfleet:cluster.previewerGroup"


class TestClusterPreviewer(ComponentTest):
    def test_get_by_name_on_the_stacks_objects_only(self):
        from components import ClusterPreviewer
        from components.cluster import ClusterOnboarding, ClusterOnboardingArgs
        from components.consumer_objects import CustomObject

        args = ClusterOnboardingArgs(
            cluster="lab-a",
            mount_path="k8s-lab-a",
            kubernetes_host="https://a:6443",
            kubernetes_ca_cert="PEM",
            policy_names=[],
            roles=[],
            previewer_group="vaultfleet:previewers",
            consumer_objects=[CustomObject("external-secrets.io/v1", "SecretStore", "vaultfleet-app", "app", {})],
        )

        @pulumi.runtime.test
        def program():
            return ClusterPreviewer("p", ClusterOnboarding._previewer_args(args)).bindings

        program()  # returns once every registration has finished: check them all
        (cluster_role,) = self.mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
        (role,) = self.mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
        for rules in (cluster_role.inputs["rules"], role.inputs["rules"]):
            assert all(r["verbs"] == ["get"] and r["resourceNames"] for r in rules), rules
        granted = {(r["apiGroups"][0], r["resources"][0]): r["resourceNames"] for r in cluster_role.inputs["rules"]}
        assert granted[("external-secrets.io", "secretstores")] == ["vaultfleet-app"]
        assert granted[("rbac.authorization.k8s.io", "clusterrolebindings")] == [
            "vault-auth-kube-system-auth-delegator",
            "vaultfleet-previewer",
        ]
        assert ("", "secrets") not in granted  # a Secret is read only in the reviewer's namespace
        assert role.inputs["metadata"]["namespace"] == "kube-system"
        in_namespace = {(r["apiGroups"][0], r["resources"][0]): r["resourceNames"] for r in role.inputs["rules"]}
        assert in_namespace[("", "secrets")] == ["vault-auth-token"]
        bindings = self.mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
        bindings += self.mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
        assert {s["name"] for b in bindings for s in b.inputs["subjects"]} == {"vaultfleet:previewers"}
