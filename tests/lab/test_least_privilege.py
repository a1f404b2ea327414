"""The applier of one cluster (issue 14): a token holding only `vaultfleet-apply-lab-a`, the policy
the privileged shared stack writes from lab-a's stack file, is enough to up, refresh and destroy
lab-a's stack, with the stack's secrets under its own Vault Transit key and no passphrase, and
every escalation with it is refused by Vault."""

from __future__ import annotations

import json

import hvac
import pytest
from typer.testing import CliRunner

from tests.conftest import use_state_key
from tests.lab.conftest import (
    copy_project,
    destroy_stacks,
    enable_transit,
    plain_stack_export,
    root_client,
    use_lab_for_cli,
    vault_token,
)
from vaultfleet.cli import app

# Server-dependent: what the applier policy allows and refuses is the server's ACL evaluation.
pytestmark = [pytest.mark.lab, pytest.mark.server]
runner = CliRunner()


@pytest.fixture(scope="module")
def applier(lab, lab_env, tmp_path_factory):
    """(project, token): the shared stack up with the admin token, a token of lab-a's applier."""
    project = copy_project(tmp_path_factory.mktemp("applier"))
    for cluster in ("lab-a", "lab-b"):  # the shared stack makes both keys, lab-a's applier may use one
        use_state_key(project, cluster)
    root = root_client(lab)
    enable_transit(root)
    with pytest.MonkeyPatch.context() as mp:
        use_lab_for_cli(mp, project, lab_env)
        assert runner.invoke(app, ["up", "vault"]).exit_code == 0  # the privileged stage, once
    root.secrets.kv.v2.create_or_update_secret("clusters/lab-a/db", secret={"password": "s3cret"}, mount_point="kv")
    with vault_token(root, ["vaultfleet-apply-lab-a"], "30m") as token:
        yield project, token
    destroy_stacks(project, lab_env, ["lab-a", "vault"])


