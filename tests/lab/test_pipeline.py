"""The pipeline's identities (issue 14): a CI job logs in with its own OIDC token at the shared
stack's jwt mount, its claims decide previewer or applier, and the previewer reads what a preview
needs and can write nothing. The reviewer JWT it can decrypt from a cluster stack's state is a live
token that logs in at no role, and a stack file role that would let it in never reaches Vault.

The CI system is a stand-in issuer the test owns: its own key pair, tokens signed per claim set.
Every refusal is matched by its reason (tests/lab/refusals.py), after the same identity's legitimate
request succeeded, and the target is re-read unchanged after.
"""

from __future__ import annotations

import base64
import json
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass

import hvac
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kubernetes import client
from typer.testing import CliRunner

from tests.harness import (
    copy_project,
    destroy_stacks,
    edit_stack,
    enable_transit,
    login,
    root_client,
    use_lab_for_cli,
    use_state_key,
)
from tests.lab import k8s
from tests.lab.refusals import denied, refused
from vaultfleet.cli import app
from vaultfleet.fleet.engine import pulumi_command

# Server-dependent: the server's jwt auth method checks the tokens and its ACLs answer the attacks.
pytestmark = [pytest.mark.lab, pytest.mark.server, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()

ISSUER = "https://ci.vaultfleet.test"
AUDIENCE = "vaultfleet-lab"
CI = {"method": "jwt", "mount": "ci"}  # how the pipeline logs in: `login(lab, role=..., jwt=ci_token(...), **CI)`
PULL_REQUEST = {"repository": "acme/fleet", "ref": "refs/pull/7/merge", "event_name": "pull_request"}
MAIN = {"repository": "acme/fleet", "ref": "refs/heads/main", "environment": "fleet"}
PREVIEWERS = "vaultfleet:previewers"


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


ISSUER_KEY, OTHER_KEY = _key(), _key()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ci_token(claims: dict, *, key=ISSUER_KEY, issuer=ISSUER, audience=AUDIENCE, expires_in=300) -> str:
    """An OIDC token as the CI system would sign it for a job (RS256)."""
    now = int(time.time())
    payload = {
        "iss": issuer,
        "aud": audience,
        "sub": f"repo:{claims.get('repository', '?')}:ref:{claims.get('ref', '?')}",
        "iat": now - 5,
        "nbf": now - 5,
        "exp": now + expires_in,
        **claims,
    }
    signing_input = f"{_b64(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture(scope="module")
def project(lab, lab_env, tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("pipeline"))
    public = ISSUER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pipeline = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "publicKeys": [public.decode()],
        "previewer": {"repository": "acme/fleet"},
        "applier": {"repository": "acme/fleet", "ref": "refs/heads/main", "environment": "fleet"},
    }
    edit_stack(project, "vault", lambda config: config.update({"vaultfleet:pipeline": pipeline}))
    # lab-a's state under its Transit key, which the previewer may decrypt; the shared stack's own key
    # (the admin's, made by hand) it may not.
    use_state_key(project, "lab-a")
    # lab-a grants the previewer's Kubernetes group read access to what its stack makes there.
    edit_stack(project, "lab-a", lambda config: config["vaultfleet:cluster"].update(previewerGroup=PREVIEWERS))
    root = root_client(lab)
    enable_transit(root)
    root.write("transit/keys/vaultfleet-vault")
    with pytest.MonkeyPatch.context() as mp:
        use_lab_for_cli(mp, project, lab_env)
        result = runner.invoke(app, ["up", "vault", "lab-a"])
        assert result.exit_code == 0, result.output
    yield project
    destroy_stacks(project, lab_env, ["lab-a", "vault"])


def policies(client: hvac.Client) -> list[str]:
    return sorted(client.auth.token.lookup_self()["data"]["policies"])


def bound_claim(*claims: str) -> str:
    """The jwt method's refusal of a claim the role binds to other values (or that the token lacks);
    with several claims at fault, Vault names whichever it checks first (Go's map order)."""
    names = "|".join(claims)
    return f'claim "({names})" (does not match any associated bound claim values|is missing)'


# The jwt method's refusals of a token the role's claims fit but the token itself does not.
AUDIENCE_REFUSED = r"invalid audience \(aud\) claim"
ISSUER_REFUSED = r"invalid issuer \(iss\) claim"
SIGNATURE_REFUSED = r"no known key successfully validated the token signature"
EXPIRED = r"token is expired"


