"""The few kubernetes-client calls vaultfleet makes itself (demo, verify) and the lab tests reuse."""

from __future__ import annotations

from kubernetes import client


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
