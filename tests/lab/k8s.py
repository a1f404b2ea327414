"""Small helpers over the kubernetes client for lab tests."""

from __future__ import annotations

import base64
import time

from kubernetes import client, config

from vaultfleet.kube import ensure_namespace, ensure_service_account, request_token

__all__ = ["api_client", "ensure_namespace", "ensure_service_account", "request_token", "wait_for_secret_token"]


def api_client(kubeconfig: str, context: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig, context=context)


def wait_for_secret_token(api: client.ApiClient, namespace: str, name: str, timeout: float = 30) -> str:
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        secret = core.read_namespaced_secret(name, namespace)
        if secret.data and secret.data.get("token"):
            return base64.b64decode(secret.data["token"]).decode()
        time.sleep(0.2)
    raise TimeoutError(f"secret {namespace}/{name} got no token in {timeout}s")
