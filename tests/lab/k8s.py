"""Small helpers over the kubernetes client for lab tests."""

from __future__ import annotations

import base64
import time

from kubernetes import client, config


def api_client(kubeconfig: str, context: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig, context=context)


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
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


def request_token(api: client.ApiClient, namespace: str, name: str, audience: str | None = None, seconds: int = 600) -> str:
    """A short-lived token of the ServiceAccount, through the TokenRequest API."""
    spec = client.V1TokenRequestSpec(audiences=[audience] if audience else [], expiration_seconds=seconds)
    result = client.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, client.AuthenticationV1TokenRequest(spec=spec)
    )
    return result.status.token


def wait_for_secret_token(api: client.ApiClient, namespace: str, name: str, timeout: float = 30) -> str:
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        secret = core.read_namespaced_secret(name, namespace)
        if secret.data and secret.data.get("token"):
            return base64.b64decode(secret.data["token"]).decode()
        time.sleep(0.2)
    raise TimeoutError(f"secret {namespace}/{name} got no token in {timeout}s")
