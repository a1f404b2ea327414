"""The offline ACL (vaultfleet/render/acl.py) answers every case of the corpus (tests/acl_corpus.py)
exactly as the server's sys/capabilities does: policies written once, one token per policy set, all
of a set's paths in one request.

The templated scenarios' tokens come from an approle login on a mount of this module's: the login
attaches the token to an entity made beforehand (name, metadata, and an alias for the role's
role_id), and approle puts the secret ID's metadata on that alias; the offline side resolves the
templates from that entity as the server returns it (identity_from_entity)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from string import Template

import hvac
import pytest

from tests.acl_corpus import PolicySet, Scenario, corpus
from tests.harness import root_client
from vaultfleet.render.acl import Acl, identity_from_entity

# Server-dependent: the answers are the server's ACL evaluation.
pytestmark = [pytest.mark.lab, pytest.mark.server]

MOUNT = "vf-acl-corpus"
TTL = "15m"
# Requests in flight at once: the server answers on every lab core, and a sys/capabilities of many
# paths is mostly the server's work.
WORKERS = 4


def test_offline_acl_answers_as_sys_capabilities(lab, lab_server):
    root = root_client(lab)
    scenarios = corpus()
    # The lab's HashiCorp Vault is 1.14.1: from before hashicorp/vault#23874, which OpenBao carries.
    slash_globs = lab_server.name == "openbao"
    started = time.monotonic()
    _clean(root, scenarios)
    root.sys.enable_auth_method("approle", path=MOUNT)
    tokens: list[str] = []
    try:
        accessor = root.sys.list_auth_methods()["data"][f"{MOUNT}/"]["accessor"]
        bodies = {
            name: Template(body).substitute(accessor=accessor) for s in scenarios for name, body in s.policies.items()
        }
        for name, body in bodies.items():
            if name != "root":  # the built-in one
                root.sys.create_or_update_policy(name, body)
        # The entities' tokens first: their scenarios' paths hold the entity's id.
        logins = {s.name: _login(root, s, accessor) for s in scenarios if s.identity}
        tokens += [token for token, _, _ in logins.values()]
        jobs = [(scenario, policy_set) for scenario in scenarios for policy_set in scenario.sets]

        def ask(job: tuple[Scenario, PolicySet]) -> tuple[list[str], dict[str, list[str]]]:
            scenario, policy_set = job
            token, entity_id, _ = logins.get(scenario.name, ("", "", None))
            if not policy_set.with_entity:
                created = root.auth.token.create(policies=list(policy_set.policies), no_default_policy=True, ttl=TTL)
                token = created["auth"]["client_token"]
                tokens.append(token)
            paths = [Template(path).substitute(entity_id=entity_id) for path in scenario.paths]
            return paths, root.adapter.post("/v1/sys/capabilities", json={"token": token, "paths": paths})["data"]

        with ThreadPoolExecutor(WORKERS) as pool:
            answered = list(pool.map(ask, jobs))
        cases, mismatches = 0, []
        for (scenario, policy_set), (paths, answers) in zip(jobs, answered, strict=True):
            acl = Acl(
                {name: bodies[name] for name in policy_set.policies},
                logins[scenario.name][2] if policy_set.with_entity else None,
                trailing_slash_globs=slash_globs,
            )
            decisions = [(path, acl.capabilities(path), answers[path]) for path in paths]
            wrong = [
                (path, offline, answer) for path, offline, answer in decisions if list(offline.capabilities) != answer
            ]
            cases += len(paths)
            if wrong:
                mismatches.append(_describe(scenario, policy_set, bodies, wrong))
        print(
            f"acl corpus on {lab_server.product}: {cases} cases, {len(scenarios)} scenarios, {len(tokens)} tokens, "
            f"{time.monotonic() - started:.1f}s"
        )
        assert not mismatches, f"{len(mismatches)} policy sets answer differently offline:\n" + "\n".join(mismatches)
    finally:
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(root.auth.token.revoke, tokens))
        _clean(root, scenarios)


def _login(root: hvac.Client, scenario: Scenario, accessor: str) -> tuple[str, str, dict[str, str]]:
    """A token of the scenario's entity from an approle login with its with-entity policy set:
    (token, entity id, the entity's identity entries as the server holds them after the login)."""
    identity = scenario.identity
    policies = next(s.policies for s in scenario.sets if s.with_entity)
    role = scenario.name
    root.auth.approle.create_or_update_approle(
        role, token_policies=list(policies), token_no_default_policy=True, token_ttl=TTL, mount_point=MOUNT
    )
    role_id = root.auth.approle.read_role_id(role, mount_point=MOUNT)["data"]["role_id"]
    # The entity and its alias first: approle names the alias by role_id, so the login attaches to it.
    entity_id = root.secrets.identity.create_or_update_entity(name=identity.name, metadata=identity.metadata)["data"][
        "id"
    ]
    root.secrets.identity.create_or_update_entity_alias(name=role_id, canonical_id=entity_id, mount_accessor=accessor)
    secret_id = root.auth.approle.generate_secret_id(role, metadata=identity.alias_metadata, mount_point=MOUNT)
    auth = root.auth.approle.login(role_id, secret_id["data"]["secret_id"], use_token=False, mount_point=MOUNT)["auth"]
    assert auth["entity_id"] == entity_id, auth  # else the templates would resolve from another entity
    entity = root.secrets.identity.read_entity(entity_id)["data"]
    assert entity["aliases"][0]["metadata"] == {**identity.alias_metadata, "role_name": role}, entity
    return auth["client_token"], entity_id, identity_from_entity(entity)


def _clean(root: hvac.Client, scenarios: list[Scenario]) -> None:
    """What a run leaves (or a crashed run left): the approle mount (its roles and tokens go with it),
    the entities (their aliases go with them), the policies."""
    if f"{MOUNT}/" in root.sys.list_auth_methods()["data"]:
        root.sys.disable_auth_method(MOUNT)
    for scenario in scenarios:
        if scenario.identity:
            root.secrets.identity.delete_entity_by_name(scenario.identity.name)
        for name in scenario.policies:
            if name != "root":
                root.sys.delete_policy(name)


def _describe(scenario: Scenario, policy_set: PolicySet, bodies: dict[str, str], wrong: list) -> str:
    lines = [f"- {scenario.name}: token {'with' if policy_set.with_entity else 'without'} entity, policies:"]
    lines += [f"    {name}:\n      " + bodies[name].strip().replace("\n", "\n      ") for name in policy_set.policies]
    lines += [
        f"    {path!r}: offline {list(o.capabilities)} (rules {list(o.rules)}), server {a}" for path, o, a in wrong
    ]
    return "\n".join(lines)
