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


def test_a_jwt_mount_is_not_adopted_yet():
    found = observed()
    found.mount = Mount("lab-e", "jwt", "auth_jwt_1", "", 0)
    with pytest.raises(AdoptError, match="a jwt mount is not supported yet"):
        describe(found, "lab-e", "lab-e")
