"""The applier of one cluster (issues 14 and 25): a token holding only `vaultfleet-apply-lab-a`, the
policy the privileged shared stack writes from lab-a's stack file, is enough to up, refresh and
destroy lab-a's stack, with the stack's secrets under its own Vault Transit key and no passphrase;
every escalation with it is refused by Vault, and the chains an attacker would try (rebind a role,
then log in with the reviewer JWT the applier can decrypt from its own state) end in a refused login.

Each refusal: the same token's legitimate request succeeds first (the declared role or config
written as the provider writes it, or its own Transit key used), the attack is refused with
"permission denied", and its target, read back as root, is unchanged."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import hvac
import pytest
from kubernetes import client
from typer.testing import CliRunner

from tests.harness import (
    copy_project,
    destroy_stacks,
    edit_stack,
    enable_transit,
    login,
    plain_stack_export,
    root_client,
    use_lab_for_cli,
    use_state_key,
    vault_token,
)
from tests.lab import k8s
from tests.lab.refusals import denied, refused
from vaultfleet.cli import app
from vaultfleet.fleet.engine import pulumi_command
from vaultfleet.render.applier import set_order

# Server-dependent: what the applier policy allows and refuses is the server's ACL evaluation.
pytestmark = [pytest.mark.lab, pytest.mark.server]
runner = CliRunner()


ORDERED = {
    "name": "ordered",
    "serviceAccounts": ["zeta", "alpha", "mid"],
    "namespaces": ["ns-a", "ns-b"],
    "policies": ["kv-write", "kv-read"],
    "audience": "vault",
}


@pytest.fixture(scope="module")
def applier(lab, lab_env, tmp_path_factory):
    """(project, token): the shared stack up with the admin token, a token of lab-a's applier."""
    project = copy_project(tmp_path_factory.mktemp("applier"))
    for cluster in ("lab-a", "lab-b"):  # the shared stack makes both keys, lab-a's applier may use one
        use_state_key(project, cluster)
    # Lists the applier policy pins in the provider's own order, which is neither the file's nor
    # sorted (render/applier.py set_order): a wrong order would refuse test_1's up.
    edit_stack(project, "lab-a", lambda config: config["vaultfleet:roles"].append(ORDERED))
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


# lab-a's roles as its stack file declares them, in the body the provider writes (set order for the
# set-valued fields): the applier's legitimate write, and the base each attack changes one field of.
DECLARED = {
    "app": {
        "bound_service_account_names": ["app"],
        "bound_service_account_namespaces": ["app"],
        "token_policies": ["k8s-lab-a-kv-read"],
        "audience": "vault",
        "token_type": "service",
        "token_ttl": 3600,
        "token_max_ttl": 14400,
    },
    "deployer": {
        "bound_service_account_names": ["deployer"],
        "bound_service_account_namespaces": ["ci"],
        "token_policies": set_order(["k8s-lab-a-kv-read", "k8s-lab-a-kv-write"]),
        "audience": "vault",
        "token_type": "service",
        "token_ttl": 900,
    },
}
MOUNT_MAX_TTL = 14400  # the longest lifetime lab-a's file declares (app's maxTtl): the mount's tuned max


@pytest.fixture(scope="module")
def lab_a_up(lab, lab_env, applier):
    """lab-a's stack up as its applier (test_1 leaves it so; this brings it up when test_1 did not run)."""
    project, token = applier
    if "app" not in (root_client(lab).list("auth/k8s-lab-a/role") or {}).get("data", {}).get("keys", []):
        with pytest.MonkeyPatch.context() as mp:
            use_lab_for_cli(mp, project, {**lab_env, "VAULT_TOKEN": token})
            assert runner.invoke(app, ["up", "lab-a"]).exit_code == 0
    return project, token


def write_role(vault: hvac.Client, name: str = "app", mount: str = "k8s-lab-a", **change):
    return vault.write(f"auth/{mount}/role/{name}", **{**DECLARED[name], **change})


def write_config(vault: hvac.Client, lab, cluster: str = "lab-a", **change):
    """The cluster's mount config as its stack writes it (reviewer-token mode): the reviewed host and
    CA, the reviewer's token from the cluster."""
    api = k8s.api_client(str(lab.kubeconfig), cluster)
    body = {
        "kubernetes_host": next(c.server for c in lab.clusters if c.name == cluster),
        "kubernetes_ca_cert": lab.pki(cluster).ca_cert.read_text(),
        "token_reviewer_jwt": k8s.wait_for_secret_token(api, "kube-system", "vault-auth-token"),
        "disable_iss_validation": True,
    }
    return vault.write(f"auth/k8s-{cluster}/config", **{**body, **change})


