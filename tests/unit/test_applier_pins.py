"""The applier policy pins everything that decides who logs in and what the token is (issue 25),
and no role may bind the reviewer's ServiceAccount: checked offline here, by the servers in
tests/lab/test_least_privilege.py."""

from __future__ import annotations

import pytest

from tests.harness import FILE, accepted, cluster_values, problems, role
from vaultfleet.render.applier import applier_rules, set_order


def role_rule(**role_fields) -> dict:
    stack = accepted(cluster_values(roles=[role(**role_fields)]))
    (allowed,) = [a for path, _, a in applier_rules(stack, "https://a:6443", "PEM") if path.endswith("/role/app")]
    return allowed


def test_every_field_that_decides_who_logs_in_is_pinned_to_the_stack_file():
    allowed = role_rule(serviceAccounts=["app", "web"], namespaces=["team-x", "team-y"], policies=["kv-read"])
    assert allowed["bound_service_account_names"] == [set_order(["app", "web"])]
    assert allowed["bound_service_account_namespaces"] == [set_order(["team-x", "team-y"])]
    assert allowed["audience"] == ["vault"]
    assert allowed["token_type"] == ["service"]  # written explicitly; never batch: not revocable
    assert allowed["alias_name_source"] == ["serviceaccount_uid"]
    assert allowed["token_no_default_policy"] == [False]
    assert allowed["token_policies"] == [["k8s-lab-a-kv-read"]]
    # Only the numbers are free; the mount's max TTL caps them. Nothing else is listed, so Vault
    # refuses token_period, token_bound_cidrs, token_num_uses, the legacy `policies`...
    free = {key for key, values in allowed.items() if values == []}
    assert free == {"token_ttl", "token_max_ttl"}
    assert not {"token_period", "token_bound_cidrs", "token_num_uses", "policies"} & allowed.keys()


def test_a_role_without_an_audience_may_only_be_written_without_one():
    assert role_rule(audience=None)["audience"] == [""]


@pytest.mark.parametrize(
    ("declared", "sent"),
    [
        # As the provider (pulumi-vault 7.8.0) sent them to the lab's OpenBao, read back from the role.
        (["zeta", "alpha", "mid"], ["alpha", "zeta", "mid"]),
        (["ns-a", "ns-b"], ["ns-b", "ns-a"]),
        (["k8s-lab-b-kv-write", "k8s-lab-b-kv-read"], ["k8s-lab-b-kv-read", "k8s-lab-b-kv-write"]),
    ],
)
def test_set_order_is_the_order_the_provider_sends_a_set_in(declared, sent):
    assert set_order(declared) == sent
    assert set_order([*declared, declared[0]]) == sent  # a set: repeats do not count


def test_the_mount_max_ttl_is_the_longest_token_lifetime_declared():
    stack = accepted(cluster_values(roles=[role(ttl=900), role(name="b", ttl=3600, maxTtl=14400)]))
    assert stack.mount_max_ttl == 14400
    assert accepted(cluster_values(roles=[role(ttl=900)])).mount_max_ttl == 900
    assert accepted(cluster_values(roles=[])).mount_max_ttl == 3600  # a role's default ttl


@pytest.mark.parametrize(
    ("bindings", "cluster"),
    [
        ({"serviceAccounts": ["*"], "namespaces": ["*"]}, {}),
        ({"serviceAccounts": ["*"], "namespaces": ["*"], "audience": "vault"}, {}),  # an audience can be dropped
        ({"serviceAccounts": ["vault-auth"], "namespaces": ["kube-system"]}, {}),
        ({"serviceAccounts": ["reviewer"], "namespaces": ["*"]}, {"reviewerServiceAccount": "reviewer"}),
        ({"serviceAccounts": ["*"], "namespaces": ["vault"]}, {"reviewerNamespace": "vault"}),
    ],
)
def test_a_role_that_binds_the_reviewers_service_account_is_refused(bindings, cluster):
    values = cluster_values(roles=[role(), role(name="wide", **bindings)])
    values["cluster"].update(cluster)
    ((source, _, message),) = problems(values)
    assert source == FILE
    assert "roles[1] ('wide'): binds the reviewer's ServiceAccount" in message, message


@pytest.mark.parametrize(
    ("bindings", "mode"),
    [
        ({"serviceAccounts": ["*"], "namespaces": ["app"]}, "reviewer-token"),  # not kube-system
        ({"serviceAccounts": ["app"], "namespaces": ["*"]}, "reviewer-token"),  # not vault-auth
        ({"serviceAccounts": ["*"], "namespaces": ["*"]}, "jwt"),  # no reviewer token in this mode
    ],
)
def test_a_role_that_cannot_match_the_reviewer_is_accepted(bindings, mode):
    values = cluster_values(roles=[role(name="wide", **bindings)])
    values["cluster"]["authMode"] = mode
    assert accepted(values).roles[0].name == "wide"


def test_a_pinned_value_vault_would_read_as_a_glob_is_refused():
    from vaultfleet.render.applier import render_applier

    values = cluster_values()
    values["cluster"]["issuer"] = "https://issuer.example/*"
    with pytest.raises(ValueError, match=r"stacks/Pulumi.lab-a.yaml: issuer 'https://issuer.example/\*'.*glob"):
        render_applier(accepted(values), "https://a:6443", "PEM")


def test_a_role_may_attach_any_number_of_policies_each_pinned_as_one_list():
    # Pinned in the one order the provider sends (no longer each order of the list, which capped a
    # role at 4 templates).
    templates = ["t1", "t2", "t3", "t4", "t5", "t6"]
    values = cluster_values(roles=[role(policies=templates)], policies=templates)
    stack = accepted(values)
    (allowed,) = [a for path, _, a in applier_rules(stack, "https://a:6443", "PEM") if path.endswith("/role/app")]
    assert allowed["token_policies"] == [set_order(f"k8s-lab-a-{t}" for t in templates)]
