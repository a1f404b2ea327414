"""A fleet made the way Terraform's vault and kubernetes providers make it, taken over by `vaultfleet
adopt` while two workloads log in once a second (issue 27, the second "before" fleet).

Made here without vaultfleet's code, with the requests those providers send:
- lab-d at Vault's default path `auth/kubernetes` (vault_auth_backend), its reviewer `vault/vault`
  (kubernetes_service_account, a token Secret, kubernetes_cluster_role_binding `vault-tokenreview`),
  roles without `audience` whose token_policies list several per-team policies;
- lab-f at a jwt mount `auth/jwt-lab-f` (vault_jwt_auth_backend with the cluster's signing keys,
  vault_jwt_auth_backend_role binding the namespace and ServiceAccount as claims);
- a database secrets engine at `postgres` whose leases the workloads hold through the adoption.
"""

from __future__ import annotations

import secrets
import time

import hvac
import pytest
import yaml
from kubernetes import client
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.harness import LoginLoop, copy_project, destroy_stacks, root_client, up_stacks, vault_token
from tests.lab import database as lab_db
from tests.lab import k8s
from vaultfleet.cli import app
from vaultfleet.kube import issuer_keys

pytestmark = [pytest.mark.lab, pytest.mark.server, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()
MOUNTS = {"lab-d": "kubernetes", "lab-f": "jwt-lab-f"}
DB_MOUNT, DB_ROLE = "postgres", "payments"
POLICIES = {
    "payments-read": 'path "kv/data/payments/*" {\n  capabilities = ["read"]\n}\n',
    "shared-read": 'path "kv/data/shared/+" {\n  capabilities = ["read", "list"]\n}\n',
    "db-payments": f'path "{DB_MOUNT}/creds/{DB_ROLE}" {{\n  capabilities = ["read"]\n}}\n',
}
KUBERNETES_ROLES = {
    "payments": {
        "bound_service_account_names": ["api"],
        "bound_service_account_namespaces": ["payments"],
        "token_policies": ["payments-read", "shared-read", "db-payments"],
        "token_ttl": 1200,
        "token_max_ttl": 0,
        "token_type": "default",
        "alias_name_source": "serviceaccount_uid",
    },
    "ops": {
        "bound_service_account_names": ["deployer"],
        "bound_service_account_namespaces": ["*"],
        "token_policies": ["shared-read"],
        "token_ttl": 600,
        "token_max_ttl": 0,
        "token_type": "default",
        "alias_name_source": "serviceaccount_uid",
    },
}
JWT_ROLES = {
    "api": {
        "role_type": "jwt",
        "user_claim": "sub",
        "bound_audiences": ["vault"],
        "bound_claims": {"/kubernetes.io/namespace": "payments", "/kubernetes.io/serviceaccount/name": "api"},
        "bound_claims_type": "string",
        "token_policies": ["payments-read", "db-payments"],
        "token_ttl": 1200,
    },
}


def api_server(lab, cluster: str) -> str:
    return next(c.server for c in lab.clusters if c.name == cluster)


def apply_like_terraform(lab, admin_password: SecretStr) -> None:
    api = k8s.api_client(str(lab.kubeconfig), "lab-d")
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    k8s.ensure_namespace(api, "vault")
    k8s.ensure_service_account(api, "vault", "vault")
    core.create_namespaced_secret(
        "vault",
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="vault-token", annotations={"kubernetes.io/service-account.name": "vault"}
            ),
            type="kubernetes.io/service-account-token",
        ),
    )
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name="vault-tokenreview"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="vault", namespace="vault")],
        )
    )
    vault = root_client(lab)
    vault.sys.enable_auth_method("kubernetes", path=MOUNTS["lab-d"])
    vault.write(
        f"auth/{MOUNTS['lab-d']}/config",
        kubernetes_host=api_server(lab, "lab-d"),
        kubernetes_ca_cert=lab.pki("lab-d").ca_cert.read_text(),
        token_reviewer_jwt=k8s.wait_for_secret_token(api, "vault", "vault-token"),
        disable_iss_validation=True,
    )
    for name, body in KUBERNETES_ROLES.items():
        vault.write(f"auth/{MOUNTS['lab-d']}/role/{name}", **body)
    issuer, keys = issuer_keys(k8s.api_client(str(lab.kubeconfig), "lab-f"))
    vault.sys.enable_auth_method("jwt", path=MOUNTS["lab-f"])
    vault.write(f"auth/{MOUNTS['lab-f']}/config", jwt_validation_pubkeys=keys, bound_issuer=issuer)
    for name, body in JWT_ROLES.items():
        vault.write(f"auth/{MOUNTS['lab-f']}/role/{name}", **body)
    for name, body in POLICIES.items():
        vault.sys.create_or_update_policy(name, body)
    lab_db.engine_by_hand(vault, lab.postgres, admin_password, DB_MOUNT, DB_ROLE)


