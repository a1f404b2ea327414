"""The offline ACL (vaultfleet/render/acl.py) rule by rule; tests/lab/test_acl_corpus.py holds it to
the servers' own sys/capabilities."""

import pytest

from vaultfleet.render.acl import Acl, alias_metadata, capabilities, identity_from_entity, rules
from vaultfleet.render.policy import MOUNT_ACCESSOR_PLACEHOLDER, PolicyError, fill_mount_accessor, render


def body(*rules: tuple[str, list[str]]) -> str:
    return "".join(f'path "{path}" {{\n  capabilities = {caps!r}\n}}\n'.replace("'", '"') for path, caps in rules)


def caps(policies: dict[str, str], path: str, identity=None, **options) -> tuple[str, ...]:
    return capabilities(policies, path, identity, **options).capabilities


# -- exact and glob ------------------------------------------------------------------------------


def test_exact_path_grants_only_itself():
    policies = {"p": body(("secret/foo", ["read"]))}
    assert caps(policies, "secret/foo") == ("read",)
    assert caps(policies, "secret/foo/bar") == ("deny",)
    assert caps(policies, "secret/fo") == ("deny",)


def test_glob_is_a_string_prefix_not_a_segment():
    policies = {"p": body(("secret/fo*", ["list"]))}
    assert caps(policies, "secret/foo/bar") == ("list",)
    assert caps(policies, "secret/fo") == ("list",)
    assert caps(policies, "secret/f") == ("deny",)


def test_exact_beats_a_glob_on_the_same_prefix():
    policies = {"p": body(("secret/*", ["read", "update"]), ("secret/foo", ["list"]))}
    decision = capabilities(policies, "secret/foo")
    assert decision.capabilities == ("list",)
    assert decision.rules == (("p", "secret/foo"),)
    assert caps(policies, "secret/foo2") == ("read", "update")


def test_the_longest_glob_wins():
    policies = {"p": body(("secret/*", ["read"]), ("secret/team/*", ["create"]))}
    assert caps(policies, "secret/team/x") == ("create",)
    assert caps(policies, "secret/other") == ("read",)


def test_capabilities_come_sorted_and_an_empty_list_shadows_a_glob():
    policies = {"p": body(("a/*", ["update", "create", "read"]), ("a/b", []))}
    assert caps(policies, "a/c") == ("create", "read", "update")
    decision = capabilities(policies, "a/b")
    assert decision.capabilities == ("deny",)
    assert decision.rules == (("p", "a/b"),)  # the rule that shadows the glob, named


def test_a_star_inside_a_path_is_literal():
    policies = {"p": body(("a/*/b", ["read"]))}
    assert caps(policies, "a/*/b") == ("read",)
    assert caps(policies, "a/x/b") == ("deny",)


def test_nothing_matching_is_deny_with_no_rules():
    assert capabilities({"p": body(("a", ["read"]))}, "b") == capabilities({}, "b")
    assert capabilities({}, "b").rules == ()
    assert caps({}, "b") == ("deny",)


def test_leading_slashes():
    # One leading `/` of a rule is dropped, every one of a request path.
    assert caps({"p": body(("/a/b", ["read"]))}, "//a/b") == ("read",)
    assert caps({"p": body(("//a/b", ["read"]))}, "a/b") == ("deny",)


# -- trailing slashes (the list fallback) ---------------------------------------------------------


def test_an_exact_rule_without_the_slash_answers_for_the_path_with_it():
    policies = {"p": body(("secret/foo", ["list"]))}
    assert caps(policies, "secret/foo/") == ("list",)
    assert caps({"p": body(("secret/foo/", ["list"]))}, "secret/foo") == ("deny",)


def test_trailing_slash_globs_differ_between_openbao_and_vault_1_14_1():
    policies = {"p": body(("x/+", ["list"]), ("x/*", ["read"]))}
    # The segments of "x/y/" are ["x", "y", ""]: only x/* matches them as they are.
    assert caps(policies, "x/y/") == ("list",)  # OpenBao: x/+ matches "x/y" first
    assert caps(policies, "x/y/", trailing_slash_globs=False) == ("read",)


# -- + segments and priority ----------------------------------------------------------------------


def test_plus_matches_exactly_one_segment():
    policies = {"p": body(("kv/+/config", ["read"]))}
    assert caps(policies, "kv/team/config") == ("read",)
    assert caps(policies, "kv/a/b/config") == ("deny",)
    assert caps(policies, "kv/team/config/x") == ("deny",)


