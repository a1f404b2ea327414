"""Small helpers over the kubernetes client for lab tests."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import yaml
from kubernetes import client, config

from vaultfleet.kube import ensure_namespace, ensure_service_account, request_token
from vaultfleet.lab.pki import client_certificate

__all__ = [
    "api_client",
    "delete_namespace",
    "ensure_namespace",
    "ensure_service_account",
    "kubeconfig_as",
    "request_token",
    "wait_for_secret_token",
]


def api_client(kubeconfig: str, context: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig, context=context)


def kubeconfig_as(lab, user: str, group: str, dest: Path) -> Path:
    """The lab's kubeconfig with every context authenticating as `user` in `group` (a client
    certificate per cluster), written 0600 at `dest`."""
    document = yaml.safe_load(Path(lab.kubeconfig).read_text())
    document["users"] = []
    for context in document["contexts"]:
        cluster = context["name"]
        key, cert = client_certificate(lab.pki(cluster), user, group)
        document["users"].append(
            {
                "name": f"{user}-{cluster}",
                "user": {
                    "client-certificate-data": base64.b64encode(cert).decode(),
                    "client-key-data": base64.b64encode(key).decode(),
                },
            }
        )
        context["context"]["user"] = f"{user}-{cluster}"
    dest.write_text(yaml.safe_dump(document))
    os.chmod(dest, 0o600)
    return dest


def wait_for_secret_token(api: client.ApiClient, namespace: str, name: str, timeout: float = 30) -> str:
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        secret = core.read_namespaced_secret(name, namespace)
        if secret.data and secret.data.get("token"):
            return base64.b64decode(secret.data["token"]).decode()
        time.sleep(0.2)
    raise TimeoutError(f"secret {namespace}/{name} got no token in {timeout}s")


def delete_namespace(api: client.ApiClient, *names: str, timeout: float = 60) -> None:
    """Delete them and wait until they are gone, so that a later test can create them afresh.
    All deleted first, then waited for: the namespace controller takes seconds for each."""
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    for name in names:
        try:
            core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    for name in names:
        while time.monotonic() < deadline:
            try:
                core.read_namespace(name)
            except client.ApiException as exc:
                if exc.status == 404:
                    break
                raise
            time.sleep(0.2)
        else:
            raise TimeoutError(f"namespace {name} still there {timeout}s after its deletion")
