"""`vaultfleet verify`: a real login per role, with the cause and fix when it fails.

For each role: a short-lived TokenRequest token of a bound ServiceAccount (created for the check
when missing, deleted afterwards), a login at the cluster's mount, the token's policies, and
`sys/capabilities-self` on every path the role's policies promise. The Vault token is revoked at
the end; nothing is left behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vaultfleet.expectations import PROBE_NAME, RoleAccess, check_live, login_identity
from vaultfleet.render.policy import cluster_policy_rules, for_service_account
from vaultfleet.stackfile.expectations import Located
from vaultfleet.stackfile.schema import ClusterStack

# Vault's login error text -> (cause, fix). Checked in order; first match wins.
CAUSES = [
    (
        "x509",
        "unknown CA: Vault does not trust the API server's certificate",
        "set vaultfleet:cluster.caCert to the API server's CA (PEM)",
    ),
    (
        "certificate signed by unknown authority",
        "unknown CA: Vault does not trust the API server's certificate",
        "set vaultfleet:cluster.caCert to the API server's CA (PEM)",
    ),
    (
        "tokenreviews.authentication.k8s.io",
        "the reviewer ServiceAccount lacks system:auth-delegator",
        "bind the reviewer to ClusterRole system:auth-delegator (vaultfleet up restores the binding)",
    ),
    (
        "invalid issuer",
        "issuer mismatch: the token's iss differs from vaultfleet:cluster.issuer",
        "set vaultfleet:cluster.issuer to the cluster's --service-account-issuer, or remove it",
    ),
    (
        "invalid audience",
        "audience mismatch: the token's aud lacks the role's audience",
        "request tokens for the role's audience (e.g. serviceAccountToken audience), or fix roles[].audience",
    ),
    (
        "aud claim",
        "audience mismatch: the token's aud lacks the role's audience",
        "request tokens for the role's audience, or fix roles[].audience",
    ),
    (
        "service account name not authorized",
        "ServiceAccount not bound to the role",
        "add it to roles[].serviceAccounts",
    ),
    ("namespace not authorized", "namespace not bound to the role", "add it to roles[].namespaces"),
    ("invalid role name", "role missing at the mount", "run vaultfleet up for this stack"),
    ("could not be found", "role missing at the mount", "run vaultfleet up for this stack"),
    (
        "no handler for route",
        "auth mount missing",
        "run vaultfleet up for the shared stack (it makes the mount), then this stack",
    ),
    (
        "unsupported path",
        "auth mount missing",
        "run vaultfleet up for the shared stack (it makes the mount), then this stack",
    ),
    ("not yet configured", "auth mount not configured", "run vaultfleet up for this stack"),
    (
        # jwt mode: Vault checks the signature with the keys it was given at the last `up`.
        "no known key successfully validated",
        "signing key mismatch: the mount's keys are not the ones the cluster signs tokens with (rotated keys?)",
        "run vaultfleet up for the shared stack (it reads the cluster's current keys and pins them in the "
        "applier policy), then for this stack (vaultfleet preview shows the change)",
    ),
    (
        "does not match any associated bound claim values",
        "namespace or ServiceAccount not bound to the role (jwt claims)",
        "add it to roles[].namespaces / roles[].serviceAccounts",
    ),
    (
        "signing key",
        "token signed by another cluster's key (wrong mount or API host)",
        "check vaultfleet:cluster.apiHost points at this cluster",
    ),
]


def diagnose(message: str) -> tuple[str, str]:
    lowered = message.lower()
    for needle, cause, fix in CAUSES:
        if needle.lower() in lowered:
            return cause, fix
    return "login refused: " + message.strip()[:300], "see the message; `vaultfleet validate` the stack"


@dataclass
class RoleCheck:
    role: str
    ok: bool
    service_account: str = ""
    policies: list[str] = field(default_factory=list)
    capabilities: dict[str, list[str]] = field(default_factory=dict)
    expectations: list[str] = field(default_factory=list)
    """Each access expectation of the role (access/*.yaml), checked with the login's token."""
    cause: str | None = None
    fix: str | None = None


def _probe_path(path: str) -> str:
    """A concrete path under a policy path (globs and templated segments filled in)."""
    return path.replace("+", PROBE_NAME).replace("*", PROBE_NAME)


def verify(
    stack: ClusterStack,
    policy_dir,
    vault_addr: str,
    kubeconfig: str | None = None,
    only_role: str | None = None,
    expectations: list[Located] = (),
) -> list[RoleCheck]:
    """`expectations`: the stack's access expectations; each is checked with its role's token."""
    import hvac
    from kubernetes import client

    from vaultfleet.kube import context_client, request_token

    api = context_client(stack.cluster.kube_context, kubeconfig)
    core = client.CoreV1Api(api)
    rules = cluster_policy_rules(stack, policy_dir)
    results = []
    for role in stack.roles:
        if only_role and role.name != only_role:
            continue
        namespace, account = login_identity(role)
        created = _ensure(core, client, namespace, account)
        check = RoleCheck(role=role.name, ok=False, service_account=f"{namespace}/{account}")
        try:
            jwt = request_token(api, namespace, account, audience=role.audience)
            vault = hvac.Client(url=vault_addr)
            try:
                if stack.auth_method == "jwt":
                    login = vault.auth.jwt.jwt_login(role=role.name, jwt=jwt, path=stack.mount_path)
                else:
                    login = vault.auth.kubernetes.login(role.name, jwt, mount_point=stack.mount_path)
            except (hvac.exceptions.VaultError, ValueError) as exc:
                check.cause, check.fix = diagnose(str(exc))
                if check.cause.startswith("login refused: permission denied"):
                    # Vault keeps TokenReview and claim failures in its own log; look ourselves.
                    found = _inspect(stack, vault_addr, jwt, api, (namespace, account))
                    if found:
                        check.cause, check.fix = found
                results.append(check)
                continue
            check.policies = sorted(login["auth"]["token_policies"])
            expected = stack.token_policies(role)
            missing = set(expected) - set(check.policies)
            wrong = []
            for name in expected:
                # Only the rendered policies promise paths; an existing one (existingPolicies) is
                # checked for being attached, its body is Vault's.
                for rule in rules.get(name, []):
                    probe = _probe_path(for_service_account(rule.path, namespace, account))
                    answer = vault.adapter.post("/v1/sys/capabilities-self", json={"paths": [probe]})
                    got = sorted(answer.get(probe, answer.get("capabilities", [])))
                    check.capabilities[probe] = got
                    if not set(rule.capabilities) <= set(got) and "root" not in got:
                        wrong.append(f"{probe}: expected {sorted(rule.capabilities)}, got {got}")
            failed = _expectations(vault, stack, role, policy_dir, expectations, check)
            vault.auth.token.revoke_self()
            if missing:
                check.cause, check.fix = f"token lacks policies {sorted(missing)}", "run vaultfleet up for this stack"
            elif wrong:
                check.cause, check.fix = (
                    "capabilities differ from the policy: " + "; ".join(wrong),
                    "run vaultfleet up (policy drift)",
                )
            elif failed:
                check.cause, check.fix = (
                    "access expectations fail: " + "; ".join(failed),
                    "change the policies or bindings, or the expectation in access/ (vaultfleet validate shows it offline)",
                )
            else:
                check.ok = True
        finally:
            _cleanup(core, client, created)
        results.append(check)
    return results


def _expectations(
    vault, stack: ClusterStack, role, policy_dir, expectations: list[Located], check: RoleCheck
) -> list[str]:
    """The role's expectations against `sys/capabilities-self` of its token; the failing ones."""
    mine = [e for e in expectations if e.expectation.cluster == stack.name and e.expectation.role == role.name]
    if not mine:
        return []
    access = RoleAccess(stack, role, policy_dir)
    paths = sorted({e.expectation.path for e in mine})
    answer = vault.adapter.post("/v1/sys/capabilities-self", json={"paths": paths})
    outcomes = [check_live(e, access, answer.get(e.expectation.path, [])) for e in mine]
    check.expectations = [f"{o.where.file} {o.where.field}: {o}" for o in outcomes]
    return [f"{o.where.file} {o.where.field}: {o}" for o in outcomes if not o.ok]


def _inspect(
    stack: ClusterStack, vault_addr: str, jwt: str, api, client_account: tuple[str, str]
) -> tuple[str, str] | None:
    """Find why Vault refused a login it did not explain: CA, issuer, reviewer permissions (in
    client-jwt mode: the client's own, and whether the API server takes its token at all)."""
    import base64
    import json
    import os
    import socket
    import ssl
    import tempfile
    from urllib.parse import urlparse

    import hvac
    from kubernetes import client

    token = os.environ.get("VAULT_TOKEN")
    if not token:
        return (
            "login refused: permission denied (set VAULT_TOKEN so verify can read the mount's config)",
            "rerun with VAULT_TOKEN of the cluster's applier (or the previewer)",
        )
    try:
        config = hvac.Client(url=vault_addr, token=token).read(f"auth/{stack.mount_path}/config")["data"]
    except Exception as exc:  # noqa: BLE001 - inspection is best effort
        return (f"login refused: permission denied; the mount's config is unreadable ({exc})", "check VAULT_TOKEN")

    host = urlparse(config["kubernetes_host"])
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as ca:
        ca.write(config.get("kubernetes_ca_cert") or "")
        ca.flush()
        try:
            context = (
                ssl.create_default_context(cafile=ca.name)
                if config.get("kubernetes_ca_cert")
                else ssl.create_default_context()
            )
            with socket.create_connection((host.hostname, host.port or 443), timeout=5) as sock:
                with context.wrap_socket(sock, server_hostname=host.hostname):
                    pass
        except ssl.SSLCertVerificationError:
            return CAUSES[0][1], CAUSES[0][2]
        except (OSError, ssl.SSLError) as exc:
            return (
                f"Vault's kubernetes_host {config['kubernetes_host']} is unreachable ({exc})",
                "set vaultfleet:cluster.apiHost to the API server as Vault reaches it",
            )

    claims = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
    if not config.get("disable_iss_validation") and config.get("issuer") and claims.get("iss") != config["issuer"]:
        return (
            f"issuer mismatch: tokens say iss={claims.get('iss')}, the mount expects {config['issuer']}",
            "set vaultfleet:cluster.issuer to the cluster's --service-account-issuer, or remove it",
        )

    if stack.cluster.auth_mode == "client-jwt":
        # Vault presents the login's token to the API server: it must be one the server accepts.
        review = client.AuthenticationV1Api(api).create_token_review(
            client.V1TokenReview(spec=client.V1TokenReviewSpec(token=jwt))
        )
        if not review.status.authenticated:
            return (
                f"client-jwt: the API server refuses the login's own token ({review.status.error}): "
                "its audience is not one the API server accepts",
                "leave roles[].audience out (tokens get the API server's audience) or set it to one of the "
                "API server's --api-audiences",
            )
        reviewer = f"system:serviceaccount:{client_account[0]}:{client_account[1]}"
    else:
        reviewer = f"system:serviceaccount:{stack.cluster.reviewer_namespace}:{stack.cluster.reviewer_service_account}"
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=reviewer,
                resource_attributes=client.V1ResourceAttributes(
                    group="authentication.k8s.io", resource="tokenreviews", verb="create"
                ),
            )
        )
    )
    if not review.status.allowed:
        if stack.cluster.auth_mode == "client-jwt":
            return (
                f"client-jwt: {reviewer} lacks system:auth-delegator (Vault reviews its login with its own token)",
                "vaultfleet up for this stack restores the binding of the roles' ServiceAccounts",
            )
        return CAUSES[2][1], CAUSES[2][2]
    return None


def _ensure(core, client, namespace: str, account: str) -> list[tuple[str, str, str]]:
    """Create what the check needs and is missing; return what to delete afterwards."""
    import time

    created = []
    deadline = time.monotonic() + 60
    while True:
        try:
            ns = core.read_namespace(namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
            created.append(("namespace", namespace, ""))
            break
        # A namespace still terminating (say, from the previous verify's clean-up) takes no new
        # objects: wait until it is gone, then create it afresh.
        if ns.status.phase != "Terminating" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    try:
        core.read_namespaced_service_account(account, namespace)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
        )
        created.append(("serviceaccount", account, namespace))
    return created


def _cleanup(core, client, created) -> None:
    for kind, name, namespace in reversed(created):
        try:
            if kind == "serviceaccount":
                core.delete_namespaced_service_account(name, namespace)
            else:
                core.delete_namespace(name)
        except client.ApiException:
            pass