def test_1_the_claims_decide_the_identity(lab, project):
    assert policies(login(lab, role="previewer", jwt=ci_token(PULL_REQUEST), **CI)) == [
        "default",
        "vaultfleet-previewer",
    ]
    # The project copy has two cluster stack files: the applier holds each one's applier policy.
    applier = ["default", "vaultfleet-apply-lab-a", "vaultfleet-apply-lab-b"]
    assert policies(login(lab, role="applier", jwt=ci_token(MAIN), **CI)) == applier
    assert policies(login(lab, role="previewer", jwt=ci_token(MAIN), **CI)) == ["default", "vaultfleet-previewer"]
    # A pull request is not the protected branch: its ref, and it has no environment.
    refused(lambda: login(lab, role="applier", jwt=ci_token(PULL_REQUEST), **CI), bound_claim("ref", "environment"))


# case: (what the token gets wrong, the reason Vault gives)
REFUSED = {
    "another repository": (dict(claims={**PULL_REQUEST, "repository": "mallory/fleet"}), bound_claim("repository")),
    "the main branch outside its environment": (
        dict(claims={**MAIN, "environment": "sandbox"}, role="applier"),
        bound_claim("environment"),
    ),
    "another audience": (dict(audience="https://github.com/mallory"), AUDIENCE_REFUSED),
    "another issuer": (dict(issuer="https://token.mallory.test"), ISSUER_REFUSED),
    "signed by another key": (dict(key=OTHER_KEY), SIGNATURE_REFUSED),
    "expired": (dict(expires_in=-120), EXPIRED),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_2_a_token_with_the_wrong_repository_branch_audience_issuer_key_or_expiry_is_refused(lab, project, case):
    options, reason = REFUSED[case]
    options = dict(options)
    role = options.pop("role", "previewer")
    bound = PULL_REQUEST if role == "previewer" else MAIN
    claims = options.pop("claims", bound)
    root = root_client(lab)
    before = root.read(f"auth/ci/role/{role}")["data"]
    # Positive control: the token the role binds, right in everything, logs in.
    login(lab, role=role, jwt=ci_token(bound), **CI).auth.token.revoke_self()
    refused(lambda: login(lab, role=role, jwt=ci_token(claims, **options), **CI), reason)
    assert root.read(f"auth/ci/role/{role}")["data"] == before


def vault_listing(lab) -> dict:
    root = root_client(lab)
    return {
        "auth": root.sys.list_auth_methods()["data"],
        "mounts": sorted(root.sys.list_mounted_secrets_engines()["data"]),
        "policies": {p: root.sys.read_policy(p)["data"]["rules"] for p in root.sys.list_policies()["data"]["policies"]},
        "roles": root.auth.kubernetes.read_role("app", mount_point="k8s-lab-a"),
        "config": root.read("auth/k8s-lab-a/config")["data"],
    }


@pytest.fixture(scope="module")
def previewer_kubeconfig(lab, tmp_path_factory):
    """The lab's clusters as the pipeline's previewer: a client certificate in PREVIEWERS per cluster."""
    return k8s.kubeconfig_as(lab, "ci-previewer", PREVIEWERS, tmp_path_factory.mktemp("previewer") / "kubeconfig")


def test_3_the_previewer_previews_every_stack_with_refresh_and_changes_nothing(
    lab, project, previewer_kubeconfig, monkeypatch
):
    before = vault_listing(lab)
    previewer = login(lab, role="previewer", jwt=ci_token(PULL_REQUEST), **CI)
    monkeypatch.setenv("VAULT_TOKEN", previewer.token)
    monkeypatch.setenv("KUBECONFIG", str(previewer_kubeconfig))
    result = runner.invoke(app, ["preview", "vault", "lab-a", "--refresh", "--expect-no-changes", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert all(stack["ok"] for stack in json.loads(result.stdout))
    assert vault_listing(lab) == before


@dataclass(frozen=True)
class Attack:
    control: Callable[[hvac.Client, hvac.Client], object]
    """(previewer, root): the previewer's legitimate counterpart on the same path or mount; where it
    has none, root's read of the target, which shows the path exists (so the refusal is the ACL's)."""
    attack: Callable[[hvac.Client], object]
    """(previewer): the escalation."""
    target: Callable[[hvac.Client], object]
    """(root): what the attack would change, re-read after."""
    unchanged: Callable[[object, object], bool] = operator.eq
    """(before, after)"""


def _encrypt(root: hvac.Client, key: str) -> str:
    return root.write(f"transit/encrypt/{key}", plaintext=base64.b64encode(b"data key").decode())["data"]["ciphertext"]


def _kv(root: hvac.Client) -> tuple:
    read = root.secrets.kv.v2.read_secret_version("clusters/lab-a/app", mount_point="kv", raise_on_deleted_version=True)
    return read["data"]["data"], read["data"]["metadata"]["version"]


def _token_accessors(root: hvac.Client) -> set[str]:
    return set(root.list("auth/token/accessors")["data"]["keys"])


def _attacks(root: hvac.Client) -> dict[str, Attack]:
    """What a stolen pull-request token would try first; each must be refused."""
    lab_a_ciphertext = _encrypt(root, "vaultfleet-lab-a")
    shared_ciphertext = _encrypt(root, "vaultfleet-vault")

    def read_a_fleet_policy(previewer, _):
        return previewer.sys.read_policy("k8s-lab-a-kv-read")

    def decrypt_with_lab_as_key(previewer, _):
        return previewer.write("transit/decrypt/vaultfleet-lab-a", ciphertext=lab_a_ciphertext)

    return {
        "write a policy granting path *": Attack(
            read_a_fleet_policy,
            lambda c: c.sys.create_or_update_policy(
                "k8s-lab-a-evil", 'path "*" { capabilities = ["sudo", "create", "read", "update", "delete", "list"] }'
            ),
            lambda r: sorted(r.sys.list_policies()["data"]["policies"]),
        ),
        "rewrite a cluster policy": Attack(
            read_a_fleet_policy,
            lambda c: c.sys.create_or_update_policy("k8s-lab-a-kv-read", 'path "*" { capabilities = ["read"] }'),
            lambda r: r.sys.read_policy("k8s-lab-a-kv-read")["data"]["rules"],
        ),
        "attach the admin-like root policy to a role": Attack(
            lambda c, _: c.auth.kubernetes.read_role("app", mount_point="k8s-lab-a"),
            lambda c: c.auth.kubernetes.create_role("app", ["*"], ["*"], policies=["root"], mount_point="k8s-lab-a"),
            lambda r: r.auth.kubernetes.read_role("app", mount_point="k8s-lab-a"),
        ),
        "point a cluster's mount at an attacker's host": Attack(
            lambda c, _: c.read("auth/k8s-lab-a/config"),
            lambda c: c.write("auth/k8s-lab-a/config", kubernetes_host="https://attacker.example:443"),
            lambda r: r.read("auth/k8s-lab-a/config")["data"],
        ),
        "enable a new auth mount": Attack(
            lambda c, _: c.sys.list_auth_methods(),
            lambda c: c.sys.enable_auth_method("kubernetes", path="k8s-evil"),
            lambda r: sorted(r.sys.list_auth_methods()["data"]),
        ),
        "enable a secrets engine": Attack(
            lambda c, _: c.sys.list_mounted_secrets_engines(),
            lambda c: c.sys.enable_secrets_engine("kv", path="evil"),
            lambda r: sorted(r.sys.list_mounted_secrets_engines()["data"]),
        ),
        "disable a cluster's mount": Attack(
            # It sees the mount in the listing (its tuning and config need sudo, which it lacks).
            lambda c, _: c.sys.list_auth_methods()["data"]["k8s-lab-a/"],
            lambda c: c.sys.disable_auth_method("k8s-lab-a"),
            lambda r: r.sys.list_auth_methods()["data"]["k8s-lab-a/"]["accessor"],
        ),
        # No legitimate counterpart: the previewer reads no secret; root shows the secret is there.
        "read a KV secret": Attack(
            lambda _, r: _kv(r),
            lambda c: c.secrets.kv.v2.read_secret_version(
                "clusters/lab-a/app", mount_point="kv", raise_on_deleted_version=True
            ),
            _kv,
        ),
        "write a KV secret": Attack(
            lambda _, r: _kv(r),
            lambda c: c.secrets.kv.v2.create_or_update_secret("clusters/lab-a/app", {"x": "y"}, mount_point="kv"),
            _kv,
        ),
        # It may look up its own token (the default policy), not make others: no token is new after.
        "mint a token with other policies": Attack(
            lambda c, _: c.auth.token.lookup_self(),
            lambda c: c.auth.token.create(policies=["vaultfleet-apply-lab-a"]),
            _token_accessors,
            lambda before, after: after <= before,
        ),
        "turn the pipeline's applier role to any repository": Attack(
            lambda c, _: c.read("auth/ci/role/applier"),
            lambda c: c.write(
                "auth/ci/role/applier",
                role_type="jwt",
                user_claim="sub",
                bound_audiences=[AUDIENCE],
                bound_claims={"repository": "mallory/fleet"},
                token_policies=["vaultfleet-apply-lab-a"],
            ),
            lambda r: r.read("auth/ci/role/applier")["data"],
        ),
        # No legitimate counterpart: root shows the listing is there (the logins made identities).
        "list the identities of the fleet": Attack(
            lambda _, r: r.list("identity/entity-alias/id")["data"]["keys"],
            lambda c: c.list("identity/entity-alias/id"),
            lambda r: sorted(r.list("identity/entity-alias/id")["data"]["keys"]),
        ),
        # Its counterpart: decrypting with lab-a's key; root shows this ciphertext decrypts.
        "decrypt the shared stack's state key": Attack(
            lambda c, r: (
                decrypt_with_lab_as_key(c, r),
                r.write("transit/decrypt/vaultfleet-vault", ciphertext=shared_ciphertext),
            ),
            lambda c: c.write("transit/decrypt/vaultfleet-vault", ciphertext=shared_ciphertext),
            lambda r: r.read("transit/keys/vaultfleet-vault")["data"],
        ),
        "wrap a new data key with a cluster's state key": Attack(
            decrypt_with_lab_as_key,
            lambda c: c.write("transit/encrypt/vaultfleet-lab-a", plaintext="AAAA"),
            lambda r: r.read("transit/keys/vaultfleet-lab-a")["data"],
        ),
        "export a cluster's state key": Attack(
            lambda c, _: c.read("transit/keys/vaultfleet-lab-a"),  # its settings, never its material
            lambda c: c.read("transit/export/encryption-key/vaultfleet-lab-a"),
            lambda r: r.read("transit/keys/vaultfleet-lab-a")["data"],
        ),
    }


ATTACKS = [
    "write a policy granting path *",
    "rewrite a cluster policy",
    "attach the admin-like root policy to a role",
    "point a cluster's mount at an attacker's host",
    "enable a new auth mount",
    "enable a secrets engine",
    "disable a cluster's mount",
    "read a KV secret",
    "write a KV secret",
    "mint a token with other policies",
    "turn the pipeline's applier role to any repository",
    "list the identities of the fleet",
    "decrypt the shared stack's state key",
    "wrap a new data key with a cluster's state key",
    "export a cluster's state key",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_4_every_escalation_with_the_previewer_is_refused(lab, project, attack):
    root = root_client(lab)
    root.secrets.kv.v2.create_or_update_secret("clusters/lab-a/app", {"password": "s3cret"}, mount_point="kv")
    previewer = login(lab, role="previewer", jwt=ci_token(PULL_REQUEST), **CI)
    case = _attacks(root)[attack]
    before = case.target(root)
    case.control(previewer, root)
    denied(lambda: case.attack(previewer))
    after = case.target(root)
    assert case.unchanged(before, after), (before, after)


def _kube_attacks():
    """What the previewer's Kubernetes identity would try in lab-a; each must be refused (403)."""
    body = {"metadata": {"name": "evil"}}
    return {
        "list the Secrets of the reviewer's namespace": lambda api: client.CoreV1Api(api).list_namespaced_secret(
            "kube-system"
        ),
        "read another Secret": lambda api: client.CoreV1Api(api).read_namespaced_secret("vault-auth-token", "default"),
        "create a ServiceAccount": lambda api: client.CoreV1Api(api).create_namespaced_service_account(
            "kube-system", body
        ),
        "delete the reviewer's auth-delegator binding": lambda api: client.RbacAuthorizationV1Api(
            api
        ).delete_cluster_role_binding("vault-auth-kube-system-auth-delegator"),
        "widen its own ClusterRole": lambda api: client.RbacAuthorizationV1Api(api).patch_cluster_role(
            "vaultfleet-previewer", {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
        ),
        "request a token for the reviewer": lambda api: k8s.request_token(api, "kube-system", "vault-auth"),
    }


@pytest.mark.parametrize("attack", list(_kube_attacks()))
def test_5_the_previewers_kubernetes_identity_reads_only_its_stacks_objects(lab, project, previewer_kubeconfig, attack):
    api = k8s.api_client(str(previewer_kubeconfig), "lab-a")
    # What the refresh reads, it may read...
    assert client.CoreV1Api(api).read_namespaced_service_account("vault-auth", "kube-system").metadata.name
    # ...and nothing else.
    with pytest.raises(client.ApiException) as refused:
        _kube_attacks()[attack](api)
    assert refused.value.status == 403, refused.value


def _reviewer_jwt(export: str) -> str:
    """The reviewer JWT in a `pulumi stack export --show-secrets` of a reviewer-token cluster stack."""
    resources = json.loads(export)["deployment"]["resources"]
    (config,) = [r for r in resources if r["type"] == "vault:kubernetes/authBackendConfig:AuthBackendConfig"]
    jwt = config["outputs"]["tokenReviewerJwt"]
    if isinstance(jwt, dict) and "plaintext" in jwt:  # a secret, as --show-secrets prints it
        jwt = json.loads(jwt["plaintext"])
    return jwt


def _lab_b_in_vault(lab) -> dict:
    """What the shared stack would write for lab-b's roles: its applier policy; and lab-b's roles."""
    root = root_client(lab)
    try:
        roles = root.list("auth/k8s-lab-b/role")
    except hvac.exceptions.InvalidPath:  # none: lab-b's own stack is not up in this module
        roles = None
    return {"roles": roles, "applier": root.sys.read_policy("vaultfleet-apply-lab-b")["data"]["rules"]}


# Why each role of lab-a refuses the reviewer's token (kube-system/vault-auth): a Secret-based token
# carries no `aud`, and both roles require `vault`, which the kubernetes method checks before the
# bindings. A role recreated without its audience (the applier may) is decided by its bindings:
# test_least_privilege.py test_3.
REVIEWER_REFUSED = {"app": AUDIENCE_REFUSED, "deployer": AUDIENCE_REFUSED}
# `vaultfleet up` of a stack whose program stops on an invalid cluster stack file.
UP_REFUSED = 1


def test_6_the_reviewer_jwt_the_previewer_can_decrypt_logs_in_nowhere(lab, lab_env, project):
    previewer = login(lab, role="previewer", jwt=ci_token(PULL_REQUEST), **CI)
    # It decrypts lab-a's state (lab-a's Transit key) with its own token: no passphrase, no root.
    env = {k: v for k, v in lab_env.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
    env.update(VAULT_TOKEN=previewer.token, VAULT_SERVER_URL=lab.vault_addr, VAULT_SERVER_TOKEN=previewer.token)
    shown = pulumi_command().run(["stack", "export", "--show-secrets", "--stack", "lab-a"], str(project), env)
    jwt = _reviewer_jwt(shown.stdout)
    # Positive control: a live token, lab-a's API server authenticates it as the reviewer.
    api = k8s.api_client(str(lab.kubeconfig), "lab-a")
    review = client.AuthenticationV1Api(api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=jwt))
    )
    assert review.status.authenticated, review.status
    assert review.status.user.username == "system:serviceaccount:kube-system:vault-auth"
    # At each role of lab-a's mount it is refused (REVIEWER_REFUSED says why).
    root = root_client(lab)
    roles = root.list("auth/k8s-lab-a/role")["data"]["keys"]
    assert sorted(roles) == sorted(REVIEWER_REFUSED)
    for role in roles:
        before = root.auth.kubernetes.read_role(role, mount_point="k8s-lab-a")
        refused(lambda r=role: login(lab, "lab-a", r, jwt=jwt), REVIEWER_REFUSED[role])
        assert root.auth.kubernetes.read_role(role, mount_point="k8s-lab-a") == before

    # A stack file role that would let it in never reaches Vault: refused before anything is written.
    path = project / "stacks/Pulumi.lab-b.yaml"
    original = path.read_text()
    everyone = {"name": "everyone", "serviceAccounts": ["*"], "namespaces": ["*"], "policies": ["kv-read"]}
    in_vault = _lab_b_in_vault(lab)
    try:
        # Positive control: `*` itself is not what is refused; bound away from kube-system it validates.
        edit_stack(project, "lab-b", lambda c: c["vaultfleet:roles"].append({**everyone, "namespaces": ["app"]}))
        ok = runner.invoke(app, ["validate", "lab-b"])
        assert ok.exit_code == 0, ok.output
        path.write_text(original)
        edit_stack(project, "lab-b", lambda c: c["vaultfleet:roles"].append(everyone))
        result = runner.invoke(app, ["up", "vault"])
        assert result.exit_code == UP_REFUSED, result.output
        for named in ("stacks/Pulumi.lab-b.yaml", "'everyone'", "binds the reviewer's ServiceAccount"):
            assert named in result.output, result.output
    finally:
        path.write_text(original)
    assert _lab_b_in_vault(lab) == in_vault
