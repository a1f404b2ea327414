"""The few kubernetes-client calls vaultfleet makes itself (demo, verify) and the lab tests reuse."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubernetes import client

if TYPE_CHECKING:
    from vaultfleet.stackfile.schema import ClusterStack


def context_client(context: str, kubeconfig: str | None = None) -> client.ApiClient:
    """A client for kube context `context`: of `kubeconfig`, else of the files $KUBECONFIG lists (or
    ~/.kube/config), merged as kubectl merges them (the first file to name a context, cluster or
    user wins; each may come from another file), resolved now: the kubernetes client reads
    $KUBECONFIG once, at import, and kubectl reads it at each call. A user with `exec:` (EKS's
    `aws eks get-token`, GKE's `gke-gcloud-auth-plugin`) runs its plugin here, through the client's
    own ExecProvider."""
    from kubernetes import config
    from kubernetes.config.kube_config import ENV_KUBECONFIG_PATH_SEPARATOR

    from vaultfleet.kubeconfig import kubeconfig_paths

    if kubeconfig is None:
        # The client's KubeConfigMerger splits the list and skips files that do not exist.
        kubeconfig = ENV_KUBECONFIG_PATH_SEPARATOR.join(str(p) for p in kubeconfig_paths())
    return config.new_client_from_config(config_file=kubeconfig, context=context)


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    try:
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def ensure_service_account(api: client.ApiClient, namespace: str, name: str) -> None:
    ensure_namespace(api, namespace)
    try:
        client.CoreV1Api(api).create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
        )
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def request_token(
    api: client.ApiClient, namespace: str, name: str, audience: str | None = None, seconds: int = 600
) -> str:
    """A short-lived token of the ServiceAccount, through the TokenRequest API."""
    spec = client.V1TokenRequestSpec(audiences=[audience] if audience else [], expiration_seconds=seconds)
    result = client.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, client.AuthenticationV1TokenRequest(spec=spec)
    )
    return result.status.token


def issuer_keys(api: client.ApiClient) -> tuple[str, list[str]]:
    """(issuer, PEM public keys) of the cluster's ServiceAccount tokens, from the API server's OIDC
    discovery document and JWKS (RSA and EC keys, as Vault's jwt_validation_pubkeys takes them)."""
    import base64
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def number(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    discovery = client.WellKnownApi(api).get_service_account_issuer_open_id_configuration(_preload_content=False)
    keyset = client.OpenidApi(api).get_service_account_issuer_open_id_keyset(_preload_content=False)
    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
    pems = []
    for key in json.loads(keyset.data)["keys"]:
        if key["kty"] == "RSA":
            public = rsa.RSAPublicNumbers(number(key["e"]), number(key["n"])).public_key()
        elif key["kty"] == "EC" and key.get("crv") in curves:
            public = ec.EllipticCurvePublicNumbers(number(key["x"]), number(key["y"]), curves[key["crv"]]).public_key()
        else:
            continue  # a key type Vault could not use either
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        pems.append(pem.decode().strip())  # as Vault returns it: no final newline, no perpetual diff
    return json.loads(discovery.data)["issuer"], sorted(pems)


def jwt_issuer(stack: ClusterStack) -> tuple[str, list[str]]:
    """A jwt-mode cluster's (issuer, PEM keys): the stack file's issuer, else its discovery
    document's, and the keys of its JWKS. Read by the cluster stack, which writes them, and by the
    shared stack, which pins exactly them in the cluster's applier policy."""
    issuer, keys = issuer_keys(context_client(stack.cluster.kube_context))
    return stack.cluster.issuer or issuer, keys