def take_down(lab) -> None:
    vault = root_client(lab)
    mounts = vault.sys.list_auth_methods()["data"]
    for mount in MOUNTS.values():
        if f"{mount}/" in mounts:
            vault.sys.disable_auth_method(mount)
    if f"{DB_MOUNT}/" in vault.sys.list_mounted_secrets_engines()["data"]:
        vault.sys.disable_secrets_engine(DB_MOUNT)  # revokes its leases: their users are dropped
    for name in [*POLICIES, *(f"vaultfleet-apply-{cluster}" for cluster in MOUNTS)]:
        vault.sys.delete_policy(name)
    api = k8s.api_client(str(lab.kubeconfig), "lab-d")
    try:
        client.RbacAuthorizationV1Api(api).delete_cluster_role_binding("vault-tokenreview")
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    k8s.delete_namespace(api, "vault")


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("adopt-terraform"))
    for name in ("lab-a", "lab-b"):  # the shared stack alone: the adopted clusters are its clusters
        (project / "stacks" / f"Pulumi.{name}.yaml").unlink()
    lab_db.prepare(lab.postgres, admin_password := SecretStr(secrets.token_urlsafe(24)))
    up_stacks(project, lab_env, ["vault"])
    apply_like_terraform(lab, admin_password)
    try:
        yield project
    finally:
        try:
            destroy_stacks(project, lab_env, [*MOUNTS, "vault"])
        finally:
            take_down(lab)
            lab_db.drop(lab.postgres)


def workload(lab, cluster: str, audience: str | None):
    """payments/api of `cluster`: a function logging it in once at the cluster's mount."""
    api = k8s.api_client(str(lab.kubeconfig), cluster)
    k8s.ensure_namespace(api, "payments")
    k8s.ensure_service_account(api, "payments", "api")
    jwt = k8s.request_token(api, "payments", "api", audience=audience)

    def log_in() -> hvac.Client:
        vault = hvac.Client(url=lab.vault_addr)
        if cluster == "lab-f":
            vault.auth.jwt.jwt_login(role="api", jwt=jwt, path=MOUNTS[cluster])
        else:
            vault.auth.kubernetes.login("payments", jwt, mount_point=MOUNTS[cluster])
        return vault

    return log_in


def adopt(cluster: str, *extra: str):
    return runner.invoke(app, ["adopt", cluster, "--context", cluster, "--mount", MOUNTS[cluster], *extra])


