"""A deterministic corpus of policy sets and request paths for the offline ACL
(vaultfleet/render/acl.py). tests/lab/test_acl_corpus.py writes its policies, makes one token per
policy set and asks sys/capabilities for every path at once; the offline answers must be the server's.

Three kinds of scenario, each a few policies, the sets of them tokens hold, and the paths asked:
- fixed: the cases Vault's rules name (acl.go's priority order, exact against glob at one prefix,
  trailing slashes, deny merging, a path twice in one policy, the shorthand, JSON, root);
- random (seeded): rules drawn from a small vocabulary so that globs, `+` segments, deny and empty
  capability lists overlap often, and the paths their matches and near misses;
- templated: identity templates, on a token from an approle login that carries an entity (its name,
  id, metadata and its alias's metadata, resolved) and on a plain token (nothing resolves).
Bodies may hold ${accessor} (the approle mount's accessor), paths ${entity_id}: known once the lab
test has made them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

SEED = 20261207
RANDOM_SCENARIOS = 60

GRANTS = ("create", "read", "update", "patch", "delete", "list", "sudo")  # both servers know these
VOCAB = ("a", "b", "ab", "abc", "x")
READ, LIST = ["read"], ["list"]


@dataclass(frozen=True)
class Identity:
    """The entity an approle login attaches its token to (made, with its alias, before the login)."""

    name: str
    metadata: dict[str, str]
    alias_metadata: dict[str, str]
    """The secret ID's metadata: approle puts it on the entity alias at login (plus role_name)."""


@dataclass(frozen=True)
class PolicySet:
    policies: tuple[str, ...]
    with_entity: bool = False
    """The token comes from an approle login with the scenario's identity, else from token/create."""


@dataclass(frozen=True)
class Scenario:
    name: str
    policies: dict[str, str]
    """Policy name -> body. A policy named root is the built-in one: not written, no body."""
    sets: tuple[PolicySet, ...]
    paths: tuple[str, ...]
    identity: Identity | None = field(default=None)

    @property
    def cases(self) -> int:
        return len(self.sets) * len(self.paths)


Rule = tuple[str, list[str]]


def hcl(rules: list[Rule]) -> str:
    return "".join(f"path {json.dumps(path)} {{\n  capabilities = {json.dumps(caps)}\n}}\n" for path, caps in rules)


def corpus(seed: int = SEED) -> list[Scenario]:
    rng = random.Random(seed)
    scenarios = _fixed(rng) + [_random(rng, i) for i in range(RANDOM_SCENARIOS)] + _templated()
    names = [name for scenario in scenarios for name in scenario.policies if name != "root"]
    assert len(names) == len(set(names)), "policy names repeat across scenarios"
    return scenarios


def _scenario(
    name: str, policies: list[list[Rule]] | list[str], rng: random.Random, extra: Sequence[str] = ()
) -> Scenario:
    """Policies (rules or raw bodies), tokens with each one alone and all together, and the paths
    their rules match or nearly match."""
    names = [f"vf-acl-{name}-{chr(ord('a') + i)}" for i in range(len(policies))]
    bodies = {n: p if isinstance(p, str) else hcl(p) for n, p in zip(names, policies, strict=True)}
    sets = [PolicySet((n,)) for n in names] + ([PolicySet(tuple(names))] if len(names) > 1 else [])
    rule_paths = [path for p in policies if not isinstance(p, str) for path, _ in p]
    return Scenario(name, bodies, tuple(sets), _paths(rule_paths, rng, extra))


def _paths(rule_paths: list[str], rng: random.Random, extra: Sequence[str] = ()) -> tuple[str, ...]:
    found = set(extra)
    for rule in rule_paths:
        for variant in _instances(rule.removeprefix("/"), rng):
            found |= {variant, variant + "/", variant.removesuffix("/")}
        found.add("/" + rule)  # a request path's leading slashes are dropped
    for _ in range(3):
        found.add(_random_path(rng))
    # sys/capabilities refuses an empty path; a lone path named "capabilities" would collide with the
    # answer's backward-compatible key; a comma would be split by some clients.
    return tuple(sorted(p for p in found if p and p != "capabilities" and "," not in p))


def _instances(rule: str, rng: random.Random) -> set[str]:
    """Request paths a rule matches or nearly misses: each `+` filled, the glob extended or not,
    one character short."""
    stem, glob = (rule[:-1], True) if rule.endswith("*") else (rule, False)
    fills = {"/".join(rng.choice(VOCAB) if s == "+" else s for s in stem.split("/")) for _ in range(2)}
    found = set()
    for filled in fills:
        found |= {filled, filled[:-1], filled + "x", filled + "/y"} if glob else {filled, filled + "/z", filled[:-1]}
        if glob:
            found.add(filled + "x/y/")
    return found


