"""The bad-input corpus through a real `pulumi preview`: refused before any resource is registered,
message naming file and field, and Vault and the cluster unchanged (listings before = after)."""

from __future__ import annotations

import pytest
from kubernetes import client
from pulumi import automation as auto

from tests.bad_inputs import CASES
from tests.lab import k8s
from tests.lab.conftest import copy_project, root_client
from vaultfleet.fleet.engine import select_stack

# Not marked `server`: the program refuses each input before it registers a resource, so no request
# reaches Vault (the listings before and after prove it) and the outcome cannot depend on which
# server runs. `make test` runs it against the first server only.
pytestmark = pytest.mark.lab


def listings(lab) -> dict:
    vault = root_client(lab)
    api = k8s.api_client(str(lab.kubeconfig), "lab-a")
    return {
        "auth": sorted(vault.sys.list_auth_methods()["data"]),
        "policies": sorted(vault.sys.list_policies()["data"]["policies"]),
        "mounts": sorted(vault.sys.list_mounted_secrets_engines()["data"]),
        "serviceaccounts": sorted(
            sa.metadata.name for sa in client.CoreV1Api(api).list_namespaced_service_account("kube-system").items
        ),
        "bindings": sorted(
            b.metadata.name for b in client.RbacAuthorizationV1Api(api).list_cluster_role_binding().items
        ),
    }


def test_preview_refuses_every_bad_input(lab, lab_env, tmp_path):
    project = copy_project(tmp_path)
    pristine = {p: (project / p).read_text() for p in ("stacks/Pulumi.lab-a.yaml", "policies/kv-read.hcl")}
    stack = select_stack("lab-a", project, lab_env)
    before = listings(lab)
    failures = []
    try:
        for case in CASES:
            for path, text in pristine.items():
                (project / path).write_text(text)
            case.apply(project)
            try:
                stack.preview(color="never")
            except auto.CommandError as exc:
                message = str(exc)
                if not (case.file in message and case.field in message and "nothing was changed" in message):
                    failures.append(f"{case.name}: message lacks file/field: {message[-600:]}")
            else:
                failures.append(f"{case.name}: preview succeeded")
    finally:
        stack.workspace.remove_stack("lab-a")
    assert not failures, "\n".join(failures)
    assert listings(lab) == before
