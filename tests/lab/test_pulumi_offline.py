"""The real engine with both real providers against the lab, offline, through the Automation API."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_vault as vault
import pytest
from pulumi import automation as auto

from vaultfleet.fleet.engine import pulumi_command

# Server-dependent: the real Vault provider writes, reads back and deletes a policy on the server.
pytestmark = [pytest.mark.lab, pytest.mark.server]


def program():
    vault_provider = vault.Provider(
        "vault", address=pulumi.Config("smoke").require("vaultAddress"), skip_child_token=True
    )
    kube_provider = k8s.Provider("kube", context="lab-a")
    policy = vault.Policy(
        "smoke",
        name="smoke-offline",
        policy='path "kv/data/smoke/*" { capabilities = ["read"] }',
        opts=pulumi.ResourceOptions(provider=vault_provider),
    )
    namespace = k8s.core.v1.Namespace(
        "smoke", metadata={"name": "smoke-offline"}, opts=pulumi.ResourceOptions(provider=kube_provider)
    )
    pulumi.export("policy", policy.name)
    pulumi.export("namespace", namespace.metadata.apply(lambda m: m["name"]))


def test_up_preview_destroy_offline(lab, lab_env, tmp_path):
    from kubernetes import client

    from tests.harness import root_client
    from tests.lab import k8s as k8s_helpers

    pulumi_home = tmp_path / "pulumi-home"
    env = {**lab_env, "PULUMI_HOME": str(pulumi_home)}
    stack = auto.create_or_select_stack(
        stack_name="smoke",
        project_name="vaultfleet-smoke",
        program=program,
        opts=auto.LocalWorkspaceOptions(work_dir=str(tmp_path), env_vars=env, pulumi_command=pulumi_command()),
    )
    stack.set_config("smoke:vaultAddress", auto.ConfigValue(lab.vault_addr))
    vault_client = root_client(lab)
    core = client.CoreV1Api(k8s_helpers.api_client(str(lab.kubeconfig), "lab-a"))
    destroyed = False
    try:
        up = stack.up()
        assert up.summary.result == "succeeded"
        assert up.outputs["policy"].value == "smoke-offline"
        assert "kv/data/smoke" in vault_client.sys.read_policy("smoke-offline")["data"]["rules"]
        assert core.read_namespace("smoke-offline").status.phase == "Active"

        preview = stack.preview()
        assert set(preview.change_summary) == {"same"}, preview.change_summary

        destroy = stack.destroy()
        destroyed = destroy.summary.result == "succeeded"
        assert destroyed
        assert "smoke-offline" not in vault_client.sys.list_policies()["data"]["policies"]
    finally:
        if not destroyed:  # a failed step left the stack's objects: another engine run only then
            stack.destroy()
        stack.workspace.remove_stack("smoke")
    # Offline: no plugin was downloaded into this fresh PULUMI_HOME; both came from the tool cache.
    plugins = pulumi_home / "plugins"
    assert not plugins.exists() or not any(plugins.iterdir()), list(plugins.iterdir())
