"""vaultfleet's Pulumi program: stack config -> validated settings -> components -> outputs.

Every fleet repository's `__main__.py` (this one's too: `vaultfleet init` writes the same few lines)
calls `run()`, so the program comes with the installed package and a fleet upgrades it by pinning
another version. It reads the project from the working directory (the engine runs the program
there): Pulumi.yaml, the stack file and policies/.

Nothing is registered unless the whole stack config is valid; errors name the stack file and field.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_vault as vault
from pulumi.runtime.config import get_config, is_config_secret

from components import ClusterAccess, ClusterOnboarding, SharedVault
from vaultfleet.fleet import inputs
from vaultfleet.kubeconfig import KubeconfigError, provider_kubeconfig
from vaultfleet.program.adoption import adopting_transform, existing_ids
from vaultfleet.program.args import access_args, cluster_args, shared_args
from vaultfleet.render.policy import PolicyError
from vaultfleet.stackfile import Project, schema


def check_access_stack(stack_file, settings) -> None:
    """ConfigError unless an access stack (vault.<cluster>) stands for a cluster stack file of a
    fleet in the per-cluster layout."""
    if not stack_file.project.per_cluster:
        raise schema.ConfigError(
            [
                (
                    "Pulumi.yaml",
                    f"{schema.NAMESPACE}:clusterAccess",
                    f"stack {stack_file.name}: the shared stack writes each cluster's access in this fleet "
                    "(`shared`); access stacks are the per-cluster layout's",
                )
            ]
        )
    if settings.kind != "cluster":
        raise schema.ConfigError(
            [(stack_file.shown, f"{schema.NAMESPACE}:kind", f"stack {stack_file.name}: not a cluster's stack file")]
        )


def run() -> None:
    """The program for the engine's current stack, in the project of the working directory."""
    stack_file = Project(Path(".")).stack(pulumi.get_stack())
    try:
        stack_file.project.check_layout()  # before reading stacks/: the engine may read elsewhere
        stack_file.check_fleet_only_keys()
        # Every key Pulumi.yaml and the stack file set, unknown ones included (the schema names them),
        # as the engine holds them (Pulumi's config store): secrets decrypted, objects and lists as JSON.
        keys = [f"{schema.NAMESPACE}:{key}" for key in stack_file.values]
        settings = schema.parse(
            schema.decode_engine_config({key: get_config(key) for key in keys if get_config(key) is not None}),
            stack_file.file_stack,
            stack_file.shown,
            # Which keys the engine holds as secrets: a database password must be one of them.
            secret_keys=schema.decode_secret_keys([key for key in keys if is_config_secret(key)]),
            # The Transit key of the stack's state, which an access stack makes.
            secrets_provider=stack_file.secrets_provider,
        )
        if stack_file.is_access:
            check_access_stack(stack_file, settings)
        if settings.kind == "shared":
            # The privileged stage: what the fleet shares (shared layout: and every cluster's mount,
            # policies and applier policy, from their files).
            args = shared_args(settings, stack_file.project)
        elif stack_file.is_access:
            # The privileged stage of one cluster (per-cluster layout): its mount, policies, applier policy.
            args = access_args(settings, stack_file.project)
        else:
            # The project's own templates (a fleet repository's policies/), as the shared stack's.
            args = cluster_args(settings, stack_file.project.policy_dir)
    except (schema.ConfigError, PolicyError, KubeconfigError, ValueError) as exc:
        raise pulumi.RunError(f"invalid configuration, nothing was changed:\n{exc}") from None

    # The digest of everything this run reads: `vaultfleet preview` skips the engine for a stack whose
    # inputs and state are exactly as the last successful up left them (vaultfleet/fleet/skip.py).
    pulumi.export(inputs.OUTPUT, inputs.inputs_fingerprint(stack_file))

    # `vaultfleet adopt`: objects that already exist are imported, never created or written.
    adopted = existing_ids()
    if adopted is not None:
        pulumi.runtime.register_stack_transformation(adopting_transform(adopted))

    # Explicit providers only (default providers are disabled in Pulumi.yaml): a stack can reach the
    # Vault and the cluster its stack file names, nothing else. The Vault token comes from VAULT_TOKEN
    # (never from config), so it is not stored in state; no child token, so an applier's policy
    # needs no auth/token/create.
    vault_provider = vault.Provider("vault", address=settings.fleet.vault_address, skip_child_token=True)

    if stack_file.is_access:
        # Named as in the shared stack (fleet-cluster-<cluster>, at the root, the provider `vault`):
        # `vaultfleet migrate` moves a cluster's objects here from the shared stack's state unchanged.
        access = ClusterAccess(
            f"fleet-cluster-{settings.name}", args, opts=pulumi.ResourceOptions(providers=[vault_provider])
        )
        pulumi.export("mount_path", access.mount_path)
        pulumi.export("mount_accessor", access.mount_accessor)
        pulumi.export("applier_policy", access.applier_policy)
    elif settings.kind == "shared":
        shared = SharedVault("fleet", args, opts=pulumi.ResourceOptions(providers=[vault_provider]))
        pulumi.export("kv_mount", shared.kv_mount)
        pulumi.export("cluster_mounts", {name: c.mount_path for name, c in shared.clusters.items()})
        pulumi.export("applier_policies", {name: c.applier_policy for name, c in shared.clusters.items()})
        if shared.database is not None:
            pulumi.export("database_mount", shared.database.mount_path)
            pulumi.export("database_roles", shared.database.role_names)
    else:
        kube_provider = k8s.Provider(
            "kubernetes", context=settings.cluster.kube_context, kubeconfig=provider_kubeconfig()
        )
        cluster = ClusterOnboarding(
            settings.name, args, opts=pulumi.ResourceOptions(providers=[vault_provider, kube_provider])
        )
        pulumi.export("mount_path", cluster.mount_path)
        pulumi.export("policy_names", cluster.policy_names)
        pulumi.export("role_names", cluster.role_names)
        pulumi.export(
            "login_hint",
            cluster.mount_path.apply(
                lambda path: f"vault write auth/{path}/login role=<role> jwt=<ServiceAccount token>"
            ),
        )
