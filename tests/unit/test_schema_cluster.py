"""Stack files at large: a cluster and a shared stack parse with the fleet defaults; bad input is
rejected naming the file and the field."""

import pytest

from tests.harness import FILE, FLEET, cluster_values, problems, role
from vaultfleet.stackfile.schema import ClusterStack, ConfigError, SharedStack, parse


def test_minimal_cluster_stack_gets_fleet_defaults():
    stack = parse(cluster_values(), "lab-a", FILE)
    assert isinstance(stack, ClusterStack)
    assert stack.mount_path == "k8s-lab-a"
    assert stack.policy_name("kv-read") == "k8s-lab-a-kv-read"
    assert stack.policies == ["kv-read", "kv-write"]
    assert stack.roles[0].ttl == 3600
    assert stack.cluster.reviewer_namespace == "kube-system"


def test_durations_accept_vault_units():
    stack = parse(cluster_values(roles=[role(ttl="15m", maxTtl="2h")]), "lab-a", FILE)
    assert (stack.roles[0].ttl, stack.roles[0].max_ttl) == (900, 7200)


def test_shared_stack():
    stack = parse({**FLEET, "kind": "shared"}, "vault", "stacks/Pulumi.vault.yaml")
    assert isinstance(stack, SharedStack)


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        (cluster_values(role=[]), "vaultfleet:role", "did you mean 'vaultfleet:roles'"),
        (cluster_values(roles=[role(audiences="vault")]), "vaultfleet:roles[0].audiences", "unknown field"),
        (cluster_values(roles=[role(policy=["kv-read"])]), "vaultfleet:roles[0].policy", "unknown field"),
        (cluster_values(roles=[role(ttl="-5m")]), "vaultfleet:roles[0].ttl", "not a duration"),
        (cluster_values(roles=[role(ttl="365d")]), "vaultfleet:roles[0].ttl", "between 1s"),
        (cluster_values(roles=[role(ttl="2h", maxTtl="1h")]), "vaultfleet:roles[0]", "above maxTtl"),
        (cluster_values(roles=[role(namespaces=[])]), "vaultfleet:roles[0].namespaces", "at least 1"),
        (cluster_values(roles=[role(name="App_1")]), "vaultfleet:roles[0].name", "DNS label"),
        (cluster_values(roles=[role(policies=["nope"])]), "vaultfleet", "'nope' is not among"),
        (cluster_values(roles=[role(), role()]), "vaultfleet:roles", "declared twice"),
        (cluster_values(roles="app"), "vaultfleet:roles", "valid list"),
        (cluster_values(cluster={}), "vaultfleet:cluster.kubeContext", "required"),
        (
            cluster_values(cluster={"kubeContext": "x", "apiHost": "ftp://h"}),
            "vaultfleet:cluster.apiHost",
            "not an http",
        ),
        (cluster_values(cluster={"kubeContext": "x", "caCert": "hello"}), "vaultfleet:cluster.caCert", "PEM"),
        ({**cluster_values(), "vaultAddress": "not a url"}, "vaultfleet:vaultAddress", "not an http"),
        ({k: v for k, v in cluster_values().items() if k != "vaultAddress"}, "vaultfleet:vaultAddress", "required"),
        ({**FLEET, "kind": "shared", "roles": []}, "vaultfleet:roles", "not allowed in the shared stack"),
    ],
)
def test_bad_input_names_file_and_field(values, field, fragment):
    found = problems(values)
    assert any(f == FILE and fld == field and fragment in msg for f, fld, msg in found), found


def test_invalid_stack_name():
    assert problems(cluster_values(), stack="Lab_A")[0][1] == "vaultfleet:name"


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"consumers": ["vso", "injector"]}, "vaultfleet:roles[0].consumers[1]", "'eso' or 'vso'"),
        ({"consumers": ["vso", "vso"]}, "vaultfleet:roles[0]", "each kind once"),
        ({"consumers": ["eso"], "namespaces": ["*"]}, "vaultfleet:roles[0]", "named namespaces"),
        ({"consumers": ["eso"], "serviceAccounts": ["*"]}, "vaultfleet:roles[0]", "named serviceAccounts"),
    ],
)
def test_role_consumers_are_checked(overrides, field, fragment):
    with pytest.raises(ConfigError) as info:
        parse(cluster_values(roles=[role(**overrides)]), "lab-a", FILE)
    ((file, fld, message),) = info.value.problems
    assert (file, fld) == (FILE, field) and fragment in message, info.value.problems
