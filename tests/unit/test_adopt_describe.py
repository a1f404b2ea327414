"""`adopt`'s mapping from what a cluster has to the stack file, offline: what is reproduced, what is
a difference to accept, and what is refused (docs/adopt.md)."""

from __future__ import annotations

import pytest
import yaml

from tests.bad_inputs import certificate_pem
from vaultfleet.adopt.describe import describe
from vaultfleet.adopt.observe import AdoptError, Mount, Observed, Reviewer
from vaultfleet.stackfile import Project, StackFile
from vaultfleet.validate import check_stack

CONFIG = {
    "kubernetes_host": "https://10.0.0.1:6443",
    "kubernetes_ca_cert": certificate_pem(),
    "disable_iss_validation": True,
}
ROLE = {
    "bound_service_account_names": ["app"],
    "bound_service_account_namespaces": ["*"],
    "token_policies": ["team-read", "team-deny"],
    "token_ttl": 3600,
    "token_max_ttl": 0,
    "token_type": "default",
    "alias_name_source": "serviceaccount_uid",
    "audience": "",
}


def observed(**role_overrides) -> Observed:
    return Observed(
        Mount("lab-e", "kubernetes", "auth_kubernetes_1", "", 0),
        dict(CONFIG),
        {"app": {**ROLE, **role_overrides}},
        Reviewer("default", "vault-auth", "vault-auth-secret", "role-tokenreview-binding"),
    )


def test_the_stack_file_reproduces_the_cluster_and_validates(project):
    description = describe(observed(), "lab-e", "lab-e")
    config = description.document["config"]
    assert config["vaultfleet:cluster"] == {
        "kubeContext": "lab-e",
        "apiHost": "https://10.0.0.1:6443",
        "caCert": certificate_pem(),
        "mountPath": "lab-e",
        "adopted": True,
        "reviewerNamespace": "default",
        "reviewerServiceAccount": "vault-auth",
        "reviewerTokenSecret": "vault-auth-secret",
        "reviewerBinding": "role-tokenreview-binding",
    }
    assert config["vaultfleet:roles"] == [
        {
            "name": "app",
            "serviceAccounts": ["app"],
            "namespaces": ["*"],
            "existingPolicies": ["team-read", "team-deny"],
            "ttl": 3600,
            "tokenType": "default",
        }
    ]
    text = description.text("lab-e", "lab-e", "lab-e")
    assert yaml.safe_load(text) == description.document
    findings, settings = check_stack(StackFile(Project(project), project / "stacks/Pulumi.lab-e.yaml", text=text))
    assert [f for f in findings if f.severity == "error"] == []
    assert settings.mount_path == "lab-e"
    assert not description.refusals
    # Only what Vault never returns and vaultfleet's annotation are written after the import.
    assert {d.field for d in description.differences} == {"token_reviewer_jwt", "annotations"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("token_bound_cidrs", ["10.0.0.0/8"]),
        ("bound_service_account_namespace_selector", '{"matchLabels":{"a":"b"}}'),
        ("token_num_uses", 3),
        ("token_explicit_max_ttl", 600),
        ("token_no_default_policy", True),
        ("token_type", "batch"),
    ],
)
def test_a_field_whose_loss_would_widen_access_or_that_cannot_be_kept_is_refused(field, value):
    (refusal,) = describe(observed(**{field: value}), "lab-e", "lab-e").refusals
    assert (refusal.object, refusal.field) == ("auth/lab-e/role/app", field)


def test_a_periodic_role_and_an_unchecked_issuer_are_differences_to_accept():
    config = {**CONFIG, "issuer": "https://kubernetes.default.svc"}
    found = observed(token_period=3600)
    found.config = config
    description = describe(found, "lab-e", "lab-e")
    assert not description.refusals
    assert {"token_period", "issuer"} <= {d.field for d in description.differences}
    assert "issuer" not in description.document["config"]["vaultfleet:cluster"]


def test_a_mount_tuned_to_batch_tokens_is_refused():
    found = observed()
    found.mount = Mount("lab-e", "kubernetes", "auth_kubernetes_1", "", 0, token_type="default-batch")
    (refusal,) = describe(found, "lab-e", "lab-e").refusals
    assert (refusal.object, refusal.field) == ("auth/lab-e", "token_type")


def test_a_mount_of_another_method_is_refused():
    found = observed()
    found.mount = Mount("lab-e", "userpass", "auth_userpass_1", "", 0)
    with pytest.raises(AdoptError, match="'userpass' mount: adopt takes over kubernetes and jwt mounts"):
        describe(found, "lab-e", "lab-e")


