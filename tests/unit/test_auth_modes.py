"""`vaultfleet:cluster.authMode` without servers: client-jwt refuses wildcard bindings (file and
field), pins "no reviewer JWT" in the applier policy, and makes no reviewer identity: one
auth-delegator binding naming exactly the roles' ServiceAccounts."""

from __future__ import annotations

import dataclasses

import pulumi
import pytest

from tests.unit.conftest import ComponentTest, cluster_values, role
from tests.unit.test_components_cluster import cluster_args
from vaultfleet.project.applier import applier_rules
from vaultfleet.project.schema import ConfigError, parse


def client_jwt(**role_fields):
    values = cluster_values(roles=[role(**role_fields)])
    values["cluster"]["authMode"] = "client-jwt"
    return values


@pytest.mark.parametrize("field", ["serviceAccounts", "namespaces"])
def test_client_jwt_refuses_a_wildcard_binding(field):
    with pytest.raises(ConfigError) as info:
        parse(client_jwt(**{field: ["*"]}), "lab-a", "stacks/Pulumi.lab-a.yaml")
    ((source, _, message),) = info.value.problems
    assert source == "stacks/Pulumi.lab-a.yaml"
    assert f"roles[0].{field}" in message and "every workload" in message


def test_an_unknown_mode_is_refused_naming_the_field():
    values = cluster_values()
    values["cluster"]["authMode"] = "token"
    with pytest.raises(ConfigError) as info:
        parse(values, "lab-a", "stacks/Pulumi.lab-a.yaml")
    assert info.value.problems[0][1] == "vaultfleet:cluster.authMode"


def test_the_applier_may_store_no_reviewer_jwt_in_client_jwt_mode():
    def config_rule(values):
        stack = parse(values, "lab-a", "stacks/Pulumi.lab-a.yaml")
        return next(
            allowed for path, _, allowed in applier_rules(stack, "https://a:6443", "PEM") if path.endswith("/config")
        )

    assert config_rule(cluster_values())["token_reviewer_jwt"] == []  # reviewer-token: any, from the cluster
    pinned = config_rule(client_jwt(namespaces=["app", "web"]))
    assert pinned["token_reviewer_jwt"] == [""] and pinned["disable_local_ca_jwt"] == [True]


class TestClientJwt(ComponentTest):
    def test_no_reviewer_identity_and_one_binding_for_the_roles_accounts(self):
        from components import ClusterOnboarding

        @pulumi.runtime.test
        def program():
            args = dataclasses.replace(cluster_args(), client_reviewers=[("app", "app"), ("ci", "deployer")])
            cluster = ClusterOnboarding("lab-a", args)

            def check(_):
                self.assertFalse(self.mocks.of_type("kubernetes:core/v1:ServiceAccount"))
                self.assertFalse(self.mocks.of_type("kubernetes:core/v1:Secret"))
                (binding,) = self.mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
                self.assertEqual(binding.inputs["roleRef"]["name"], "system:auth-delegator")
                subjects = [(s["namespace"], s["name"]) for s in binding.inputs["subjects"]]
                self.assertEqual(subjects, [("app", "app"), ("ci", "deployer")])
                (config,) = self.mocks.of_type("vault:kubernetes/authBackendConfig:AuthBackendConfig")
                self.assertNotIn("tokenReviewerJwt", config.inputs)
                self.assertTrue(config.inputs["disableLocalCaJwt"])

            return cluster.role_names.apply(check)

        program()
