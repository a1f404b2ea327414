"""A cluster wired by hand, as the shell walkthroughs do it, taken over by `vaultfleet adopt` and
let go by `vaultfleet release`, with a workload logging in once a second throughout (issue 27).

The "before" is made here without vaultfleet's code: a `vault-auth` ServiceAccount in `default`
with a token Secret and a ClusterRoleBinding of its own name, `vault auth enable -path=lab-e
kubernetes`, its config, hand-named policies (one with a `+` segment, one with a `deny`), a role
binding every namespace and one bound by name, alias_name_source left as it is.
Adopted in the shared layout, released, then adopted again in the per-cluster layout.
"""

from __future__ import annotations

import re
import secrets
import time

import hvac
import pytest
import yaml
from kubernetes import client
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.harness import (
    LoginLoop,
    copy_project,
    destroy_stacks,
    plain_stack_export,
    root_client,
    set_cluster_access,
    up_stacks,
)
from tests.lab import database as lab_db
from tests.lab import k8s
from vaultfleet.cli import app

pytestmark = [pytest.mark.lab, pytest.mark.server, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()
CLUSTER = MOUNT = "lab-e"
ACCESS = f"vault.{CLUSTER}"  # its access stack once the fleet is in the per-cluster layout
DB_MOUNT, DB_ROLE = "database", "readonly"  # `vault secrets enable database`, as the walkthroughs do
POLICIES = {
    "team-read": 'path "kv/data/teams/+/config" {\n  capabilities = ["read"]\n}\n',
    "team-deny": 'path "kv/data/teams/secret/*" {\n  capabilities = ["deny"]\n}\n',
    "db-read": f'path "{DB_MOUNT}/creds/{DB_ROLE}" {{\n  capabilities = ["read"]\n}}\n',
}
ROLES = {
    "app": {
        "bound_service_account_names": ["app"],
        "bound_service_account_namespaces": ["*"],
        "token_policies": ["team-read", "team-deny", "db-read"],
        "token_ttl": 3600,
    },
    "web": {
        "bound_service_account_names": ["web"],
        "bound_service_account_namespaces": ["web"],
        "token_policies": ["team-read"],
        "token_ttl": 1800,
        "token_max_ttl": 7200,
    },
}


def api_server(lab) -> str:
    return next(c.server for c in lab.clusters if c.name == CLUSTER)


def wire_by_hand(lab, db_password: SecretStr) -> None:
    """What an admin ran before vaultfleet: kubectl and vault commands, as the walkthroughs show."""
    api = k8s.api_client(str(lab.kubeconfig), CLUSTER)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    k8s.ensure_service_account(api, "default", "vault-auth")
    core.create_namespaced_secret(
        "default",
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="vault-auth-secret", annotations={"kubernetes.io/service-account.name": "vault-auth"}
            ),
            type="kubernetes.io/service-account-token",
        ),
    )
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name="role-tokenreview-binding"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="vault-auth", namespace="default")],
        )
    )
    reviewer_jwt = k8s.wait_for_secret_token(api, "default", "vault-auth-secret")
    vault = root_client(lab)
    vault.sys.enable_auth_method("kubernetes", path=MOUNT)
    vault.write(
        f"auth/{MOUNT}/config",
        kubernetes_host=api_server(lab),
        kubernetes_ca_cert=lab.pki(CLUSTER).ca_cert.read_text(),
        token_reviewer_jwt=reviewer_jwt,
    )
    for name, body in POLICIES.items():
        vault.sys.create_or_update_policy(name, body)
    for name, body in ROLES.items():
        vault.write(f"auth/{MOUNT}/role/{name}", **body)
    lab_db.engine_by_hand(vault, lab.postgres, db_password, DB_MOUNT, DB_ROLE)


def unwire(lab) -> None:
    api = k8s.api_client(str(lab.kubeconfig), CLUSTER)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    for delete in (
        lambda: rbac.delete_cluster_role_binding("role-tokenreview-binding"),
        lambda: core.delete_namespaced_secret("vault-auth-secret", "default"),
        lambda: core.delete_namespaced_service_account("vault-auth", "default"),
    ):
        try:
            delete()
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    vault = root_client(lab)
    if f"{MOUNT}/" in vault.sys.list_auth_methods()["data"]:
        vault.sys.disable_auth_method(MOUNT)
    if f"{DB_MOUNT}/" in vault.sys.list_mounted_secrets_engines()["data"]:
        vault.sys.disable_secrets_engine(DB_MOUNT)  # revokes its leases: their users are dropped
    for name in [*POLICIES, f"vaultfleet-apply-{CLUSTER}"]:
        vault.sys.delete_policy(name)


