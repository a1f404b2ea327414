"""Policy templates render per cluster and are checked before anything reaches Vault."""

import re
from pathlib import Path

import pytest

from vaultfleet.render.policy import (
    MOUNT_ACCESSOR_PLACEHOLDER,
    POLICY_DIR,
    PolicyError,
    cluster_policy_rules,
    fill_mount_accessor,
    for_service_account,
    parse_rules,
    render,
)
from vaultfleet.render.policy import render_cluster_policies as render_policies
from vaultfleet.stackfile.schema import parse

VARS = {
    "cluster": "lab-a",
    "mount": "k8s-lab-a",
    "kv_mount": "kv",
    "database_mount": "database",
    "mount_accessor": MOUNT_ACCESSOR_PLACEHOLDER,
}
LISTS = {"database_role": ["app-readonly"]}
# Paths a template may grant beyond the cluster's own: the lease endpoints of dynamic credentials,
# which Vault checks against the lease's own token anyway.
LEASE_PATHS = {"sys/leases/renew", "sys/leases/revoke"}


def test_shipped_templates_render_with_cluster_values():
    for template in sorted(POLICY_DIR.glob("*.hcl")):
        body = fill_mount_accessor(render(template.stem, VARS, lists=LISTS), "auth_kubernetes_1234")
        assert "${" not in body
        for rule in parse_rules(body, str(template)):
            assert "lab-a" in rule.path or rule.path == "database/creds/app-readonly" or rule.path in LEASE_PATHS, rule


def cluster(name="lab-a", **values):
    return parse({"vaultAddress": "https://v:8200", "cluster": {"kubeContext": name}, **values}, name, "f")


def test_db_creds_grants_exactly_the_declared_database_roles():
    stack = cluster(policies=["db-creds"], databaseRoles=["app-readonly", "reporting"])
    body = render_policies(stack)["k8s-lab-a-db-creds"]
    rules = {r.path: r.capabilities for r in parse_rules(body, "db-creds")}
    assert rules == {
        "database/creds/app-readonly": ("read",),
        "database/creds/reporting": ("read",),
        "sys/leases/renew": ("update",),
        "sys/leases/revoke": ("update",),
    }
    # No glob: another role's creds (or the mount's config) stay out of reach.
    assert "*" not in body and "+" not in body


def test_db_creds_follows_the_fleet_database_mount():
    stack = cluster(policies=["db-creds"], databaseRoles=["app-readonly"], databaseMount="pg")
    assert 'path "pg/creds/app-readonly"' in render_policies(stack)["k8s-lab-a-db-creds"]


def test_db_creds_without_database_roles_names_the_field():
    with pytest.raises(
        PolicyError, match=r"db-creds.hcl: uses \$\{database_role\}: name the values in vaultfleet:databaseRoles"
    ):
        render_policies(cluster(policies=["kv-read", "db-creds"]))


def test_list_template_may_hold_only_capabilities(tmp_path):
    text = (
        'path "database/creds/${database_role}" {\n  capabilities = ["read"]\n  allowed_parameters = { "ttl" = [] }\n}'
    )
    with pytest.raises(PolicyError, match="may hold only `capabilities`"):
        render("t", VARS, write(tmp_path, text), LISTS)


def test_two_clusters_never_share_a_policy_name_or_path():
    fleet = {"vaultAddress": "https://v:8200"}
    a = parse({**fleet, "cluster": {"kubeContext": "a"}}, "lab-a", "a")
    b = parse({**fleet, "cluster": {"kubeContext": "b"}}, "lab-b", "b")
    pa, pb = render_policies(a), render_policies(b)
    assert not set(pa) & set(pb)
    assert "clusters/lab-a/" in pa["k8s-lab-a-kv-read"] and "lab-b" not in pa["k8s-lab-a-kv-read"]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "t.hcl").write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('path "x/*" { capabilities = ["read"] ', "does not parse"),
        ('path "x/*" { capabilities = ["reed"] }', "unknown capabilities ['reed']"),
        ('path "" { capabilities = ["read"] }', "empty path"),
        ('path "x" { }', "non-empty list"),
        ("# nothing here\n", "no `path` block"),
        ('path "${nope}/x" { capabilities = ["read"] }', "unknown or malformed placeholder"),
        ('key "x" { capabilities = ["read"] }', "unknown top-level block"),
        # The servers merge both blocks' capabilities; pyhcl would keep the last: refused, not shrunk.
        (
            'path "x/*" { capabilities = ["create", "update"] }\npath "x/*" { capabilities = ["read"] }',
            '"x/*" declared more than once',
        ),
    ],
)
def test_bad_templates_are_rejected_naming_the_file(tmp_path, text, fragment):
    with pytest.raises(PolicyError) as info:
        render("t", VARS, write(tmp_path, text))
    assert fragment in str(info.value)
    assert str(tmp_path / "t.hcl") in str(info.value)


