"""Checking generated consumer objects on the lab: the consumer projects' own CRDs, objects created
under them for real (strict field validation), and the mount and role they name, in Vault."""

from __future__ import annotations

import base64
import json
import time

import hvac
from kubernetes import client

from tests.lab import k8s
from vaultfleet.lab import controllers as lab_controllers
from vaultfleet.lab import processes

# The CRDs as `vaultfleet lab controllers` installs them; when tools/fetch-crds.sh has not run, they
# raise MissingTool, which says `make tools`.
install = lab_controllers.install_crds
all_crds = lab_controllers.all_crds


def remove(api: client.ApiClient, names: list[str], timeout: float = 60) -> None:
    """Delete the CRDs (and with them every object of theirs), and wait until they are gone.

    Waiting matters to the next module that installs them: a CRD being deleted answers a create
    with 409, then disappears under the objects created after it.
    """
    extensions = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    for name in names:
        # One deleted before the apiserver serves its objects stays for minutes: its finalizer's
        # list fails ("storage is (re)initializing") and backs off. A CRD installed seconds ago is.
        processes.wait_until(lambda name=name: _served(api, extensions, name), timeout, f"CRD {name} served")
        extensions.delete_custom_resource_definition(name)
    for name in names:
        while True:
            try:
                extensions.read_custom_resource_definition(name, _preload_content=False)
            except client.ApiException as exc:
                if exc.status == 404:
                    break
                raise
            assert time.monotonic() < deadline, f"CRD {name} still there {timeout}s after its deletion"
            time.sleep(0.2)


def _served(api: client.ApiClient, extensions: client.ApiextensionsV1Api, name: str) -> bool:
    """The apiserver lists the CRD's objects (an error, such as 429 while its storage initialises, raises)."""
    spec = extensions.read_custom_resource_definition(name).spec
    version = next(v.name for v in spec.versions if v.storage)
    # From the watch cache (resourceVersion 0), as the finalizer lists; namespaced or not, cluster-wide.
    client.CustomObjectsApi(api).list_cluster_custom_object(
        spec.group, version, spec.names.plural, limit=1, resource_version="0"
    )
    return True


def create_strict(api: client.ApiClient, document: dict) -> dict:
    """Create the object for real, refusing unknown fields (fieldValidation=Strict); return it as stored."""
    group, version = document["apiVersion"].split("/")
    plural = document["kind"].lower() + "s"
    objects = client.CustomObjectsApi(api)
    namespace = document["metadata"].get("namespace")
    if namespace:
        k8s.ensure_namespace(api, namespace)
        objects.create_namespaced_custom_object(group, version, namespace, plural, document, field_validation="Strict")
        return objects.get_namespaced_custom_object(group, version, namespace, plural, document["metadata"]["name"])
    objects.create_cluster_custom_object(group, version, plural, document, field_validation="Strict")
    return objects.get_cluster_custom_object(group, version, plural, document["metadata"]["name"])


def assert_subset(generated, stored, where="spec"):
    """Everything generated came back as written (the server may add defaults, never drop a field)."""
    if isinstance(generated, dict):
        for key, value in generated.items():
            assert key in stored, f"{where}.{key} was dropped"
            assert_subset(value, stored[key], f"{where}.{key}")
    elif isinstance(generated, list):
        assert len(generated) == len(stored), f"{where}: {generated!r} stored as {stored!r}"
        for i, (item, kept) in enumerate(zip(generated, stored, strict=True)):
            assert_subset(item, kept, f"{where}[{i}]")
    else:
        assert generated == stored, f"{where}: {generated!r} stored as {stored!r}"


def assert_role_admits(
    vault: hvac.Client, mount: str, role: str, namespace: str, account: str, audiences: list[str] | None
):
    """The mount and role an object names exist in Vault and bind this ServiceAccount and audience."""
    assert vault.sys.list_auth_methods()["data"][f"{mount}/"]["type"] == "kubernetes"
    vault_role = vault.auth.kubernetes.read_role(role, mount_point=mount)
    assert account in vault_role["bound_service_account_names"]
    assert (
        namespace in vault_role["bound_service_account_namespaces"]
        or "*" in vault_role["bound_service_account_namespaces"]
    )
    assert audiences == ([vault_role["audience"]] if vault_role["audience"] else None)


