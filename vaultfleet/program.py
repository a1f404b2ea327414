"""From a validated stack config to component Args: the edge between config and components."""

from __future__ import annotations

from pathlib import Path

import pulumi

from components.cluster import ClusterOnboardingArgs
from components.database import DatabaseEngineArgs, DatabaseRoleSpec, PostgresConnectionSpec
from components.pipeline import PipelineIdentitiesArgs, PipelineIdentitySpec
from components.roles import RoleSpec
from components.shared import SharedVaultArgs
from vaultfleet.consumers.managed import managed_objects
from vaultfleet.project import policy, stack_file_name
from vaultfleet.project.addresses import is_loopback_url
from vaultfleet.project.kubeconfig import read_context
from vaultfleet.project.pipeline import IDENTITY_POLICIES
from vaultfleet.project.schema import ClusterStack, SharedStack


def cluster_args(stack: ClusterStack, policy_dir: Path = policy.POLICY_DIR) -> ClusterOnboardingArgs:
    host, ca = stack.cluster.api_host, stack.cluster.ca_cert
    if host is None or ca is None:
        endpoint = read_context(stack.cluster.kube_context)
        host = host or endpoint.server
        ca = ca or endpoint.ca_pem
        if ca is None:
            raise ValueError(f"kube context '{stack.cluster.kube_context}' has no CA; set vaultfleet:cluster.caCert")
        if host.lower().startswith("http://") and not is_loopback_url(host) and not stack.fleet.allow_insecure_http:
            # The same rule the schema applies to a written apiHost: Vault sends JWTs to this host.
            raise ValueError(
                f"{stack_file_name(stack.name)}: vaultfleet:cluster.apiHost: the kube context "
                f"'{stack.cluster.kube_context}' names {host}, plain http to a host other than loopback; set "
                "apiHost to the https:// address, or vaultfleet:allowInsecureHttp: true (docs/stack-files.md)"
            )
    return ClusterOnboardingArgs(
        cluster=stack.name,
        mount_path=stack.mount_path,
        kubernetes_host=host,
        kubernetes_ca_cert=ca,
        policies=policy.render_cluster_policies(stack, policy_dir),
        roles=[
            RoleSpec(
                name=r.name,
                service_accounts=list(r.service_accounts),
                namespaces=list(r.namespaces),
                policies=[stack.policy_name(p) for p in r.policies],
                ttl_seconds=r.ttl,
                max_ttl_seconds=r.max_ttl,
                audience=r.audience,
            )
            for r in stack.roles
        ],
        reviewer_namespace=stack.cluster.reviewer_namespace,
        reviewer_service_account=stack.cluster.reviewer_service_account,
        issuer=stack.cluster.issuer,
        consumer_objects=managed_objects(stack, policy_dir),
        accessor_placeholder=policy.MOUNT_ACCESSOR_PLACEHOLDER,
    )


def shared_args(stack: SharedStack, policy_dir: Path = policy.POLICY_DIR) -> SharedVaultArgs:
    return SharedVaultArgs(
        kv_mount=stack.fleet.kv_mount,
        provisioner_policy=policy.render_provisioner(stack, policy_dir),
        previewer_policy=policy.render_previewer(stack, policy_dir),
        database=database_args(stack),
        pipeline=pipeline_args(stack),
    )


def pipeline_args(stack: SharedStack) -> PipelineIdentitiesArgs | None:
    pipeline = stack.pipeline
    if pipeline is None:
        return None
    return PipelineIdentitiesArgs(
        mount_path=pipeline.mount,
        issuer=pipeline.issuer,
        audience=pipeline.audience,
        public_keys=list(pipeline.public_keys),
        ttl_seconds=pipeline.ttl,
        identities=[
            PipelineIdentitySpec(name, dict(claims), IDENTITY_POLICIES[name])
            for name, claims in (("previewer", pipeline.previewer), ("applier", pipeline.applier))
        ],
    )


def database_args(stack: SharedStack) -> DatabaseEngineArgs | None:
    engine = stack.database
    if engine is None:
        return None
    return DatabaseEngineArgs(
        mount_path=stack.fleet.database_mount,
        connections=[
            PostgresConnectionSpec(
                name=c.name,
                connection_url=c.connection_url,
                username=c.username,
                # A secret from the moment it leaves the config: encrypted in state, masked in logs.
                password=pulumi.Output.secret(c.password.get_secret_value()),
                allowed_roles=engine.allowed_roles(c.name),
            )
            for c in engine.connections
        ],
        roles=[
            DatabaseRoleSpec(
                name=r.name,
                connection=r.connection,
                creation_statements=list(r.creation_statements),
                revocation_statements=list(r.revocation_statements),
                default_ttl_seconds=r.default_ttl,
                max_ttl_seconds=r.max_ttl,
            )
            for r in engine.roles
        ],
    )