def encrypt(vault: hvac.Client):
    return vault.write("transit/encrypt/vaultfleet-lab-a", plaintext="AAAA")


@dataclass(frozen=True)
class Attack:
    attack: Callable[[hvac.Client, object], object]
    control: Callable[[hvac.Client, object], object]
    """The same token's legitimate request, on the same path or mount where there is one."""
    target: Callable[[hvac.Client], object] | None
    """What the attack would change, read as root before and after; None: nothing to read back."""


def _role_attack(name: str = "app", mount: str = "k8s-lab-a", **change) -> Attack:
    return Attack(
        attack=lambda c, lab: write_role(c, name, mount, **change),
        control=lambda c, lab: write_role(c, name),
        target=lambda root: (root.read(f"auth/{mount}/role/{name}") or {}).get("data"),  # None: no such role
    )


def _policy(name: str) -> Callable[[hvac.Client], object]:
    return lambda root: (
        root.sys.read_policy(name)["data"]["rules"] if name in root.sys.list_policies()["data"]["policies"] else None
    )


def _key(name: str) -> Callable[[hvac.Client], object]:
    return lambda root: (
        root.read(f"transit/keys/{name}")["data"]
        if name in (root.list("transit/keys") or {}).get("data", {}).get("keys", [])
        else None
    )


def _listing(path: str) -> Callable[[hvac.Client], object]:
    return lambda root: sorted(root.read(path)["data"])


def write_declared_app(c: hvac.Client, lab) -> object:
    """The control of the attacks that touch no role: the token writes its declared role."""
    return write_role(c)


def kv_secret(root: hvac.Client) -> object:
    return root.secrets.kv.v2.read_secret_version("clusters/lab-a/db", mount_point="kv", raise_on_deleted_version=True)[
        "data"
    ]


