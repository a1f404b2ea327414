"""The Pulumi program itself (__main__.py) under Pulumi's mocks, for each auth mode and the shared
stack: its config read from Pulumi's config store as the engine fills it, what it registers with
which provider, and bad input stopping it before anything is registered. The lab runs the same
program against real servers; here each branch runs in a second."""

from __future__ import annotations

import json
import runpy

import pulumi
import pytest

from tests.harness import Mocks, copy_project_files, edit_stack
from tests.unit.test_pipeline import pin_endpoints
from vaultfleet.stackfile import Project

KEYS = ("PEM-KEY-1", "PEM-KEY-2")


@pytest.fixture()
def fleet(tmp_path, monkeypatch):
    """A project copy whose cluster stacks need no kubeconfig (apiHost and caCert pinned), with the
    program's files, as the program's working directory."""
    root = copy_project_files(tmp_path, program=True)
    pin_endpoints(root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    # jwt mode reads the cluster's issuer and keys; no cluster here.
    monkeypatch.setattr("vaultfleet.kube.jwt_issuer", lambda stack: ("https://issuer.lab-a", list(KEYS)))
    return root


def run_program(root, stack: str, mocks: Mocks | None = None) -> Mocks:
    """__main__.py for `stack`, with the config the engine would hand it (Pulumi.yaml's defaults and
    the stack file, objects as JSON), under mocks; returns what it registered."""
    stack_file = Project(root).stack(stack)
    config = {
        f"vaultfleet:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in stack_file.values.items()
    }
    mocks = mocks or Mocks()
    pulumi.runtime.set_mocks(mocks, project="vaultfleet", stack=stack, preview=False)
    pulumi.runtime.set_all_config(config, [])
    try:

        @pulumi.runtime.test
        def program():
            runpy.run_path(str(root / "__main__.py"), run_name="__main__")

        program()
    finally:
        pulumi.runtime.set_all_config({}, [])
    return mocks


def _json(value) -> dict:
    """A JSON input as the mocks hand it back: the provider marks data_json secret."""
    from pulumi.runtime import rpc

    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        value = value["value"]
    return json.loads(value)


def types(mocks: Mocks) -> set[str]:
    return {r.typ for r in mocks.resources}


def test_a_reviewer_token_cluster_makes_its_reviewer_config_and_roles_and_no_mount(fleet):
    mocks = run_program(fleet, "lab-a")
    assert {
        "kubernetes:core/v1:ServiceAccount",
        "kubernetes:core/v1:Secret",
        "vault:kubernetes/authBackendConfig:AuthBackendConfig",
    } <= types(mocks)
    roles = {r.inputs["roleName"]: r.inputs for r in mocks.of_type("vault:kubernetes/authBackendRole:AuthBackendRole")}
    assert set(roles) == {"app", "deployer"}
    assert (roles["app"]["audience"], roles["app"]["tokenType"]) == ("vault", "service")
    # The mount and the policy bodies are the shared stack's.
    assert not mocks.of_type("vault:index/authBackend:AuthBackend") and not mocks.of_type("vault:index/policy:Policy")
    (vault_provider,) = mocks.of_type("pulumi:providers:vault")
    assert vault_provider.inputs["address"] == "http://127.0.0.1:18200"


@pytest.mark.parametrize(("kubeconfig", "given"), [("one-file", "one-file"), ("users.yaml:eks.yaml", "")])
def test_the_kubernetes_provider_loads_a_kubeconfig_list_itself(fleet, monkeypatch, kubeconfig, given):
    """One file: its path, as the SDK passes $KUBECONFIG. A list (issue 30): "", so the provider
    loads $KUBECONFIG with client-go's rules instead of parsing `a:b` as a kubeconfig's contents."""
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    (kube_provider,) = run_program(fleet, "lab-a").of_type("pulumi:providers:kubernetes")
    assert (kube_provider.inputs["context"], kube_provider.inputs.get("kubeconfig")) == ("lab-a", given)


def test_a_client_jwt_cluster_binds_its_roles_accounts_and_stores_no_reviewer(fleet):
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:cluster"].update(authMode="client-jwt"))
    mocks = run_program(fleet, "lab-a")
    assert not mocks.of_type("kubernetes:core/v1:Secret")
    (binding,) = mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    assert sorted((s["namespace"], s["name"]) for s in binding.inputs["subjects"]) == [
        ("app", "app"),
        ("ci", "deployer"),
    ]


def test_a_jwt_cluster_writes_the_keys_it_read_and_nothing_in_the_cluster(fleet):
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:cluster"].update(authMode="jwt"))
    mocks = run_program(fleet, "lab-a")
    assert not [t for t in types(mocks) if t.startswith("kubernetes:") and not t.startswith("pulumi:")]
    endpoints = {
        r.inputs["path"]: _json(r.inputs["dataJson"]) for r in mocks.of_type("vault:generic/endpoint:Endpoint")
    }
    config = endpoints["auth/k8s-lab-a/config"]
    assert config == {"jwt_validation_pubkeys": sorted(KEYS), "bound_issuer": "https://issuer.lab-a"}
    assert {"auth/k8s-lab-a/role/app", "auth/k8s-lab-a/role/deployer"} <= endpoints.keys()


def test_the_shared_stack_makes_every_mount_tuned_and_pins_jwt_keys_in_the_applier_policy(fleet):
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:cluster"].update(authMode="jwt"))
    mocks = run_program(fleet, "vault")
    mounts = {b.inputs["path"]: b.inputs for b in mocks.of_type("vault:index/authBackend:AuthBackend")}
    assert (mounts["k8s-lab-a"]["type"], mounts["k8s-lab-b"]["type"]) == ("jwt", "kubernetes")
    assert mounts["k8s-lab-b"]["tune"]["maxLeaseTtl"] == "14400s"  # app's maxTtl 4h, the longest
    policies = {p.inputs["name"]: p.inputs["policy"] for p in mocks.of_type("vault:index/policy:Policy")}
    assert '"jwt_validation_pubkeys" = [["PEM-KEY-1", "PEM-KEY-2"]]' in policies["vaultfleet-apply-lab-a"]
    assert not mocks.of_type("pulumi:providers:kubernetes")  # the shared stack writes nothing in a cluster


def test_bad_input_stops_the_program_before_anything_is_registered(fleet):
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:roles"][0].update(audiences="vault"))
    mocks = Mocks()
    with pytest.raises(Exception, match=r"stacks/Pulumi.lab-a.yaml: vaultfleet:roles\[0\].audiences: unknown field"):
        run_program(fleet, "lab-a", mocks)
    assert mocks.resources == []


def test_each_policy_template_is_rendered_once_per_run(fleet, monkeypatch):
    # The cluster's roles ask for consumer objects, which read the rendered policies' paths: the
    # same rendering as the policy names, not a second one per role.
    edit_stack(fleet, "lab-a", lambda c: [r.update(consumers=["eso", "vso"]) for r in c["vaultfleet:roles"]])
    from vaultfleet.render import policy

    rendered = []
    real = policy.render
    monkeypatch.setattr(policy, "render", lambda name, *a, **k: rendered.append(name) or real(name, *a, **k))
    mocks = run_program(fleet, "lab-a")
    assert mocks.of_type("kubernetes:external-secrets.io/v1:SecretStore")  # consumers were made
    assert sorted(rendered) == ["kv-read", "kv-write"]


def test_a_cluster_wired_by_hand_keeps_its_mount_path_binding_policies_and_token_type(fleet):
    def own_names(config):
        config["vaultfleet:cluster"].update(mountPath="kubernetes", reviewerBinding="role-tokenreview-binding")
        config["vaultfleet:roles"][0].update(existingPolicies=["team-a-read"], tokenType="default")

    edit_stack(fleet, "lab-a", own_names)
    mocks = run_program(fleet, "lab-a")
    (binding,) = mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    assert binding.inputs["metadata"]["name"] == "role-tokenreview-binding"
    (config,) = mocks.of_type("vault:kubernetes/authBackendConfig:AuthBackendConfig")
    assert config.inputs["backend"] == "kubernetes"
    roles = {r.inputs["roleName"]: r.inputs for r in mocks.of_type("vault:kubernetes/authBackendRole:AuthBackendRole")}
    assert roles["app"]["backend"] == "kubernetes"
    assert sorted(roles["app"]["tokenPolicies"]) == ["k8s-lab-a-kv-read", "team-a-read"]
    assert (roles["app"]["tokenType"], roles["deployer"]["tokenType"]) == ("default", "service")

    shared = run_program(fleet, "vault")
    mounts = {b.inputs["path"] for b in shared.of_type("vault:index/authBackend:AuthBackend")}
    assert mounts == {"kubernetes", "k8s-lab-b"}
    policies = {p.inputs["name"]: p.inputs["policy"] for p in shared.of_type("vault:index/policy:Policy")}
    assert "team-a-read" not in policies  # attached by name, never written
    assert 'path "auth/kubernetes/role/app"' in policies["vaultfleet-apply-lab-a"]
    assert 'path "auth/kubernetes/role/*"' in policies["vaultfleet-previewer"]


def test_under_adopt_each_object_found_is_imported_by_its_id_and_nothing_else(fleet, monkeypatch, tmp_path):
    found = {
        "vault:kubernetes/authBackendConfig:AuthBackendConfig auth/k8s-lab-a/config": ["tokenReviewerJwt"],
        "vault:kubernetes/authBackendRole:AuthBackendRole auth/k8s-lab-a/role/app": [],
        "kubernetes:core/v1:ServiceAccount kube-system/vault-auth": [],
    }
    (tmp_path / "found.json").write_text(json.dumps(found))
    monkeypatch.setenv("VAULTFLEET_ADOPT_IDS", str(tmp_path / "found.json"))
    mocks = run_program(fleet, "lab-a")
    imported = {f"{r.typ} {r.resource_id}" for r in mocks.resources if r.resource_id}
    assert imported == set(found)  # the deployer role, the Secret, the binding: not found, so made


def test_the_shared_stack_refuses_two_clusters_on_one_mount_before_registering_anything(fleet):
    # lab-a's file claims lab-b's mount: its applier policy would pin writes to lab-b's roles.
    edit_stack(fleet, "lab-a", lambda c: c["vaultfleet:cluster"].update(mountPath="k8s-lab-b"))
    mocks = Mocks()
    with pytest.raises(Exception) as refused:
        run_program(fleet, "vault", mocks)
    # Each file that claims the path is named, the one that set mountPath with that field.
    for line in (
        "stacks/Pulumi.lab-a.yaml: vaultfleet:cluster.mountPath: mount path 'k8s-lab-b' is also used by stack 'lab-b'",
        "stacks/Pulumi.lab-b.yaml: vaultfleet:mountPrefix: mount path 'k8s-lab-b' is also used by stack 'lab-a'",
    ):
        assert line in str(refused.value)
    assert mocks.resources == []