def edit(project, cluster: str, change) -> None:
    path = project / "stacks" / f"Pulumi.{cluster}.yaml"
    document = yaml.safe_load(path.read_text())
    change(document["config"]["vaultfleet:roles"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def test_a_terraform_made_fleet_is_adopted_and_tightened_without_one_failed_login(project, lab):
    vault = root_client(lab)
    mounts = vault.sys.list_auth_methods()["data"]
    accessors = {cluster: mounts[f"{mount}/"]["accessor"] for cluster, mount in MOUNTS.items()}
    kubernetes_roles = {n: vault.read(f"auth/kubernetes/role/{n}")["data"] for n in KUBERNETES_ROLES}
    logins = {"lab-d": workload(lab, "lab-d", None), "lab-f": workload(lab, "lab-f", "vault")}
    # Tokens and database leases issued before adoption, by the workloads' own logins.
    before = {cluster: log_in() for cluster, log_in in logins.items()}
    token_accessors = {cluster: c.lookup_token()["data"]["accessor"] for cluster, c in before.items()}
    leases = {cluster: c.read(f"{DB_MOUNT}/creds/{DB_ROLE}")["lease_id"] for cluster, c in before.items()}

    with LoginLoop(logins) as loop:
        for cluster in MOUNTS:
            shown = adopt(cluster)
            print(shown.output)  # the differences adopt reports, for the record
            assert shown.exit_code == 3, shown.output
            assert not (project / "stacks" / f"Pulumi.{cluster}.yaml").exists()
            adopted = adopt(cluster, "--accept")
            assert adopted.exit_code == 0, adopted.output
        jwt_shown = yaml.safe_load((project / "stacks/Pulumi.lab-f.yaml").read_text())["config"]
        assert jwt_shown["vaultfleet:cluster"]["authMode"] == "jwt"
        preview = runner.invoke(app, ["preview", "vault", *MOUNTS, "--expect-no-changes"])
        assert preview.exit_code == 0, preview.output

        # Nothing recreated: the mounts, the kubernetes roles, the policies, the tokens issued before;
        # their database leases still renew.
        mounts = vault.sys.list_auth_methods()["data"]
        assert {cluster: mounts[f"{mount}/"]["accessor"] for cluster, mount in MOUNTS.items()} == accessors
        assert {n: vault.read(f"auth/kubernetes/role/{n}")["data"] for n in KUBERNETES_ROLES} == kubernetes_roles
        assert {n: vault.sys.read_policy(n)["data"]["rules"] for n in POLICIES} == POLICIES
        for cluster, token in before.items():
            assert token.lookup_token()["data"]["accessor"] == token_accessors[cluster]
            renewed = token.sys.renew_lease(leases[cluster], increment=600)
            assert renewed["lease_id"] == leases[cluster] and renewed["lease_duration"] > 0

        for cluster in MOUNTS:
            verified = runner.invoke(app, ["verify", cluster])
            assert verified.exit_code == 0, verified.output

        # An ordinary fleet now: a change narrows lab-d's `*` and adds a role to lab-f's jwt mount.
        edit(project, "lab-d", lambda roles: next(r for r in roles if r["name"] == "ops").update(namespaces=["ops"]))
        edit(
            project,
            "lab-f",
            lambda roles: roles.append(
                {
                    "name": "batch",
                    "serviceAccounts": ["batch"],
                    "namespaces": ["payments"],
                    "existingPolicies": ["shared-read"],
                    "audience": "vault",
                }
            ),
        )
        # The admin's shared stack first (the applier policy gains the new role), then each
        # adopted cluster as its applier, like any other cluster.
        up = runner.invoke(app, ["up", "vault"])
        assert up.exit_code == 0, up.output
        appliers = [f"vaultfleet-apply-{cluster}" for cluster in MOUNTS]
        with vault_token(vault, appliers, "30m") as token, pytest.MonkeyPatch.context() as env:
            env.setenv("VAULT_TOKEN", token)
            up = runner.invoke(app, ["up", *MOUNTS])
        assert up.exit_code == 0, up.output
        assert vault.read("auth/kubernetes/role/ops")["data"]["bound_service_account_namespaces"] == ["ops"]
        assert vault.read("auth/jwt-lab-f/role/batch")["data"]["token_policies"] == ["shared-read"]
        time.sleep(2)  # a last login or two after the final up
    print(loop.summary())
    assert loop.failed == {"lab-d": [], "lab-f": []}
    assert min(loop.done.values()) > 10


def test_a_jwt_role_bound_by_subject_is_refused_naming_the_field_and_nothing_is_written(project, lab):
    vault = root_client(lab)
    issuer, keys = issuer_keys(k8s.api_client(str(lab.kubeconfig), "lab-f"))
    vault.sys.enable_auth_method("jwt", path="odd-jwt")
    try:
        vault.write("auth/odd-jwt/config", jwt_validation_pubkeys=keys, bound_issuer=issuer)
        vault.write("auth/odd-jwt/role/api", **JWT_ROLES["api"])
        # Control: the same mount is adoptable as it is (its differences listed, exit 3).
        argv = ["adopt", "odd-jwt", "--context", "lab-f", "--mount", "odd-jwt"]
        control = runner.invoke(app, argv)
        assert control.exit_code == 3, control.output
        # The docs' way of binding one ServiceAccount: jwt mode binds claims, and a role write
        # would keep the subject without the stack file saying so.
        vault.write("auth/odd-jwt/role/api", **JWT_ROLES["api"], bound_subject="system:serviceaccount:payments:api")
        refused = runner.invoke(app, [*argv, "--accept"])
        assert refused.exit_code == 2, refused.output
        assert "auth/odd-jwt/role/api: bound_subject: 'system:serviceaccount:payments:api' (refused: bind it" in (
            refused.output.replace("\n", " ")
        )
        assert not (project / "stacks" / "Pulumi.odd-jwt.yaml").exists()
        role = vault.read("auth/odd-jwt/role/api")["data"]
        assert role["bound_subject"] == "system:serviceaccount:payments:api" and role["claim_mappings"] is None
    finally:
        vault.sys.disable_auth_method("odd-jwt")