ATTACKS = {
    # Policy bodies and policies attached: the privileged stage's alone.
    "write a policy granting path *": Attack(
        lambda c, lab: c.sys.create_or_update_policy(
            "k8s-lab-a-evil", 'path "*" { capabilities = ["sudo", "create", "read", "update", "delete", "list"] }'
        ),
        write_declared_app,
        _policy("k8s-lab-a-evil"),
    ),
    "rewrite its own cluster's policy body": Attack(
        lambda c, lab: c.sys.create_or_update_policy("k8s-lab-a-kv-read", 'path "*" { capabilities = ["read"] }'),
        write_declared_app,
        _policy("k8s-lab-a-kv-read"),
    ),
    "attach the admin-like root policy to a role": _role_attack(token_policies=["root"]),
    "attach its role's policy plus root": _role_attack(token_policies=["k8s-lab-a-kv-read", "root"]),
    "attach another cluster's policy": _role_attack(token_policies=["k8s-lab-b-kv-write"]),
    "attach its own cluster's other policy to a role not granted it": _role_attack(
        token_policies=["k8s-lab-a-kv-write"]
    ),
    "attach a policy through the legacy `policies` parameter": _role_attack(policies=["root"]),
    # Who logs in (issue 25, attack 1): bindings and audience exactly as reviewed.
    "rebind a role to the reviewer's ServiceAccount without an audience": _role_attack(
        "deployer",
        bound_service_account_names=["vault-auth"],
        bound_service_account_namespaces=["kube-system"],
        audience="",
    ),
    "rebind a role to every ServiceAccount in every namespace": _role_attack(
        bound_service_account_names=["*"], bound_service_account_namespaces=["*"]
    ),
    "add a ServiceAccount to a role's binding": _role_attack(bound_service_account_names=["app", "intruder"]),
    "add a namespace to a role's binding": _role_attack(bound_service_account_namespaces=["app", "kube-system"]),
    "bind a role's namespaces as a comma-separated string": _role_attack(bound_service_account_namespaces="app,ci"),
    "bind every namespace through a label selector": _role_attack(
        bound_service_account_namespace_selector='{"matchLabels": {}}'
    ),
    "drop a role's audience": _role_attack(audience=""),
    "accept another audience": _role_attack(audience="https://kubernetes.default.svc"),
    # What the token is (issue 25, attack 4).
    "make a role's tokens batch tokens (not revocable)": _role_attack(token_type="batch"),
    "make a role's tokens periodic (never expire)": _role_attack(token_period=86400),
    "bind a role's tokens to an attacker's network": _role_attack(token_bound_cidrs=["203.0.113.0/24"]),
    "name a role's identity aliases by ServiceAccount name": _role_attack(alias_name_source="serviceaccount_name"),
    "drop the default policy from a role's tokens": _role_attack(token_no_default_policy=True),
    "create a role the stack file does not declare": Attack(
        lambda c, lab: c.write("auth/k8s-lab-a/role/backdoor", **DECLARED["app"]),
        write_declared_app,
        lambda root: sorted(root.list("auth/k8s-lab-a/role")["data"]["keys"]),
    ),
    # The mount and the rest of the fleet.
    "point its cluster's mount at an attacker's host": Attack(
        lambda c, lab: write_config(c, lab, kubernetes_host="https://attacker.example:443"),
        lambda c, lab: write_config(c, lab),
        lambda root: root.read("auth/k8s-lab-a/config")["data"],
    ),
    "configure another cluster's mount": Attack(
        lambda c, lab: c.write(
            "auth/k8s-lab-b/config",
            kubernetes_host=next(cl.server for cl in lab.clusters if cl.name == "lab-b"),
            kubernetes_ca_cert=lab.pki("lab-b").ca_cert.read_text(),
            disable_iss_validation=True,
        ),
        lambda c, lab: write_config(c, lab),
        lambda root: root.read("auth/k8s-lab-b/config"),  # None: lab-b's stack is not up in this module
    ),
    "write a role at another cluster's mount": _role_attack(mount="k8s-lab-b", token_policies=["k8s-lab-b-kv-read"]),
    "enable a new auth mount": Attack(
        lambda c, lab: c.sys.enable_auth_method("kubernetes", path="k8s-evil"), write_declared_app, _listing("sys/auth")
    ),
    "enable a secrets engine": Attack(
        lambda c, lab: c.sys.enable_secrets_engine("kv", path="evil"), write_declared_app, _listing("sys/mounts")
    ),
    "disable its cluster's mount": Attack(
        lambda c, lab: c.sys.disable_auth_method("k8s-lab-a"), write_declared_app, _listing("sys/auth")
    ),
    # No token of the applier's choice: nothing is left to read back when it is refused.
    "mint a token with other policies": Attack(
        lambda c, lab: c.auth.token.create(policies=["k8s-lab-a-kv-write"]),
        lambda c, lab: c.auth.token.lookup_self(),
        None,
    ),
    "read a KV secret": Attack(
        lambda c, lab: c.secrets.kv.v2.read_secret_version(
            "clusters/lab-a/db", mount_point="kv", raise_on_deleted_version=True
        ),
        lambda c, lab: c.read("auth/k8s-lab-a/role/app"),
        kv_secret,
    ),
    # Its state key: wrap and unwrap with it, nothing else.
    "decrypt another cluster's state": Attack(
        lambda c, lab: c.write(
            "transit/decrypt/vaultfleet-lab-b", ciphertext="vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ),
        lambda c, lab: encrypt(c),
        _key("vaultfleet-lab-b"),
    ),
    "export its state key's material": Attack(
        lambda c, lab: c.read("transit/export/encryption-key/vaultfleet-lab-a"),
        lambda c, lab: encrypt(c),
        _key("vaultfleet-lab-a"),
    ),
    "make its state key deletable": Attack(
        lambda c, lab: c.write("transit/keys/vaultfleet-lab-a/config", deletion_allowed=True),
        lambda c, lab: encrypt(c),
        _key("vaultfleet-lab-a"),
    ),
    "rotate its state key": Attack(
        lambda c, lab: c.write("transit/keys/vaultfleet-lab-a/rotate"),
        lambda c, lab: encrypt(c),
        _key("vaultfleet-lab-a"),
    ),
    "create a transit key of its own": Attack(
        lambda c, lab: c.write("transit/keys/evil"), lambda c, lab: encrypt(c), _key("evil")
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_2_every_escalation_with_the_applier_is_refused(lab, lab_a_up, attack):
    _, token = lab_a_up
    case = ATTACKS[attack]
    root = root_client(lab)
    applier = hvac.Client(url=lab.vault_addr, token=token)
    case.control(applier, lab)  # the same token's legitimate request: allowed
    before = case.target(root) if case.target else None
    denied(lambda: case.attack(applier, lab))
    if case.target:
        assert case.target(root) == before, f"{attack}: changed although refused"


def reviewer_jwt_from_state(project, lab, token: str, lab_env: dict[str, str]) -> str:
    """What a stolen applier token can take out of its stack's state: the reviewer JWT, decrypted with
    the stack's Transit key (the applier may; no passphrase)."""
    env = {k: v for k, v in lab_env.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
    env.update(VAULT_SERVER_URL=lab.vault_addr, VAULT_SERVER_TOKEN=token)
    shown = pulumi_command().run(["stack", "export", "--show-secrets", "--stack", "lab-a"], str(project), env)
    resources = json.loads(shown.stdout)["deployment"]["resources"]
    (config,) = [r for r in resources if r["type"] == "vault:kubernetes/authBackendConfig:AuthBackendConfig"]
    jwt = config["outputs"]["tokenReviewerJwt"]
    return json.loads(jwt["plaintext"]) if isinstance(jwt, dict) else jwt


def test_3_the_reviewer_jwt_in_the_appliers_state_logs_in_nowhere_even_after_a_role_is_recreated(
    lab, lab_env, lab_a_up
):
    project, token = lab_a_up
    jwt = reviewer_jwt_from_state(project, lab, token, lab_env)
    # Positive control: it is the live reviewer token, as the API server authenticates it.
    api = k8s.api_client(str(lab.kubeconfig), "lab-a")
    review = client.AuthenticationV1Api(api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=jwt))
    )
    assert review.status.user.username == "system:serviceaccount:kube-system:vault-auth", review.status
    root = root_client(lab)
    applier = hvac.Client(url=lab.vault_addr, token=token)
    # The chain of attack 1 through the one gap a policy leaves (render/applier.py): delete a
    # declared role and create it again without its audience (allowed), bound to the reviewer (the
    # pinned bindings refuse that; test_2 names the reason), then log in with the reviewer's JWT.
    applier.delete("auth/k8s-lab-a/role/deployer")
    without_audience = {k: v for k, v in DECLARED["deployer"].items() if k != "audience"}
    reviewer = {"bound_service_account_names": ["vault-auth"], "bound_service_account_namespaces": ["kube-system"]}
    with contextlib.suppress(hvac.exceptions.Forbidden):
        applier.write("auth/k8s-lab-a/role/deployer", **{**without_audience, **reviewer})
    if root.read("auth/k8s-lab-a/role/deployer") is None:
        applier.write("auth/k8s-lab-a/role/deployer", **without_audience)
    assert not root.read("auth/k8s-lab-a/role/deployer")["data"].get("audience")
    # app keeps its audience, which the reviewer's legacy token lacks; deployer, now without one, is
    # decided by its pinned binding.
    reasons = {"app": r"invalid audience \(aud\) claim", "deployer": r"(service account name|namespace) not authorized"}
    try:
        for role, reason in reasons.items():
            refused(
                lambda role=role: hvac.Client(url=lab.vault_addr).auth.kubernetes.login(
                    role, jwt, mount_point="k8s-lab-a"
                ),
                reason,
            )
    finally:
        write_role(applier, "deployer")  # as declared again
    assert root.read("auth/k8s-lab-a/role/deployer")["data"]["audience"] == "vault"


def test_4_a_ttl_the_applier_chooses_is_capped_by_the_mount(lab, lab_a_up):
    _, token = lab_a_up
    applier = hvac.Client(url=lab.vault_addr, token=token)
    # TTLs cannot be pinned: ten years is accepted for the role...
    write_role(applier, token_ttl=10 * 365 * 86400, token_max_ttl=10 * 365 * 86400)
    try:
        workload = login(lab, "lab-a", "app", "app", "app")
        # ...and the token gets at most the mount's max, which only the shared stack may tune.
        assert 0 < workload.auth.token.lookup_self()["data"]["ttl"] <= MOUNT_MAX_TTL
        workload.auth.token.revoke_self()
    finally:
        write_role(applier)
    tuned = root_client(lab).read("sys/auth/k8s-lab-a/tune")["data"]
    assert tuned["max_lease_ttl"] == MOUNT_MAX_TTL, tuned