# A jwt role as Terraform's vault_jwt_auth_backend_role writes it, read back from OpenBao 2.4
# (which also returns callback_mode).
JWT_ROLE = {
    "role_type": "jwt",
    "user_claim": "sub",
    "bound_audiences": ["https://kubernetes.default.svc"],
    "bound_claims": {"/kubernetes.io/namespace": ["payments"], "/kubernetes.io/serviceaccount/name": "api"},
    "bound_claims_type": "string",
    "bound_subject": "",
    "claim_mappings": None,
    "callback_mode": "client",
    "token_policies": ["payments-read", "shared-read"],
    "token_ttl": 1200,
    "token_type": "default",
    "verbose_oidc_logging": False,
}
JWT_KEYS = ["-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"]
JWT_CONFIG = {"bound_issuer": "https://10.0.0.2:6443", "jwt_validation_pubkeys": JWT_KEYS, "jwks_url": ""}


def jwt_observed(role=None, config=None) -> Observed:
    return Observed(
        Mount("jwt-f", "jwt", "auth_jwt_1", "", 0),
        {**JWT_CONFIG, **(config or {})},
        {"api": {**JWT_ROLE, **(role or {})}},
    )


def test_a_jwt_mount_becomes_a_jwt_mode_stack_whose_bodies_are_compared_field_by_field(project):
    from vaultfleet.adopt.describe_jwt import add_body_differences

    found = jwt_observed()
    description = describe(found, "lab-f", "lab-f")
    assert not description.refusals
    config = description.document["config"]
    assert config["vaultfleet:cluster"] == {
        "kubeContext": "lab-f",
        "authMode": "jwt",
        "mountPath": "jwt-f",
        "adopted": True,
        "issuer": "https://10.0.0.2:6443",
    }
    assert config["vaultfleet:roles"] == [
        {
            "name": "api",
            "serviceAccounts": ["api"],
            "namespaces": ["payments"],
            "existingPolicies": ["payments-read", "shared-read"],
            "audience": "https://kubernetes.default.svc",
            "ttl": 1200,
        }
    ]
    text = description.text("lab-f", "lab-f", "jwt-f")
    findings, settings = check_stack(StackFile(Project(project), project / "stacks/Pulumi.lab-f.yaml", text=text))
    assert [f for f in findings if f.severity == "error"] == []
    add_body_differences(description, found, settings, "https://10.0.0.2:6443", JWT_KEYS)
    # The same logins: only the alias metadata jwt mode maps from the claims is written.
    assert [(d.object, d.field) for d in description.differences] == [("auth/jwt-f/role/api", "claim_mappings")]
    # Keys from a JWKS URL and an issuer left unchecked are written as the cluster's.
    found = jwt_observed(config={"jwks_url": "https://10.0.0.2:6443/openid/v1/jwks", "jwt_validation_pubkeys": []})
    found.config["bound_issuer"] = ""
    description = describe(found, "lab-f", "lab-f")
    text = description.text("lab-f", "lab-f", "jwt-f")
    _, settings = check_stack(StackFile(Project(project), project / "stacks/Pulumi.lab-f.yaml", text=text))
    add_body_differences(description, found, settings, "https://10.0.0.2:6443", JWT_KEYS)
    assert {("auth/jwt-f/config", f) for f in ("bound_issuer", "jwt_validation_pubkeys", "jwks_url")} <= {
        (d.object, d.field) for d in description.differences
    }


@pytest.mark.parametrize(
    ("role", "config", "field", "why"),
    [
        ({"bound_subject": "system:serviceaccount:payments:api"}, {}, "bound_subject", "bind it as bound_claims"),
        ({"bound_audiences": ["a", "b"]}, {}, "bound_audiences", "exactly one audience"),
        ({"bound_audiences": []}, {}, "bound_audiences", "exactly one audience"),
        ({"bound_claims": {"/kubernetes.io/namespace": "p", "groups": "x"}}, {}, "bound_claims[groups]", "only the"),
        (
            {"bound_claims_type": "glob", "bound_claims": {"/kubernetes.io/namespace": "team-*"}},
            {},
            "bound_claims",
            "a glob",
        ),
        ({"role_type": "oidc"}, {}, "role_type", "only jwt roles"),
        ({"token_bound_cidrs": ["10.0.0.0/8"]}, {}, "token_bound_cidrs", "not carried"),
        ({"groups_claim": "groups"}, {}, "groups_claim", "not carried"),
        ({}, {"default_role": "api"}, "default_role", "not carried"),
        ({}, {"jwt_supported_algs": ["RS256"]}, "jwt_supported_algs", "not carried"),
    ],
)
def test_a_jwt_field_the_format_cannot_carry_is_refused_and_named(role, config, field, why):
    refusals = describe(jwt_observed(role, config), "lab-f", "lab-f").refusals
    assert [r.field for r in refusals] == [field]
    assert why in str(refusals[0])