def workload(lab):
    """app/app of lab-e, as the loop and the token issued before adoption log it in."""
    api = k8s.api_client(str(lab.kubeconfig), CLUSTER)
    k8s.ensure_namespace(api, "app")
    k8s.ensure_service_account(api, "app", "app")
    jwt = k8s.request_token(api, "app", "app", audience=None)

    def log_in() -> hvac.Client:
        vault = hvac.Client(url=lab.vault_addr)
        vault.auth.kubernetes.login("app", jwt, mount_point=MOUNT)
        return vault

    return jwt, log_in


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("adopt"))
    # A fleet of the shared stack alone: the adopted cluster is its only cluster.
    for name in ("lab-a", "lab-b"):
        (project / "stacks" / f"Pulumi.{name}.yaml").unlink()
    up_stacks(project, lab_env, ["vault"])  # the fleet as the pipeline applied it
    lab_db.prepare(lab.postgres, db_password := SecretStr(secrets.token_urlsafe(24)))
    wire_by_hand(lab, db_password)
    try:
        yield project
    finally:
        try:
            destroy_stacks(project, lab_env, [CLUSTER, ACCESS, "vault"])
        finally:
            unwire(lab)  # what a release left behind, or a failed adopt
            lab_db.drop(lab.postgres)


def without_salt(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("encryptionsalt:"))


def adopt(*extra: str):
    return runner.invoke(app, ["adopt", CLUSTER, "--context", CLUSTER, "--mount", MOUNT, *extra])


