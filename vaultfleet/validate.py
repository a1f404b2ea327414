"""`vaultfleet validate`: stack files and policy templates checked without Vault, clusters or engine.

It reads the files the engine would read (Pulumi.yaml project config, then the stack file on top),
runs the same schema as `pulumi up` and renders every policy, then lints the fleet as a whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vaultfleet.render.policy import PolicyError, render_cluster_policies, render_previewer
from vaultfleet.stackfile import ConfigError, Project, StackFile, StackFileError, stack_file_name
from vaultfleet.stackfile.fleet import fleet_conflicts
from vaultfleet.stackfile.schema import ClusterStack, SharedStack


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" or "warning"
    file: str
    field: str
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def validate(
    project: Project, names: list[str] | None = None, expectations: bool = False
) -> tuple[list[Finding], list[ClusterStack | SharedStack]]:
    """Findings for the named stack files (names or paths; all of stacks/ by default) and the
    settings of each that has no error; with `expectations`, the access expectations of those
    stacks too (the `validate` command: a failing one must not stop `verify` checking it live)."""
    findings: list[Finding] = []
    stacks = []
    for stack_file in project.stacks(names):
        found, stack = check_stack(stack_file)
        findings += found
        if stack is not None:
            stacks.append(stack)
    findings += _lint_fleet(stacks)
    if names is None:  # the whole fleet: only then are the mounts counted right
        findings += _capacity(stacks)
        findings += [
            Finding("error", shown, "-", "not a stack name (a DNS label, no dot): no stack reads this file")
            for shown in project.misnamed_stack_files()
        ]
        findings += [
            Finding("error", shown, "-", "a symbolic link: a change to the file it points at selects no stack")
            for shown in project.misplaced_stack_files()
        ]
        findings += _project_files(project)
    if expectations:
        findings += _expectations(project, stacks, every_stack=names is None)
    return findings, stacks


def _project_files(project: Project) -> list[Finding]:
    """Files the engine would read in place of the reviewed ones: a second Pulumi project file (the
    engine takes Pulumi.json before Pulumi.yaml), and symbolic links among the policy templates (a
    change to what one points at selects and reviews nothing)."""
    found = [
        Finding("error", p.name, "-", "a second Pulumi project file: the engine could read it in place of Pulumi.yaml")
        for p in sorted(project.root.glob("Pulumi.*"))
        if p.name in ("Pulumi.json", "Pulumi.yml")
    ]
    found += [
        Finding(
            "error",
            str(p.relative_to(project.root)),
            "-",
            "a symbolic link: a change to the file it points at is not reviewed",
        )
        for p in sorted(project.policy_dir.rglob("*"))
        if p.is_symlink()
    ]
    return found


# Vault keeps every auth mount of a server in one storage entry (the auth mount table), at most 1 MiB
# on integrated storage by default: about 14,000 auth mounts (docs/internals/limits; Consul's
# 512 KiB, half that). A fleet past half of it has room for one more growth spurt, not two: time to
# raise max_entry_size or split the fleet over Vaults (docs/benchmarks.md, "What grows per cluster").
AUTH_MOUNT_LIMIT = 14_000
AUTH_MOUNT_WARN_SHARE = 0.5


def _capacity(stacks) -> list[Finding]:
    """A warning per Vault whose fleet's auth mounts (a mount per cluster, the pipeline's jwt
    mount) pass AUTH_MOUNT_WARN_SHARE of the documented auth mount table limit."""
    per_vault: dict[str, list[str]] = {}
    for stack in stacks:
        if isinstance(stack, ClusterStack):
            per_vault.setdefault(stack.fleet.vault_address, []).append(stack.name)
        elif isinstance(stack, SharedStack) and stack.pipeline is not None:
            per_vault.setdefault(stack.fleet.vault_address, []).append(stack.name)
    out = []
    for address, owners in per_vault.items():
        if len(owners) > AUTH_MOUNT_LIMIT * AUTH_MOUNT_WARN_SHARE:
            out.append(
                Finding(
                    "warning",
                    "Pulumi.yaml",
                    "vaultfleet:vaultAddress",
                    f"{address}: the fleet has {len(owners)} auth mounts on this Vault, past "
                    f"{AUTH_MOUNT_WARN_SHARE:.0%} of the about {AUTH_MOUNT_LIMIT:,} its auth mount table holds "
                    "(integrated storage's default 1 MiB entry; Consul: half): raise the storage's max_entry_size "
                    "or split the fleet over Vaults",
                )
            )
    return out


def _expectations(project: Project, stacks, every_stack: bool) -> list[Finding]:
    """access/*.yaml checked offline against the validated cluster stacks (vaultfleet/expectations.py):
    a failing one is an error naming the policy rule that decides it."""
    from vaultfleet.expectations import RoleAccess, check_offline
    from vaultfleet.stackfile.expectations import load

    located, problems = load(project)
    out = [Finding("error", f, fld, msg) for f, fld, msg in problems]
    clusters = {s.name: s for s in stacks if isinstance(s, ClusterStack)}
    cache: dict[tuple[str, str], RoleAccess] = {}
    for where in located:
        e = where.expectation
        stack = clusters.get(e.cluster)
        if stack is None:
            if every_stack:
                out.append(
                    Finding("error", where.file, f"{where.field}.cluster", f"no valid cluster stack '{e.cluster}'")
                )
            continue
        role = next((r for r in stack.roles if r.name == e.role), None)
        if role is None:
            out.append(Finding("error", where.file, f"{where.field}.role", f"{e.cluster} has no role '{e.role}'"))
            continue
        access = cache.get((e.cluster, e.role)) or cache.setdefault(
            (e.cluster, e.role), RoleAccess(stack, role, project.policy_dir)
        )
        outcome = check_offline(where, access)
        if outcome.unchecked:
            out.append(Finding("warning", where.file, where.field, str(outcome)))
        elif not outcome.ok:
            out.append(Finding("error", where.file, where.field, str(outcome)))
    return out


def check_stack(stack_file: StackFile) -> tuple[list[Finding], ClusterStack | SharedStack | None]:
    """One stack file on its own: its findings, and its settings when it has no error."""
    policy_dir = stack_file.project.policy_dir
    try:
        stack = stack_file.settings
        if isinstance(stack, ClusterStack):
            render_cluster_policies(stack, policy_dir)
        else:
            render_previewer(stack, policy_dir)
    except StackFileError as exc:
        return [Finding("error", exc.file, "-", str(exc).split(": ", 1)[1])], None
    except ConfigError as exc:
        return [Finding("error", f, fld, msg) for f, fld, msg in exc.problems], None
    except PolicyError as exc:
        return [Finding("error", exc.source, "vaultfleet:policies", str(exc).split(": ", 1)[1])], None
    return _lint_stack(stack, stack_file.shown), stack


def _lint_stack(stack, shown: str) -> list[Finding]:
    if not isinstance(stack, ClusterStack):
        return _lint_database(stack, shown)
    out = []
    # cluster.apiHost over plain http:// is refused by the schema (fields.ApiServerUrl), so that
    # `pulumi up`/`preview` refuse it too.
    for i, role in enumerate(stack.roles):
        where = f"vaultfleet:roles[{i}]"
        if "*" in role.service_accounts and "*" in role.namespaces:
            out.append(
                Finding("warning", shown, where, f"role '{role.name}' binds every ServiceAccount in every namespace")
            )
        if role.audience is None:
            out.append(
                Finding("warning", shown, f"{where}.audience", f"role '{role.name}' accepts tokens of any audience")
            )
    return out


def _lint_database(stack: SharedStack, shown: str) -> list[Finding]:
    if stack.database is None:
        return []
    out = []
    for i, role in enumerate(stack.database.roles):
        if not any("{{expiration}}" in s for s in role.creation_statements):
            out.append(
                Finding(
                    "warning",
                    shown,
                    f"vaultfleet:database.roles[{i}].creationStatements",
                    f"role '{role.name}' creates users without VALID UNTIL '{{{{expiration}}}}': they outlive their lease if revocation fails",
                )
            )
    return out


def _database_role_findings(stacks) -> list[Finding]:
    """A cluster's databaseRoles should be roles the shared stack's engine declares (when validated together)."""
    shared = next((s for s in stacks if isinstance(s, SharedStack)), None)
    if shared is None:
        return []
    declared = [r.name for r in shared.database.roles] if shared.database else []
    out = []
    for stack in stacks:
        if not isinstance(stack, ClusterStack):
            continue
        for i, name in enumerate(stack.database_roles):
            if name not in declared:
                out.append(
                    Finding(
                        "warning",
                        stack_file_name(stack.name),
                        f"vaultfleet:databaseRoles[{i}]",
                        f"'{name}' is not a role of the shared stack's database engine {declared}",
                    )
                )
    return out


def _lint_fleet(stacks) -> list[Finding]:
    out = _database_role_findings(stacks)
    shared = next((s for s in stacks if isinstance(s, SharedStack)), None)
    # Each would write the fleet's KV mount, every cluster's mount and applier policy: over each other.
    out += [
        Finding(
            "error",
            stack_file_name(extra.name),
            "vaultfleet:kind",
            f"a second shared stack (the first: {stack_file_name(shared.name)}): a fleet has one",
        )
        for extra in stacks
        if isinstance(extra, SharedStack) and extra is not shared
    ]
    clusters = [s for s in stacks if isinstance(s, ClusterStack)]
    out += [Finding("error", file, field, message) for file, field, message in fleet_conflicts(clusters, shared)]
    reviewers: dict[tuple[str, str, str], str] = {}
    for stack in stacks:
        if not isinstance(stack, ClusterStack):
            continue
        shown = stack_file_name(stack.name)
        # Two stacks owning one ServiceAccount would delete it under each other on destroy.
        reviewer = (
            stack.cluster.kube_context,
            stack.cluster.reviewer_namespace,
            stack.cluster.reviewer_service_account,
        )
        if reviewer in reviewers:
            out.append(
                Finding(
                    "error",
                    shown,
                    "vaultfleet:cluster.reviewerServiceAccount",
                    f"context '{reviewer[0]}' reviewer {reviewer[1]}/{reviewer[2]} is also managed by stack "
                    f"'{reviewers[reviewer]}'; give one of them its own reviewerServiceAccount",
                )
            )
        reviewers[reviewer] = stack.name
    return out