def patched_pod_template(api: client.ApiClient, namespace: str, name: str, patch: dict) -> client.V1PodTemplateSpec:
    """What a Deployment's pod template becomes under `patch` (strategic merge, strict field
    validation): a minimal Deployment `name` (one container `name`, image `name:1`) is created in
    `namespace`, patched, read back, and deleted again."""
    apps = client.AppsV1Api(api)
    k8s.ensure_namespace(api, namespace)
    try:  # left by an interrupted earlier run
        apps.delete_namespaced_deployment(name, namespace)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    labels = {"app": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
            },
        },
    }
    apps.create_namespaced_deployment(namespace, deployment)
    try:
        apps.patch_namespaced_deployment(
            name, namespace, patch, field_validation="Strict", _content_type="application/strategic-merge-patch+json"
        )
        return apps.read_namespaced_deployment(name, namespace).spec.template
    finally:
        apps.delete_namespaced_deployment(name, namespace)


# --- the real controllers at work (vaultfleet/lab/controllers.py) -------------------------------


def _where(document: dict) -> tuple[str, str, str, str | None]:
    group, version = document["apiVersion"].split("/")
    return group, version, document["kind"].lower() + "s", document["metadata"].get("namespace")


def read(api: client.ApiClient, document: dict) -> dict:
    """The stored object of a document (namespaced or cluster-wide)."""
    group, version, plural, namespace = _where(document)
    objects, name = client.CustomObjectsApi(api), document["metadata"]["name"]
    if namespace:
        return objects.get_namespaced_custom_object(group, version, namespace, plural, name)
    return objects.get_cluster_custom_object(group, version, plural, name)


def delete(api: client.ApiClient, document: dict) -> None:
    group, version, plural, namespace = _where(document)
    objects, name = client.CustomObjectsApi(api), document["metadata"]["name"]
    try:
        if namespace:
            objects.delete_namespaced_custom_object(group, version, namespace, plural, name)
        else:
            objects.delete_cluster_custom_object(group, version, plural, name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def condition(api: client.ApiClient, document: dict, kind: str, status: str = "True", timeout: float = 60) -> dict:
    """The object's status condition `kind` once it has `status` (external-secrets' Ready)."""

    def found():
        conditions = read(api, document).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == kind and c["status"] == status), None)

    return processes.wait_until(found, timeout, f"{document['kind']} {document['metadata']['name']} {kind}={status}")


def events_of(api: client.ApiClient, document: dict, wanted, timeout: float = 60) -> str:
    """The first message of an Event about the object that `wanted(message)` accepts."""
    core = client.CoreV1Api(api)
    selector = f"involvedObject.name={document['metadata']['name']},involvedObject.kind={document['kind']}"

    def found():
        events = core.list_namespaced_event(document["metadata"]["namespace"], field_selector=selector).items
        return next((e.message for e in events if wanted(e.message or "")), None)

    return processes.wait_until(found, timeout, f"an event of {document['kind']} {document['metadata']['name']}")


def vso_valid(api: client.ApiClient, document: dict, timeout: float = 60) -> bool:
    """A VSO VaultAuth or VaultConnection the operator has checked and found valid."""
    return processes.wait_until(
        lambda: read(api, document).get("status", {}).get("valid"), timeout, f"{document['kind']} valid"
    )


def vso_lease(api: client.ApiClient, document: dict, timeout: float = 60) -> str:
    """The lease id of the credentials VSO holds for a VaultDynamicSecret."""
    return processes.wait_until(
        lambda: read(api, document).get("status", {}).get("secretLease", {}).get("id"), timeout, "VSO's lease"
    )


def injected_pod(api: client.ApiClient, namespace: str, name: str, template: client.V1PodTemplateSpec) -> dict:
    """Create a Pod of `template` in `namespace`, served by the lab injector's webhook, and return it
    as stored: mutated by the injector (the create fails if the webhook does not answer)."""
    core = client.CoreV1Api(api)
    core.patch_namespace(namespace, {"metadata": {"labels": {lab_controllers.INJECTOR_LABEL: "enabled"}}})
    try:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=template.metadata.annotations), spec=template.spec
    )
    core.create_namespaced_pod(namespace, body)
    return json.loads(core.read_namespaced_pod(name, namespace, _preload_content=False).data)


def agent_config(pod: dict, container: str) -> dict:
    """The Vault Agent config the injector gave `container` ($VAULT_CONFIG, base64 JSON)."""
    spec = pod["spec"]
    (found,) = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == container]
    (env,) = [e["value"] for e in found["env"] if e["name"] == "VAULT_CONFIG"]
    return json.loads(base64.b64decode(env))