def test_plus_with_a_trailing_glob():
    policies = {"p": body(("kv/+/data/*", ["read"]), ("+/x", ["update"]))}
    assert caps(policies, "kv/team/data/a/b") == ("read",)
    assert caps(policies, "kv/team/other") == ("deny",)
    assert caps(policies, "anything/x") == ("update",)


def test_plus_star_is_refused():
    with pytest.raises(PolicyError, match=r"\+\*"):
        Acl({"p": body(("kv/+*", ["read"]))})


# The priority cases acl.go CheckAllowedFromNonExactPaths names, each both ways round (rule order
# must not matter): (winner, loser, path).
PRIORITY = [
    ("foo/a*", "foo/+", "foo/ab"),  # the later first wildcard wins
    ("foo/bar/+/baz", "foo/+/bar/baz", "foo/bar/bar/baz"),
    ("foo/+/bar", "foo/+/ba*", "foo/x/bar"),  # then not a prefix
    ("foo/+", "foo/*", "foo/x"),
    ("foo/bar/+/baz", "foo/bar/+/+", "foo/bar/x/baz"),  # then fewer + segments
    ("foo/+/bar/ba*", "foo/+/bar/b*", "foo/x/bar/baz"),  # then the longer path
]


@pytest.mark.parametrize(("winner", "loser", "path"), PRIORITY)
def test_priority_between_non_exact_paths(winner, loser, path):
    for order in ((winner, loser), (loser, winner)):
        policies = {
            "p": body(
                (order[0], ["read" if order[0] == winner else "list"]),
                (order[1], ["read" if order[1] == winner else "list"]),
            )
        }
        decision = capabilities(policies, path)
        assert decision.capabilities == ("read",), (order, decision)
        assert decision.rules == (("p", winner),)


# -- merging across policies ----------------------------------------------------------------------


def test_the_same_path_in_two_policies_merges():
    policies = {"a": body(("kv/x", ["read"])), "b": body(("kv/x", ["list"]), ("kv/*", ["sudo"]))}
    decision = capabilities(policies, "kv/x")
    assert decision.capabilities == ("list", "read")
    assert decision.rules == (("a", "kv/x"), ("b", "kv/x"))


def test_a_path_twice_in_one_policy_merges_too():
    # pyhcl would keep only the later block's capabilities; Vault keeps both.
    policy = body(("kv/x", ["read"]), ("kv/x", ["list"]))
    assert [rule.capabilities for rule in rules(policy, "p")] == [("read",), ("list",)]
    assert caps({"p": policy}, "kv/x") == ("list", "read")


def test_deny_wins_over_every_grant_of_the_same_path_string():
    for order in (("grant", "denier"), ("denier", "grant")):
        bodies = {"grant": body(("kv/x", ["read", "sudo"])), "denier": body(("kv/x", ["deny", "read"]))}
        decision = capabilities({name: bodies[name] for name in order}, "kv/x")
        assert decision.capabilities == ("deny",)
        assert decision.rules == (("denier", "kv/x"),)


def test_deny_on_a_glob_does_not_touch_a_more_specific_grant():
    policies = {"a": body(("kv/*", ["deny"])), "b": body(("kv/team/*", ["read"]), ("kv/x", ["read"]))}
    assert caps(policies, "kv/team/y") == ("read",)
    assert caps(policies, "kv/x") == ("read",)
    assert caps(policies, "kv/other") == ("deny",)


def test_same_prefix_from_exact_and_glob_rules_are_different_strings():
    policies = {"a": body(("kv/x", ["deny"])), "b": body(("kv/x*", ["read"]))}
    assert caps(policies, "kv/x") == ("deny",)
    assert caps(policies, "kv/xy") == ("read",)


def test_root():
    assert capabilities({"root": ""}, "anything").capabilities == ("root",)
    with pytest.raises(PolicyError, match="along with root"):
        Acl({"root": "", "p": body(("a", ["read"]))})


# -- parsing --------------------------------------------------------------------------------------


def test_shorthand_and_invalid_capabilities():
    assert caps({"p": 'path "a" { policy = "write" }'}, "a") == ("create", "delete", "list", "read", "update")
    assert caps({"p": 'path "a" { policy = "deny"\n capabilities = ["read"] }'}, "a") == ("deny",)
    with pytest.raises(PolicyError, match="invalid capabilities"):
        rules(body(("a", ["reed"])), "p")
    with pytest.raises(PolicyError, match="unknown keys"):
        rules('path "a" { capabilities = ["read"]\n bogus = 1 }', "p")


def test_json_policies():
    assert caps({"p": '{"path": {"a/*": {"capabilities": ["read"]}}}'}, "a/b") == ("read",)


