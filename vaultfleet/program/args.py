"""From a validated stack config to component Args: the edge between config and components."""

from __future__ import annotations

from pathlib import Path

import pulumi

from components.cluster import ClusterOnboardingArgs
from components.cluster_access import ClusterAccessArgs
from components.consumer_objects import CustomObject
from components.database import DatabaseEngineArgs, DatabaseRoleSpec, PostgresConnectionSpec
from components.jwt_auth import JwtAuthArgs
from components.pipeline import PipelineIdentitiesArgs, PipelineIdentitySpec
from components.roles import RoleSpec
from components.shared import SharedVaultArgs
from vaultfleet.program.managed import managed_objects
from vaultfleet.render import jwt_roles, policy
from vaultfleet.render.applier import applier_policy_name, render_applier
from vaultfleet.render.endpoint import cluster_endpoint
from vaultfleet.stackfile import Project, stack_file_name
from vaultfleet.stackfile.fleet import fleet_conflicts, neighbour_names
from vaultfleet.stackfile.pipeline import identity_policies, preview_grants_name
from vaultfleet.stackfile.schema import ClusterStack, ConfigError, SharedStack


def cluster_args(stack: ClusterStack, policy_dir: Path = policy.POLICY_DIR) -> ClusterOnboardingArgs:
    host, ca = cluster_endpoint(stack)
    # Rendered here too, though the shared stack writes them: a broken template fails this stack's
    # preview as well, naming the file; the consumer objects read the same rendering's paths.
    bodies = policy.render_cluster_policies(stack, policy_dir)
    return ClusterOnboardingArgs(
        cluster=stack.name,
        mount_path=stack.mount_path,
        kubernetes_host=host,
        kubernetes_ca_cert=ca,
        policy_names=list(bodies),
        roles=[
            RoleSpec(
                name=r.name,
                service_accounts=list(r.service_accounts),
                namespaces=list(r.namespaces),
                policies=stack.token_policies(r),
                ttl_seconds=r.ttl,
                max_ttl_seconds=r.max_ttl,
                audience=r.audience,
                token_type=r.token_type,
            )
            for r in stack.roles
        ],
        reviewer_namespace=stack.cluster.reviewer_namespace,
        reviewer_service_account=stack.cluster.reviewer_service_account,
        reviewer_token_secret=stack.cluster.token_secret,
        reviewer_binding=stack.cluster.reviewer_binding,
        issuer=stack.cluster.issuer,
        consumer_objects=[CustomObject.from_manifest(o) for o in managed_objects(stack, policy.policy_rules(bodies))],
        previewer_group=stack.cluster.previewer_group,
        client_reviewers=stack.client_reviewers,
        jwt=_jwt_auth(stack),
    )


def _jwt_auth(stack: ClusterStack) -> JwtAuthArgs | None:
    """jwt mode: the bodies of the mount's config and roles, with the cluster's issuer and current
    keys, read from the cluster at every run: a rotated key shows in the next preview, and `up`
    writes it once the shared stack has pinned it in the applier policy."""
    issuer = _jwt_issuer(stack)
    if issuer is None:
        return None
    return JwtAuthArgs(
        mount_path=stack.mount_path,
        config=jwt_roles.config_body(*issuer),
        roles={r.name: jwt_roles.role_body(stack, r) for r in stack.roles},
    )


def _jwt_issuer(stack: ClusterStack) -> tuple[str, list[str]] | None:
    """jwt mode: the cluster's issuer and keys, read now (vaultfleet/kube.py); None in the other
    modes, which then import no Kubernetes client (0.7 s)."""
    if stack.cluster.auth_mode != "jwt":
        return None
    from vaultfleet.kube import jwt_issuer

    return jwt_issuer(stack)


