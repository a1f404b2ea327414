"""`vaultfleet:cluster.authMode` without servers: client-jwt refuses wildcard bindings (file and
field), pins "no reviewer JWT" in the applier policy, and makes no reviewer identity: one
auth-delegator binding naming exactly the roles' ServiceAccounts."""

from __future__ import annotations

import dataclasses

import pulumi
import pytest

from tests.harness import ComponentTest, cluster_values, role
from tests.unit.test_components_cluster import cluster_args
from vaultfleet.render.applier import applier_rules
from vaultfleet.stackfile.schema import ConfigError, parse


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
            return ClusterOnboarding("lab-a", args).role_names

        program()  # returns once every registration has finished: check them all
        self.assertFalse(self.mocks.of_type("kubernetes:core/v1:ServiceAccount"))
        self.assertFalse(self.mocks.of_type("kubernetes:core/v1:Secret"))
        (binding,) = self.mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
        self.assertEqual(binding.inputs["roleRef"]["name"], "system:auth-delegator")
        subjects = [(s["namespace"], s["name"]) for s in binding.inputs["subjects"]]
        self.assertEqual(subjects, [("app", "app"), ("ci", "deployer")])
        (config,) = self.mocks.of_type("vault:kubernetes/authBackendConfig:AuthBackendConfig")
        self.assertNotIn("tokenReviewerJwt", config.inputs)
        self.assertTrue(config.inputs["disableLocalCaJwt"])


def jwt(**role_fields):
    values = cluster_values(roles=[role(**role_fields)])
    values["cluster"]["authMode"] = "jwt"
    return parse(values, "lab-a", "stacks/Pulumi.lab-a.yaml")


def test_jwt_mode_needs_an_audience_on_every_role():
    values = cluster_values(roles=[role(audience=None)])
    values["cluster"]["authMode"] = "jwt"
    with pytest.raises(ConfigError) as info:
        parse(values, "lab-a", "stacks/Pulumi.lab-a.yaml")
    assert "roles[0].audience: required" in info.value.problems[0][2]


def test_a_jwt_role_checks_claims_exactly_and_globs_only_a_star():
    from vaultfleet.render.jwt_roles import CLAIM_MAPPINGS, role_body

    stack = jwt(namespaces=["app", "web"])
    body = role_body(stack, stack.roles[0])
    assert body["bound_claims"] == {
        "/kubernetes.io/namespace": ["app", "web"],
        "/kubernetes.io/serviceaccount/name": ["app"],
    }
    assert (body["bound_claims_type"], body["bound_audiences"], body["user_claim"]) == ("string", ["vault"], "sub")
    assert (
        body["claim_mappings"] == CLAIM_MAPPINGS
        and CLAIM_MAPPINGS["/kubernetes.io/namespace"] == "service_account_namespace"
    )
    wildcard = jwt(serviceAccounts=["*"])
    assert role_body(wildcard, wildcard.roles[0])["bound_claims_type"] == "glob"


def test_the_jwt_applier_policy_pins_each_role_body_but_its_ttls():
    from vaultfleet.render.applier import render_applier

    stack = jwt()
    issuer = ("https://issuer.lab-a", ["PEM-1", "PEM-2"])
    rules = {path.rsplit("/", 1)[-1]: allowed for path, _, allowed in applier_rules(stack, "", "", issuer)}
    role_rule = rules["app"]
    assert role_rule["token_policies"] == [["k8s-lab-a-kv-read"]] and role_rule["role_type"] == ["jwt"]
    assert role_rule["token_ttl"] == [] and "token_period" not in role_rule
    # The keys and issuer the privileged stage read: the applier cannot write a key of its own.
    assert rules["config"] == {"jwt_validation_pubkeys": [["PEM-1", "PEM-2"]], "bound_issuer": ["https://issuer.lab-a"]}
    with pytest.raises(ValueError, match="pins the cluster's issuer keys"):
        applier_rules(stack, "", "")
    hcl = render_applier(stack, "", "", issuer)
    # Maps in HCL form (`=`): JSON's `:` does not parse inside a policy's allowed_parameters.
    assert '"claim_mappings" = [{"/kubernetes.io/namespace" = "service_account_namespace"' in hcl


def test_access_says_how_each_cluster_checks_a_login(project):
    import json

    from typer.testing import CliRunner

    from tests.harness import edit_stack
    from vaultfleet.cli import app

    edit_stack(project, "lab-a", lambda config: config["vaultfleet:cluster"].update(authMode="jwt"))
    rows = json.loads(CliRunner().invoke(app, ["access", "lab-a", "lab-b", "--format", "json"]).stdout)
    assert {(r["cluster"], r["login"]) for r in rows} == {("lab-a", "jwt"), ("lab-b", "reviewer-token")}
    table = CliRunner().invoke(app, ["access", "lab-a"]).stdout
    assert "(jwt)" in table
