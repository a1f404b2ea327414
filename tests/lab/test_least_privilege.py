"""The shipped provisioner policy is enough to up and destroy a cluster stack, and no more."""

from __future__ import annotations

import hvac
import pytest

from tests.lab.conftest import copy_project, destroy_stacks, root_client, vault_token
from vaultfleet.fleet.engine import select_stack

# Server-dependent: what the provisioner policy allows and refuses is the server's ACL evaluation.
pytestmark = [pytest.mark.lab, pytest.mark.server]


def test_cluster_stack_up_and_destroy_with_only_the_provisioner_policy(lab, lab_env, tmp_path):
    project = copy_project(tmp_path)
    root = root_client(lab)
    shared = select_stack("vault", project, lab_env)  # an admin writes the provisioner policy once
    try:
        assert shared.up(color="never").summary.result == "succeeded"
        root.secrets.kv.v2.create_or_update_secret("clusters/lab-a/db", secret={"password": "s3cret"}, mount_point="kv")
        with vault_token(root, ["vaultfleet-provisioner"], "30m") as token:
            stack = select_stack("lab-a", project, {**lab_env, "VAULT_TOKEN": token})
            up = stack.up(color="never")
            assert up.summary.result == "succeeded"
            role = root.auth.kubernetes.read_role("app", mount_point="k8s-lab-a")
            assert role["token_policies"] == ["k8s-lab-a-kv-read"]
            # A refresh reads everything back with the same token.
            assert stack.preview(refresh=True, color="never").change_summary.keys() == {"same"}

            provisioner = hvac.Client(url=lab.vault_addr, token=token)
            with pytest.raises(hvac.exceptions.Forbidden):
                provisioner.secrets.kv.v2.read_secret_version(
                    "clusters/lab-a/db", mount_point="kv", raise_on_deleted_version=True
                )
            with pytest.raises(hvac.exceptions.Forbidden):  # nor touch what is not the fleet's
                provisioner.sys.enable_auth_method("userpass", path="backdoor")
            with pytest.raises(hvac.exceptions.Forbidden):
                provisioner.sys.create_or_update_policy(
                    "vaultfleet-provisioner", 'path "*" { capabilities = ["sudo"] }'
                )

            assert stack.destroy(color="never").summary.result == "succeeded"
            assert "k8s-lab-a/" not in root.sys.list_auth_methods()["data"]
    finally:
        destroy_stacks(project, lab_env, ["lab-a", "vault"])
