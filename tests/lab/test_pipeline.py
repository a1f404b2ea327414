"""The pipeline's identities (issue 14): a CI job logs in with its own OIDC token at the shared
stack's jwt mount, its claims decide previewer or applier, and the previewer reads what a preview
needs and can write nothing.

The CI system is a stand-in issuer the test owns: its own key pair, tokens signed per claim set.
"""

from __future__ import annotations

import base64
import json
import time

import hvac
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kubernetes import client
from typer.testing import CliRunner

from tests.conftest import edit_stack, use_state_key
from tests.lab import k8s
from tests.lab.conftest import copy_project, destroy_stacks, enable_transit, root_client, use_lab_for_cli
from vaultfleet.cli import app

# Server-dependent: the server's jwt auth method checks the tokens and its ACLs answer the attacks.
pytestmark = [pytest.mark.lab, pytest.mark.server, pytest.mark.usefixtures("lab_cli")]
runner = CliRunner()

ISSUER = "https://ci.vaultfleet.test"
AUDIENCE = "vaultfleet-lab"
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


def login(lab, jwt: str, role: str) -> hvac.Client:
    client = hvac.Client(url=lab.vault_addr)
    client.auth.jwt.jwt_login(role=role, jwt=jwt, path="ci")
    return client


def policies(client: hvac.Client) -> list[str]:
    return sorted(client.auth.token.lookup_self()["data"]["policies"])


def test_1_the_claims_decide_the_identity(lab, project):
    assert policies(login(lab, ci_token(PULL_REQUEST), "previewer")) == ["default", "vaultfleet-previewer"]
    # The project copy has two cluster stack files: the applier holds each one's applier policy.
    applier = ["default", "vaultfleet-apply-lab-a", "vaultfleet-apply-lab-b"]
    assert policies(login(lab, ci_token(MAIN), "applier")) == applier
    assert policies(login(lab, ci_token(MAIN), "previewer")) == ["default", "vaultfleet-previewer"]
    with pytest.raises(hvac.exceptions.VaultError):  # a pull request is not the protected branch
        login(lab, ci_token(PULL_REQUEST), "applier")


REFUSED = {
    "another repository": dict(claims={**PULL_REQUEST, "repository": "mallory/fleet"}),
    "the main branch outside its environment": dict(claims={**MAIN, "environment": "sandbox"}, role="applier"),
    "another audience": dict(audience="https://github.com/mallory"),
    "another issuer": dict(issuer="https://token.mallory.test"),
    "signed by another key": dict(key=OTHER_KEY),
    "expired": dict(expires_in=-120),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_2_a_token_with_the_wrong_repository_branch_audience_issuer_key_or_expiry_is_refused(lab, project, case):
    options = dict(REFUSED[case])
    role = options.pop("role", "previewer")
    claims = options.pop("claims", PULL_REQUEST)
    with pytest.raises(hvac.exceptions.VaultError):
        login(lab, ci_token(claims, **options), role)


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
    previewer = login(lab, ci_token(PULL_REQUEST), "previewer")
    monkeypatch.setenv("VAULT_TOKEN", previewer.token)
    monkeypatch.setenv("KUBECONFIG", str(previewer_kubeconfig))
    result = runner.invoke(app, ["preview", "vault", "lab-a", "--refresh", "--expect-no-changes", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert all(stack["ok"] for stack in json.loads(result.stdout))
    assert vault_listing(lab) == before


def _attacks():
    """What a stolen pull-request token would try first; each must be refused."""
    return {
        "write a policy granting path *": lambda c: c.sys.create_or_update_policy(
            "k8s-lab-a-evil", 'path "*" { capabilities = ["sudo", "create", "read", "update", "delete", "list"] }'
        ),
        "rewrite a cluster policy": lambda c: c.sys.create_or_update_policy(
            "k8s-lab-a-kv-read", 'path "*" { capabilities = ["read"] }'
        ),
        "attach the admin-like root policy to a role": lambda c: c.auth.kubernetes.create_role(
            "app", ["*"], ["*"], policies=["root"], mount_point="k8s-lab-a"
        ),
        "point a cluster's mount at an attacker's host": lambda c: c.write(
            "auth/k8s-lab-a/config", kubernetes_host="https://attacker.example:443"
        ),
        "enable a new auth mount": lambda c: c.sys.enable_auth_method("kubernetes", path="k8s-evil"),
        "enable a secrets engine": lambda c: c.sys.enable_secrets_engine("kv", path="evil"),
        "disable a cluster's mount": lambda c: c.sys.disable_auth_method("k8s-lab-a"),
        "read a KV secret": lambda c: c.secrets.kv.v2.read_secret_version(
            "clusters/lab-a/app", mount_point="kv", raise_on_deleted_version=True
        ),
        "write a KV secret": lambda c: c.secrets.kv.v2.create_or_update_secret(
            "clusters/lab-a/app", {"x": "y"}, mount_point="kv"
        ),
        "mint a token with other policies": lambda c: c.auth.token.create(policies=["vaultfleet-apply-lab-a"]),
        "turn the pipeline's applier role to any repository": lambda c: c.write(
            "auth/ci/role/applier",
            role_type="jwt",
            user_claim="sub",
            bound_audiences=[AUDIENCE],
            bound_claims={"repository": "mallory/fleet"},
            token_policies=["vaultfleet-apply-lab-a"],
        ),
        "list the identities of the fleet": lambda c: c.list("identity/entity-alias/id"),
        "decrypt the shared stack's state key": lambda c: c.write(
            "transit/decrypt/vaultfleet-vault", ciphertext="vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ),
        "wrap a new data key with a cluster's state key": lambda c: c.write(
            "transit/encrypt/vaultfleet-lab-a", plaintext="AAAA"
        ),
        "export a cluster's state key": lambda c: c.read("transit/export/encryption-key/vaultfleet-lab-a"),
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
    root_client(lab).secrets.kv.v2.create_or_update_secret(
        "clusters/lab-a/app", {"password": "s3cret"}, mount_point="kv"
    )
    previewer = login(lab, ci_token(PULL_REQUEST), "previewer")
    with pytest.raises(hvac.exceptions.Forbidden):
        _attacks()[attack](previewer)


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