def test_1_the_applier_ups_refreshes_and_destroys_its_cluster_stack(lab, lab_env, applier, monkeypatch):
    project, token = applier
    # No passphrase: the stack's data key is wrapped by its Transit key, with the applier's token.
    env = {k: v for k, v in lab_env.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
    for key in lab_env.keys() - env.keys():
        monkeypatch.delenv(key, raising=False)
    use_lab_for_cli(monkeypatch, project, {**env, "VAULT_TOKEN": token})
    up = runner.invoke(app, ["up", "lab-a"])
    assert up.exit_code == 0, up.output
    state = json.loads(
        plain_stack_export(project, "lab-a", {**env, "VAULT_SERVER_URL": lab.vault_addr, "VAULT_SERVER_TOKEN": token})
    )
    assert state["deployment"]["secrets_providers"]["state"]["url"] == "hashivault://vaultfleet-lab-a"
    secrets = [r for r in state["deployment"]["resources"] if "ciphertext" in json.dumps(r.get("outputs", {}))]
    assert secrets, "the reviewer JWT is kept in the state, encrypted"
    root = root_client(lab)
    assert root.auth.kubernetes.read_role("app", mount_point="k8s-lab-a")["token_policies"] == ["k8s-lab-a-kv-read"]
    # A refresh reads everything back with the same token.
    again = runner.invoke(app, ["preview", "lab-a", "--expect-no-changes"])
    assert again.exit_code == 0, again.output
    down = runner.invoke(app, ["destroy", "lab-a", "--yes"])
    assert down.exit_code == 0, down.output
    assert not root.list("auth/k8s-lab-a/role"), "its roles are gone"
    assert "k8s-lab-a/" in root.sys.list_auth_methods()["data"], "the mount is the shared stack's"
    assert runner.invoke(app, ["up", "lab-a"]).exit_code == 0  # back, for the attacks on a live stack


def _role(policies=None, **extra) -> dict:
    params = {"bound_service_account_names": ["app"], "bound_service_account_namespaces": ["app"], **extra}
    if policies is not None:
        params["token_policies"] = policies
    return params


ATTACKS = {
    "write a policy granting path *": lambda c, lab: c.sys.create_or_update_policy(
        "k8s-lab-a-evil", 'path "*" { capabilities = ["sudo", "create", "read", "update", "delete", "list"] }'
    ),
    "rewrite its own cluster's policy body": lambda c, lab: c.sys.create_or_update_policy(
        "k8s-lab-a-kv-read", 'path "*" { capabilities = ["read"] }'
    ),
    "attach the admin-like root policy to a role": lambda c, lab: c.write("auth/k8s-lab-a/role/app", **_role(["root"])),
    "attach its role's policy plus root": lambda c, lab: c.write(
        "auth/k8s-lab-a/role/app", **_role(["k8s-lab-a-kv-read", "root"])
    ),
    "attach another cluster's policy": lambda c, lab: c.write(
        "auth/k8s-lab-a/role/app", **_role(["k8s-lab-b-kv-write"])
    ),
    "attach its own cluster's other policy to a role not granted it": lambda c, lab: c.write(
        "auth/k8s-lab-a/role/app", **_role(["k8s-lab-a-kv-write"])
    ),
    "attach a policy through the legacy `policies` parameter": lambda c, lab: c.write(
        "auth/k8s-lab-a/role/app", **_role(), policies=["root"]
    ),
    "make the role's tokens periodic (never expire)": lambda c, lab: c.write(
        "auth/k8s-lab-a/role/app", **_role(["k8s-lab-a-kv-read"], token_period=86400)
    ),
    "create a role the stack file does not declare": lambda c, lab: c.write(
        "auth/k8s-lab-a/role/backdoor", **_role(["k8s-lab-a-kv-read"])
    ),
    "point its cluster's mount at an attacker's host": lambda c, lab: c.write(
        "auth/k8s-lab-a/config",
        kubernetes_host="https://attacker.example:443",
        kubernetes_ca_cert=lab.pki("lab-a").ca_cert.read_text(),
        disable_iss_validation=True,
    ),
    "configure another cluster's mount": lambda c, lab: c.write(
        "auth/k8s-lab-b/config", kubernetes_host=lab.clusters[1].server, disable_iss_validation=True
    ),
    "write a role at another cluster's mount": lambda c, lab: c.write(
        "auth/k8s-lab-b/role/app", **_role(["k8s-lab-b-kv-read"])
    ),
    "enable a new auth mount": lambda c, lab: c.sys.enable_auth_method("kubernetes", path="k8s-evil"),
    "enable a secrets engine": lambda c, lab: c.sys.enable_secrets_engine("kv", path="evil"),
    "disable its cluster's mount": lambda c, lab: c.sys.disable_auth_method("k8s-lab-a"),
    "mint a token with other policies": lambda c, lab: c.auth.token.create(policies=["k8s-lab-a-kv-write"]),
    "read a KV secret": lambda c, lab: c.secrets.kv.v2.read_secret_version(
        "clusters/lab-a/db", mount_point="kv", raise_on_deleted_version=True
    ),
    "decrypt another cluster's state": lambda c, lab: c.write(
        "transit/decrypt/vaultfleet-lab-b", ciphertext="vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    ),
    "export its state key's material": lambda c, lab: c.read("transit/export/encryption-key/vaultfleet-lab-a"),
    "make its state key deletable": lambda c, lab: c.write(
        "transit/keys/vaultfleet-lab-a/config", deletion_allowed=True
    ),
    "rotate its state key": lambda c, lab: c.write("transit/keys/vaultfleet-lab-a/rotate"),
    "create a transit key of its own": lambda c, lab: c.write("transit/keys/evil"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_2_every_escalation_with_the_applier_is_refused(lab, applier, attack):
    _, token = applier
    root = root_client(lab)
    before = root.auth.kubernetes.read_role("app", mount_point="k8s-lab-a")
    with pytest.raises(hvac.exceptions.Forbidden):
        ATTACKS[attack](hvac.Client(url=lab.vault_addr, token=token), lab)
    assert root.auth.kubernetes.read_role("app", mount_point="k8s-lab-a") == before