def shared_args(stack: SharedStack, project: Project) -> SharedVaultArgs:
    """The shared stack's Args: what the fleet shares, and for every cluster stack file in stacks/
    its mount, policies and applier policy (a cluster stack file that does not validate stops it).
    Per-cluster layout: what the fleet shares only, each cluster by its name alone (its access stack
    writes the rest), so the run reads no cluster's file."""
    if project.per_cluster:
        names = [n for n in project.stack_names() if n != stack.name]
        return SharedVaultArgs(
            kv_mount=stack.fleet.kv_mount,
            previewer_policy=policy.render_previewer(stack, project.policy_dir),
            database=database_args(stack),
            pipeline=pipeline_args(stack, names, per_cluster=True),
        )
    clusters = fleet_clusters(project)
    conflicts = fleet_conflicts(clusters, stack)
    if conflicts:
        raise ConfigError(conflicts)
    return SharedVaultArgs(
        kv_mount=stack.fleet.kv_mount,
        clusters=[cluster_access_args(c, project.policy_dir) for c in clusters],
        previewer_policy=policy.render_previewer(
            stack,
            project.policy_dir,
            state_keys=[c.state_key for c in clusters if c.state_key],
            cluster_mounts=[c.mount_path for c in clusters],
        ),
        database=database_args(stack),
        pipeline=pipeline_args(stack, [c.name for c in clusters]),
    )


def fleet_clusters(project: Project) -> list[ClusterStack]:
    """The project's cluster stacks, validated from their files."""
    clusters = []
    for stack_file in project.stacks():
        if stack_file.is_shared:
            continue
        settings = stack_file.settings  # StackFileError/ConfigError name the file and field
        assert isinstance(settings, ClusterStack)
        clusters.append(settings)
    return clusters


def access_args(stack: ClusterStack, project: Project) -> ClusterAccessArgs:
    """Per-cluster layout: the Args of the cluster's access stack (vault.<cluster>), from its file,
    with what a preview reads of it (its mount by path, its state key) in a policy of its own. The
    conflicts a single file cannot see are checked against the stack files whose names could
    collide with this one's (access_neighbours), not the whole fleet."""
    shared = next((s for f in project.shared_stacks() if isinstance(s := f.valid_settings(), SharedStack)), None)
    conflicts = [
        problem
        for problem in fleet_conflicts([stack, *access_neighbours(stack, project)], shared)
        if problem[0] == stack_file_name(stack.name)
    ]
    if conflicts:
        raise ConfigError(conflicts)
    args = cluster_access_args(stack, project.policy_dir)
    args.preview_grants_name = preview_grants_name(stack.name)
    args.preview_grants = policy.previewer_grants(
        [stack.mount_path],
        [stack.state_key] if stack.state_key else [],
        heading="The cluster's mount, read by path (whatever its prefix): config and roles.",
    )
    return args


def access_neighbours(stack: ClusterStack, project: Project) -> list[ClusterStack]:
    """The other cluster stacks whose names could collide with this one's (neighbour_names), read
    from their files; usually none. One that does not validate is left out: its own access stack
    stops before writing anything, so it holds no name to collide with (and a file named `kv` that
    does not validate cannot stop every other cluster's run)."""
    found = []
    for name in neighbour_names(stack, project.stack_names()):
        settings = project.stack(name).valid_settings()
        if isinstance(settings, ClusterStack):
            found.append(settings)
    return found


def cluster_access_args(stack: ClusterStack, policy_dir: Path) -> ClusterAccessArgs:
    host, ca = cluster_endpoint(stack)
    return ClusterAccessArgs(
        cluster=stack.name,
        mount_path=stack.mount_path,
        policies=policy.render_cluster_policies(stack, policy_dir),
        applier_policy_name=applier_policy_name(stack.name),
        applier_policy=render_applier(stack, host, ca, _jwt_issuer(stack)),
        accessor_placeholder=policy.MOUNT_ACCESSOR_PLACEHOLDER,
        state_key=stack.state_key,
        retain_mount=stack.cluster.adopted,
        auth_method=stack.auth_method,
        max_ttl_seconds=stack.mount_max_ttl,
    )


def pipeline_args(stack: SharedStack, clusters: list[str], per_cluster: bool = False) -> PipelineIdentitiesArgs | None:
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
            PipelineIdentitySpec(
                "previewer", dict(pipeline.previewer), identity_policies("previewer", clusters, per_cluster)
            ),
            PipelineIdentitySpec(
                "applier", dict(pipeline.applier), identity_policies("applier", clusters, per_cluster)
            ),
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