# -- templates ------------------------------------------------------------------------------------

TEMPLATED = body(
    ("kv/{{identity.entity.name}}/*", ["read"]),
    ("kv/id/{{ identity.entity.id }}", ["update"]),
    ("kv/env/{{identity.entity.metadata.env}}", ["list"]),
    ("kv/team/{{identity.entity.aliases.auth_approle_1.metadata.team}}/*", ["create"]),
)
IDENTITY = {
    "identity.entity.name": "alice",
    "identity.entity.id": "e-1",
    "identity.entity.metadata.env": "prod",
    **alias_metadata("auth_approle_1", {"team": "blue"}),
}


def test_templates_resolve_from_the_identity():
    policies = {"t": TEMPLATED}
    assert caps(policies, "kv/alice/x", IDENTITY) == ("read",)
    assert caps(policies, "kv/bob/x", IDENTITY) == ("deny",)
    assert caps(policies, "kv/id/e-1", IDENTITY) == ("update",)
    assert caps(policies, "kv/env/prod", IDENTITY) == ("list",)
    assert caps(policies, "kv/team/blue/s", IDENTITY) == ("create",)
    decision = capabilities(policies, "kv/team/blue/s", IDENTITY)
    assert decision.rules == (("t", "kv/team/{{identity.entity.aliases.auth_approle_1.metadata.team}}/*"),)


def test_an_unresolved_template_skips_its_rule_only():
    policies = {"t": TEMPLATED + body(("kv/*", ["sudo"]))}
    # No entity: every templated rule is skipped, the plain glob answers.
    assert caps(policies, "kv/alice/x") == ("sudo",)
    assert caps(policies, "kv/{{identity.entity.name}}/x") == ("sudo",)
    # An entity without the alias or the metadata key: those rules alone are skipped.
    partial = {"identity.entity.name": "alice", "identity.entity.id": "e-1"}
    assert caps(policies, "kv/alice/x", partial) == ("read",)
    assert caps(policies, "kv/team/blue/s", partial) == ("sudo",)
    assert caps(policies, "kv/env/prod", partial) == ("sudo",)
    # An empty name is "not found", an empty metadata value is a value.
    assert caps(policies, "kv//x", {"identity.entity.name": ""}) == ("sudo",)
    assert caps(policies, "kv/env/", {"identity.entity.metadata.env": ""}) == ("list",)


def test_a_template_filled_with_a_star_becomes_a_glob():
    policies = {"t": body(("g/{{identity.entity.metadata.scope}}", ["read"]))}
    assert caps(policies, "g/anything", {"identity.entity.metadata.scope": "*"}) == ("read",)


def test_unbalanced_templates_are_refused():
    with pytest.raises(PolicyError, match="unbalanced"):
        rules(body(("kv/{{identity.entity.name}/x", ["read"])), "p")


def test_identity_from_an_entity_as_the_server_returns_it():
    entity = {
        "id": "e-1",
        "name": "alice",
        "metadata": {"env": "prod"},
        "aliases": [{"id": "a-1", "name": "role-id", "mount_accessor": "auth_approle_1", "metadata": {"team": "blue"}}],
    }
    assert identity_from_entity(entity) == {
        **IDENTITY,
        "identity.entity.aliases.auth_approle_1.id": "a-1",
        "identity.entity.aliases.auth_approle_1.name": "role-id",
    }


def test_kv_namespace_template_grants_the_logins_own_namespace():
    accessor = "auth_kubernetes_1234"
    variables = {"cluster": "lab-a", "mount": "k8s-lab-a", "kv_mount": "kv", "database_mount": "database"}
    rendered = render("kv-namespace", {**variables, "mount_accessor": MOUNT_ACCESSOR_PLACEHOLDER})
    acl = Acl(
        {"k8s-lab-a-kv-namespace": fill_mount_accessor(rendered, accessor)},
        alias_metadata(accessor, {"service_account_namespace": "app", "service_account_name": "web"}),
    )
    assert acl.capabilities("kv/data/clusters/lab-a/namespaces/app/db").capabilities == ("read",)
    assert acl.capabilities("kv/metadata/clusters/lab-a/namespaces/app/").capabilities == ("list", "read")
    assert acl.capabilities("kv/data/clusters/lab-a/namespaces/other/db").capabilities == ("deny",)
    # A token of another mount's login (no alias on this one) gets nothing from it.
    other = Acl({"p": fill_mount_accessor(rendered, accessor)}, alias_metadata("auth_kubernetes_9", {}))
    assert other.capabilities("kv/data/clusters/lab-a/namespaces/app/db").capabilities == ("deny",)