def test_missing_template(tmp_path):
    with pytest.raises(PolicyError, match="no policy template named 'kv-admin'"):
        render("kv-admin", VARS, tmp_path)


def test_vault_identity_templating_passes_through_with_the_accessor_left_for_the_component(tmp_path):
    text = 'path "kv/data/{{identity.entity.aliases.${mount_accessor}.metadata.service_account_namespace}}/*" { capabilities = ["read"] }'
    body = render("t", VARS, write(tmp_path, text))
    assert "{{identity.entity.aliases.${mount_accessor}.metadata.service_account_namespace}}" in body
    assert 'path "kv/data/{{identity.entity.aliases.auth_kubernetes_9f8e.metadata.service_account_namespace}}/*"' in (
        fill_mount_accessor(body, "auth_kubernetes_9f8e")
    )


@pytest.mark.parametrize(
    ("alias", "fragment"),
    [
        # The mount path where Vault wants the accessor: the template would resolve to nothing.
        ("${mount}.metadata.service_account_namespace", "aliases.k8s-lab-a: Vault keys aliases by mount accessor"),
        ("${mount_accessor}.metadata.namespace", "unknown alias metadata 'namespace'"),
        ("${mount_accessor}.metadata.service_account_namepsace", "unknown alias metadata 'service_account_namepsace'"),
    ],
)
def test_alias_templates_vault_cannot_resolve_are_rejected(tmp_path, alias, fragment):
    text = 'path "kv/data/{{identity.entity.aliases.' + alias + '}}/*" { capabilities = ["read"] }'
    with pytest.raises(PolicyError) as info:
        render("t", VARS, write(tmp_path, text))
    assert fragment in str(info.value)


def test_namespace_template_gives_each_namespace_its_own_subtree():
    stack = parse(
        {"vaultAddress": "https://v:8200", "cluster": {"kubeContext": "a"}, "policies": ["kv-namespace"]}, "lab-a", "a"
    )
    (rules,) = cluster_policy_rules(stack).values()
    data = next(r for r in rules if "/data/" in r.path)
    assert for_service_account(data.path, "team-x", "app") == "kv/data/clusters/lab-a/namespaces/team-x/*"
    assert for_service_account(data.path, "team-y", "app") == "kv/data/clusters/lab-a/namespaces/team-y/*"
    # A wildcard binding: the namespace is whichever the login comes from.
    assert (
        for_service_account(data.path, "*", "app") == "kv/data/clusters/lab-a/namespaces/<service_account_namespace>/*"
    )
    assert data.capabilities == ("read",)


@pytest.mark.parametrize(
    ("block", "refusal"),
    [
        # The servers add the shorthand's capabilities to the rule's: a grant the review would miss.
        ('capabilities = ["read"]\n  policy = "write"', "the old `policy = ...` shorthand"),
        ('capabilities = ["read"]\n  capabilities = ["list"]', "must be a non-empty list of names"),
        ('capabilities = ["read"]\n  grants = "all"', "unknown keys ['grants']"),
    ],
)
def test_a_rule_grants_only_what_its_capabilities_say(block, refusal):
    with pytest.raises(PolicyError, match=re.escape(refusal)):
        parse_rules(f'path "kv/data/x/*" {{\n  {block}\n}}\n', "kv-audit.hcl")
    # Control: what only narrows the capabilities is kept.
    body = 'path "kv/data/x/*" {\n  capabilities = ["read"]\n  allowed_parameters = { "version" = [] }\n}\n'
    assert parse_rules(body, "kv-audit.hcl")[0].capabilities == ("read",)
