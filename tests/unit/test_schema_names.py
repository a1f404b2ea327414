"""Names checked against what Kubernetes and Vault accept (issue 13): namespaces, ServiceAccounts, the
kube context, issuer and audience; the mounts and policy names Vault derives from the fleet keys."""

import pytest

from tests.harness import FILE, accepted, cluster, cluster_values, refused, role
from vaultfleet.stackfile.schema import parse


def test_namespace_names_are_dns_labels_of_at_most_63():
    assert accepted(cluster_values(roles=[role(namespaces=["n" * 63])])).roles[0].namespaces == ["n" * 63]
    refused(cluster_values(roles=[role(namespaces=["n" * 64])]), "vaultfleet:roles[0].namespaces", "at most 63")
    refused(cluster_values(roles=[role(namespaces=["team.a"])]), "vaultfleet:roles[0].namespaces", "DNS-1123 label")
    refused(cluster_values(roles=[role(namespaces=["-app"])]), "vaultfleet:roles[0].namespaces", "DNS-1123 label")
    assert accepted(cluster(reviewerNamespace="n" * 63)).cluster.reviewer_namespace == "n" * 63
    refused(cluster(reviewerNamespace="n" * 64), "vaultfleet:cluster.reviewerNamespace", "at most 63")
    refused(cluster(reviewerNamespace="Kube_System"), "vaultfleet:cluster.reviewerNamespace", "namespace name")


def test_service_account_names_are_dns_subdomains_of_at_most_253():
    dotted = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253 characters
    assert len(dotted) == 253
    assert accepted(cluster_values(roles=[role(serviceAccounts=[dotted])])).roles[0].service_accounts == [dotted]
    for bad in ("a" * 254, "a..b", "a.", ".a", "App", "a_b"):
        refused(cluster_values(roles=[role(serviceAccounts=[bad])]), "vaultfleet:roles[0].serviceAccounts", "subdomain")


def test_reviewer_account_leaves_room_for_its_token_secret():
    # The token Secret is `<account>-token`, a DNS-1123 subdomain too: 247 + 6 = 253.
    assert accepted(cluster(reviewerServiceAccount="a" * 247)).cluster.reviewer_service_account == "a" * 247
    refused(cluster(reviewerServiceAccount="a" * 248), "vaultfleet:cluster.reviewerServiceAccount", "at most 247")
    refused(cluster(reviewerServiceAccount="vault..auth"), "vaultfleet:cluster.reviewerServiceAccount", "subdomain")


@pytest.mark.parametrize("field", ["serviceAccounts", "namespaces"])
def test_star_means_any_only_alone(field):
    assert getattr(accepted(cluster_values(roles=[role(**{field: ["*"]})])).roles[0], _snake(field)) == ["*"]
    where = f"vaultfleet:roles[0].{field}"
    refused(cluster_values(roles=[role(**{field: ["*", "app"]})]), where, "stands alone")
    for pattern in ("app-*", "*-app", "a*b", "**"):
        refused(cluster_values(roles=[role(**{field: [pattern]})]), where, "only alone")


def _snake(name):
    return {"serviceAccounts": "service_accounts", "namespaces": "namespaces"}[name]


def test_kube_context_is_any_name_without_control_characters():
    for name in ("arn:aws:eks:eu-west-1:123456789012:cluster/prod", "gke_proj_europe-west1_prod", "my context"):
        assert accepted(cluster_values(cluster={"kubeContext": name})).cluster.kube_context == name
    for bad in ("lab\ta", "lab-a\n", "lab\x00a", " lab-a", "lab-a "):
        refused(cluster_values(cluster={"kubeContext": bad}), "vaultfleet:cluster.kubeContext", "")


@pytest.mark.parametrize(
    "issuer",
    [
        "https://kubernetes.default.svc.cluster.local",
        "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        "https://eastus.oic.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/11111111/",
        "https://127.0.0.1:6443",
        "http://kubernetes.default.svc",
        "kubernetes/serviceaccount",
    ],
)
def test_issuer_accepts_urls_and_the_legacy_issuer_exactly_as_written(issuer):
    assert accepted(cluster(issuer=issuer)).cluster.issuer == issuer  # a trailing slash is kept


@pytest.mark.parametrize(
    ("issuer", "fragment"),
    [
        ("kubernetes.default.svc.cluster.local", "not an issuer URL"),
        ("api", "not an issuer URL"),
        ("https://", "not an issuer URL"),
        ("urn:kubernetes", "not an issuer URL"),
        ("https://kubernetes.default.svc cluster", "spaces"),
        ("https://issuer.example/?a=1", "no query or fragment"),
        ("", "must not be empty"),
    ],
)
def test_issuer_refuses_what_no_token_would_carry(issuer, fragment):
    refused(cluster(issuer=issuer), "vaultfleet:cluster.issuer", fragment)


def test_audience_must_be_a_real_claim_value():
    assert accepted(cluster_values(roles=[role(audience="https://vault.example.com")])).roles[0].audience
    assert accepted(cluster_values(roles=[role(audience=None)])).roles[0].audience is None
    for bad in ("", " ", "my vault", "vault\n"):
        refused(cluster_values(roles=[role(audience=bad)]), "vaultfleet:roles[0].audience", "non-empty audience")
    # The applier policy pins it; Vault would read a leading or trailing `*` there as a glob.
    for glob in ("*", "vault*", "*.example.com"):
        refused(cluster_values(roles=[role(audience=glob)]), "vaultfleet:roles[0].audience", "never as a glob")
    assert accepted(cluster_values(roles=[role(audience="va*ult")])).roles[0].audience == "va*ult"


# Names Vault derives from the fleet keys.


def test_mounts_vault_reserves_or_that_collide_are_refused():
    for reserved in ("sys", "auth", "identity", "cubbyhole", "audit"):
        refused({**cluster_values(), "kvMount": reserved}, "vaultfleet:kvMount", "reserves")
        refused({**cluster_values(), "databaseMount": reserved}, "vaultfleet:databaseMount", "reserves")
    refused(
        {**cluster_values(), "kvMount": "secrets", "databaseMount": "secrets"}, "vaultfleet:databaseMount", "kvMount"
    )
    assert accepted({**cluster_values(), "kvMount": "secrets"}).fleet.kv_mount == "secrets"


def test_longest_names_stay_vault_and_kubernetes_names():
    # Vault sets no length limit on mount paths or policy names; 40-character labels keep them at
    # 81 and 122 characters, lowercase (Vault lowercases policy names) and without '/'.
    prefix, name, template = "p" * 40, "c" * 40, "kv-read"
    stack = parse({**cluster_values(), "mountPrefix": prefix}, name, FILE)
    assert len(stack.mount_path) == 81 and len(stack.policy_name("t" * 40)) == 122
    assert stack.policy_name(template) == stack.policy_name(template).lower()
    refused({**cluster_values(), "mountPrefix": "p" * 41}, "vaultfleet:mountPrefix", "at most 40")


def test_policy_templates_are_listed_once():
    refused(cluster_values(policies=["kv-read", "kv-write", "kv-read"]), "vaultfleet:policies", "declared twice")