def _random_path(rng: random.Random) -> str:
    path = "/".join(rng.choice(VOCAB) for _ in range(rng.randint(1, 4)))
    return path + "/" if rng.random() < 0.3 else path


def _random_rule_path(rng: random.Random) -> str:
    shape = rng.choices(["exact", "glob", "slash", "slash-glob", "partial-glob", "top"], [5, 3, 1, 2, 2, 1])[0]
    if shape == "top":
        return rng.choice(["*", "+", "+/*", "+/a", "a/+"])
    segments = ["+" if rng.random() < 0.25 else rng.choice(VOCAB) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.03:
        segments.insert(1, "*")  # literal in the middle of a path
    path = "/".join(segments)
    path = {
        "exact": path,
        "glob": path + "*",
        "slash": path + "/",
        "slash-glob": path + "/*",
        "partial-glob": path[:-1] + "*",
    }[shape].replace("+*", "+/*")  # `+*` is refused by both servers
    return "/" + path if rng.random() < 0.05 else path


def _random_caps(rng: random.Random) -> list[str]:
    roll = rng.random()
    if roll < 0.15:
        return ["deny"]
    if roll < 0.18:
        return []
    if roll < 0.21:
        return ["read", "deny"]  # deny with others is deny alone
    return rng.sample(GRANTS, rng.randint(1, 3))


def _random(rng: random.Random, index: int) -> Scenario:
    """Two or three policies drawing from one pool of rule paths, so the same string lands in several
    policies (merging) and overlapping globs and `+` rules compete."""
    pool = list(dict.fromkeys(_random_rule_path(rng) for _ in range(rng.randint(3, 7))))
    policies = []
    for _ in range(rng.randint(2, 3)):
        rules = [(path, _random_caps(rng)) for path in rng.sample(pool, rng.randint(1, min(5, len(pool))))]
        if rng.random() < 0.1:
            rules.append((rules[0][0], _random_caps(rng)))  # the same path twice in one policy
        policies.append(rules)
    scenario = _scenario(f"r{index:03d}", policies, rng)
    names = list(scenario.policies)
    if len(names) == 3:  # and one pair
        scenario = Scenario(
            scenario.name, scenario.policies, (*scenario.sets, PolicySet(tuple(rng.sample(names, 2)))), scenario.paths
        )
    return scenario


def _fixed(rng: random.Random) -> list[Scenario]:
    scenarios = [
        # acl.go CheckAllowedFromNonExactPaths's priority order, one policy and split in two.
        _scenario("first-wildcard", [[("foo/a*", READ), ("foo/+", LIST)]], rng, ["foo/ab", "foo/a"]),
        _scenario("first-wildcard-2", [[("foo/bar/+/baz", READ)], [("foo/+/bar/baz", LIST)]], rng, ["foo/bar/bar/baz"]),
        _scenario("not-prefix", [[("foo/+/bar", READ), ("foo/+/ba*", LIST)]], rng, ["foo/x/bar", "foo/x/bar/"]),
        _scenario(
            "plus-over-glob", [[("foo/+", READ)], [("foo/*", LIST)]], rng, ["foo/x", "foo/x/", "foo/", "foo/x/y"]
        ),
        _scenario("fewer-plus", [[("foo/bar/+/baz", READ), ("foo/bar/+/+", LIST)]], rng, ["foo/bar/x/baz"]),
        _scenario("longer", [[("foo/+/bar/ba*", READ)], [("foo/+/bar/b*", LIST)]], rng, ["foo/x/bar/baz"]),
        # Exact against glob at one prefix, and the trailing-slash fallbacks.
        _scenario(
            "exact-glob",
            [[("secret/foo", READ), ("secret/foo*", ["update"]), ("secret/*", LIST), ("secret/foo/", ["create"])]],
            rng,
            ["secret/foo", "secret/foo/", "secret/foo//", "secret/foobar", "secret/fo", "secret", "secret/"],
        ),
        _scenario(
            "list-fallback", [[("kv/metadata/team", LIST), ("kv/metadata/team/+", READ)]], rng, ["kv/metadata/team/"]
        ),
        # Where OpenBao and the lab's Vault 1.14.1 differ (hashicorp/vault#23874).
        _scenario("slash-globs", [[("x/+", LIST), ("x/*", READ), ("y/+/z", ["update"])]], rng, ["x/y/", "y/q/z/"]),
        # Deny merging: the same string in several policies, deny first or last.
        _scenario(
            "deny-merge",
            [
                [("kv/x", ["read", "update"]), ("kv/*", LIST)],
                [("kv/x", ["deny"]), ("kv/y", READ)],
                [("kv/y", ["sudo"])],
            ],
            rng,
        ),
        _scenario("deny-glob", [[("kv/*", ["deny"])], [("kv/team/*", READ), ("kv/x", READ), ("kv/+/y", LIST)]], rng),
        _scenario("empty-caps", [[("e/*", READ), ("e/shadow", [])], [("e/shadow", [])]], rng),
        _scenario("literal-star", [[("s/*/b", READ), ("s/+/b", LIST)]], rng, ["s/*/b", "s/x/b"]),
        _scenario("dup-in-policy", [[("d/x", READ), ("d/x", ["update"]), ("d/+", LIST), ("d/+", ["deny"])]], rng),
        # What the vaultfleet check refuses or pyhcl reads differently, read as Vault does.
        _scenario(
            "shorthand",
            [
                'name = "ignored"\npath "o/w" { policy = "write" }\npath "o/r" { policy = "read"\n  capabilities = ["sudo"] }\n'
                'path "o/d" { policy = "deny" }\npath "o/*" { policy = "sudo" }\n',
                '{"path": {"o/r": {"capabilities": ["update"]}, "o/j/+": {"capabilities": ["patch"]}}}',
            ],
            rng,
            ["o/w", "o/r", "o/d", "o/x", "o/j/k", "o/j/k/"],
        ),
        _scenario(
            "top-level", [[("*", LIST), ("+", READ), ("+/+/c", ["update"])]], rng, ["/", "a", "a/", "a/b/c", "a/b/c/"]
        ),
    ]
    root = Scenario("root", {"root": ""}, (PolicySet(("root",)),), ("sys/seal", "anything/at/all"))
    return [*scenarios, root]


def _templated() -> list[Scenario]:
    alias = "identity.entity.aliases.${accessor}.metadata"
    team = f"{{{{{alias}.team}}}}"
    alias_rules = [
        (f"t/{team}/*", ["read"]),
        (f"t/{team}/secret", ["deny"]),  # a templated deny over the templated glob
        ("t/*", ["list"]),
        (f"t/{{{{{alias}.missing}}}}/x", ["update"]),  # no such metadata key: skipped
        ("t/{{identity.entity.aliases.auth_approle_00000000.metadata.team}}/y", ["create"]),  # no alias there
        (f"t/+/{team}", ["sudo"]),
    ]
    alias_paths = ("t/blue/x", "t/blue/secret", "t/red/x", "t/blue", "t/blue/", "t/x", "t//x", "t/q/blue", "t/q/red")
    entity_rules = [
        ("n/{{identity.entity.name}}", ["read"]),
        ("n/{{ identity.entity.name }}/*", ["list"]),
        ("i/{{identity.entity.id}}/*", ["update"]),
        ("m/{{identity.entity.metadata.env}}/+", ["create"]),
        ("m/+/+", ["read"]),
        ("g/{{identity.entity.metadata.scope}}", ["sudo"]),  # scope "*": the filled path is a glob
        ("u/{{identity.entity.metadata.nokey}}", ["read"]),
        ("u/{{identity.groups.names.g1.id}}", ["read"]),  # no groups: skipped
    ]
    name = "vf-acl-corpus-entity-2"
    entity_paths = (
        f"n/{name}",
        f"n/{name}/x",
        "n/other",
        "i/${entity_id}/a",
        "i/${entity_id}",
        "i/other/a",
        "m/prod/x",
        "m/dev/x",
        "g/anything",
        "g/",
        "g",
        "u/",
        "u/x",
    )
    merge_name = "vf-acl-corpus-entity-3"
    merge = [
        [("kv/{{identity.entity.name}}/x", ["read"]), ("kv/{{identity.entity.name}}/y", ["read"])],
        [(f"kv/{merge_name}/x", ["list"]), (f"kv/{merge_name}/y", ["deny"]), ("kv/+/x", ["update"])],
    ]
    return [
        _templated_scenario(
            "tpl-alias", [alias_rules], alias_paths, Identity("vf-acl-corpus-entity-1", {}, {"team": "blue"})
        ),
        _templated_scenario(
            "tpl-entity", [entity_rules], entity_paths, Identity(name, {"env": "prod", "scope": "*"}, {})
        ),
        _templated_scenario(
            "tpl-merge", merge, (f"kv/{merge_name}/x", f"kv/{merge_name}/y", "kv/other/x"), Identity(merge_name, {}, {})
        ),
    ]


def _templated_scenario(name: str, policies: list[list[Rule]], paths: tuple[str, ...], identity: Identity) -> Scenario:
    """Every policy on one token with the entity and one without."""
    names = tuple(f"vf-acl-{name}-{chr(ord('a') + i)}" for i in range(len(policies)))
    bodies = {n: hcl(p) for n, p in zip(names, policies, strict=True)}
    return Scenario(name, bodies, (PolicySet(names, with_entity=True), PolicySet(names)), paths, identity)