def test_adopt_without_one_failed_login_then_release_and_adopt_again(project, lab, lab_env):
    vault = root_client(lab)
    accessor = vault.sys.list_auth_methods()["data"][f"{MOUNT}/"]["accessor"]
    roles_before = {name: vault.read(f"auth/{MOUNT}/role/{name}")["data"] for name in ROLES}
    jwt, log_in = workload(lab)
    # A token and a database lease issued before adoption, by the workload's own login.
    before = log_in()
    token_accessor = before.lookup_token()["data"]["accessor"]
    lease = before.read(f"{DB_MOUNT}/creds/{DB_ROLE}")["lease_id"]
    with LoginLoop({CLUSTER: log_in}) as loop:
        shown = adopt()
        assert shown.exit_code == 3, shown.output
        assert "max_lease_ttl" in shown.output and "token_reviewer_jwt" in shown.output
        assert not (project / "stacks" / f"Pulumi.{CLUSTER}.yaml").exists()

        adopted = adopt("--accept")
        assert adopted.exit_code == 0, adopted.output
        stack_file = (project / "stacks" / f"Pulumi.{CLUSTER}.yaml").read_text()
        preview = runner.invoke(app, ["preview", "vault", CLUSTER, "--expect-no-changes"])
        assert preview.exit_code == 0, preview.output

        # Nothing was recreated or rewritten: the mount, the roles, the token issued before.
        assert vault.sys.list_auth_methods()["data"][f"{MOUNT}/"]["accessor"] == accessor
        assert {name: vault.read(f"auth/{MOUNT}/role/{name}")["data"] for name in ROLES} == roles_before
        assert before.lookup_token()["data"]["accessor"] == token_accessor
        assert before.sys.renew_lease(lease, increment=600)["lease_duration"] > 0
        assert {n: vault.sys.read_policy(n)["data"]["rules"] for n in POLICIES} == POLICIES

        verified = runner.invoke(app, ["verify", CLUSTER])
        assert verified.exit_code == 0, verified.output

        # Adopting it twice is refused; releasing it changes nothing, and adopting it again writes
        # the same stack file.
        again = adopt("--accept")
        assert again.exit_code == 2 and "already exists" in again.output, again.output
        released = runner.invoke(app, ["release", CLUSTER, "--yes"])
        assert released.exit_code == 0, released.output
        assert "resources out of the shared stack's state" in released.output
        assert not (project / "stacks" / f"Pulumi.{CLUSTER}.yaml").exists()
        assert vault.sys.list_auth_methods()["data"][f"{MOUNT}/"]["accessor"] == accessor
        assert before.lookup_token()["data"]["accessor"] == token_accessor
        # Adopted again in the per-cluster layout (docs/fleet-layout.md): its mount and policies go
        # to its access stack vault.lab-e this time, the rest as before.
        set_cluster_access(project, "per-cluster")
        readopted = adopt("--accept")
        assert readopted.exit_code == 0, readopted.output
        assert runner.invoke(app, ["preview", "vault", ACCESS, CLUSTER, "--expect-no-changes"]).exit_code == 0
        # The same file but Pulumi's own line: `stack init` salts a new stack's passphrase anew.
        assert without_salt((project / "stacks" / f"Pulumi.{CLUSTER}.yaml").read_text()) == without_salt(stack_file)

        # From now on an ordinary stack: a new role applies.
        path = project / "stacks" / f"Pulumi.{CLUSTER}.yaml"
        document = yaml.safe_load(path.read_text())
        document["config"]["vaultfleet:roles"].append(
            {"name": "batch", "serviceAccounts": ["batch"], "namespaces": ["batch"], "existingPolicies": ["team-read"]}
        )
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        up = runner.invoke(app, ["up", "vault", ACCESS, CLUSTER])
        assert up.exit_code == 0, up.output
        assert vault.read(f"auth/{MOUNT}/role/batch")["data"]["token_policies"] == ["team-read"]
        time.sleep(2)  # a last login or two after the final up
    print(loop.summary())
    assert loop.failed == {CLUSTER: []} and loop.done[CLUSTER] > 10
    # The reviewer JWT the import read is in the state only as ciphertext, and so is any other JWT
    # (header.payload. in base64url; a ciphertext's base64 holds no `.`, though `eyJ` by chance).
    state = plain_stack_export(project, CLUSTER, lab_env)
    assert jwt.split(".")[0] not in state and not re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.", state)
    # vaultfleet did not make the mount: destroying both stacks leaves it, and the token issued
    # before adoption, as they were (its roles go with the cluster's stack).
    destroyed = runner.invoke(app, ["destroy", CLUSTER, ACCESS, "vault", "--yes"])
    assert destroyed.exit_code == 0, destroyed.output
    assert vault.sys.list_auth_methods()["data"][f"{MOUNT}/"]["accessor"] == accessor
    assert before.lookup_token()["data"]["accessor"] == token_accessor


def test_a_role_whose_loss_would_widen_access_is_refused_and_nothing_is_written(project, lab):
    vault = root_client(lab)
    vault.sys.enable_auth_method("kubernetes", path="odd-e")
    try:
        vault.write(
            "auth/odd-e/config",
            kubernetes_host=api_server(lab),
            kubernetes_ca_cert=lab.pki(CLUSTER).ca_cert.read_text(),
            disable_local_ca_jwt=True,  # each login reviews itself: no reviewer to find
        )
        role = {
            "bound_service_account_names": ["app"],
            "bound_service_account_namespaces": ["app"],
            "token_policies": ["team-read"],
            "token_ttl": 600,
        }
        vault.write("auth/odd-e/role/pinned", **role)
        # Control: without the CIDRs the same mount is adoptable (its differences listed, exit 3).
        control = runner.invoke(app, ["adopt", "odd-e", "--context", CLUSTER, "--mount", "odd-e"])
        assert control.exit_code == 3, control.output
        vault.write("auth/odd-e/role/pinned", **role, token_bound_cidrs=["10.0.0.0/8"])
        refused = runner.invoke(app, ["adopt", "odd-e", "--context", CLUSTER, "--mount", "odd-e", "--accept"])
        assert refused.exit_code == 2, refused.output
        assert "auth/odd-e/role/pinned: token_bound_cidrs: ['10.0.0.0/8'] -> [] (refused)" in refused.output
        # Nothing written: no stack file, no stack, the role as it was.
        assert not (project / "stacks" / "Pulumi.odd-e.yaml").exists()
        assert vault.read("auth/odd-e/role/pinned")["data"]["token_bound_cidrs"] == ["10.0.0.0/8"]
    finally:
        vault.sys.disable_auth_method("odd-e")
