"""`vaultfleet validate`: stack files and policy templates checked without Vault, clusters or engine.

It reads the files the engine would read (Pulumi.yaml project config, then the stack file on top),
runs the same schema as `pulumi up` and renders every policy, then lints the fleet as a whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from vaultfleet import config
from vaultfleet.config import ClusterStack, SharedStack
from vaultfleet.policy import PolicyError, render_cluster_policies, render_provisioner


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" or "warning"
    file: str
    field: str
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def _project_defaults(project: Path) -> dict[str, Any]:
    doc = yaml.safe_load((project / "Pulumi.yaml").read_text()) or {}
    values = {}
    for key, spec in (doc.get("config") or {}).items():
        if not key.startswith(f"{config.NAMESPACE}:"):
            continue
        if isinstance(spec, dict) and ("value" in spec or "default" in spec):
            spec = spec.get("value", spec.get("default"))
        values[key.split(":", 1)[1]] = spec
    return values


def stack_files(project: Path, names: list[str] | None = None) -> list[Path]:
    """Stack files named by path or stack name; all of stacks/ when none are named."""
    if not names:
        return sorted((project / "stacks").glob("Pulumi.*.yaml"))
    files = []
    for name in names:
        path = Path(name)
        files.append(path if path.suffix in (".yaml", ".yml") else config.stack_file(project, name))
    return files


def _stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]


def validate(project: Path, names: list[str] | None = None) -> tuple[list[Finding], list[config.ClusterStack | config.SharedStack]]:
    defaults = _project_defaults(project)
    findings: list[Finding] = []
    stacks = []
    for path in stack_files(project, names):
        shown = str(path.relative_to(project)) if path.is_relative_to(project) else str(path)
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            findings.append(Finding("error", shown, "-", "no such stack file"))
            continue
        except yaml.YAMLError as exc:
            findings.append(Finding("error", shown, "-", f"not valid YAML: {exc}"))
            continue
        raw = doc.get("config") or {}
        values = dict(defaults)
        values.update({k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{config.NAMESPACE}:")})
        try:
            stack = config.parse(values, _stack_name(path), shown)
            if isinstance(stack, ClusterStack):
                render_cluster_policies(stack, project / "policies")
            else:
                render_provisioner(stack, project / "policies")
        except config.ConfigError as exc:
            findings += [Finding("error", f, fld, msg) for f, fld, msg in exc.problems]
            continue
        except PolicyError as exc:
            findings.append(Finding("error", exc.source, "vaultfleet:policies", str(exc).split(": ", 1)[1]))
            continue
        stacks.append(stack)
        findings += _lint_stack(stack, shown)
    findings += _lint_fleet(stacks, project)
    return findings, stacks


def _lint_stack(stack, shown: str) -> list[Finding]:
    if not isinstance(stack, ClusterStack):
        return _lint_database(stack, shown)
    out = []
    if stack.cluster.api_host and not stack.cluster.api_host.startswith("https://"):
        out.append(Finding("error", shown, "vaultfleet:cluster.apiHost", "must be https: Vault sends the reviewer JWT to it"))
    for i, role in enumerate(stack.roles):
        where = f"vaultfleet:roles[{i}]"
        if "*" in role.service_accounts and "*" in role.namespaces:
            out.append(Finding("warning", shown, where, f"role '{role.name}' binds every ServiceAccount in every namespace"))
        if role.audience is None:
            out.append(Finding("warning", shown, f"{where}.audience", f"role '{role.name}' accepts tokens of any audience"))
    return out


def _lint_database(stack: SharedStack, shown: str) -> list[Finding]:
    if stack.database is None:
        return []
    out = []
    for i, role in enumerate(stack.database.roles):
        if not any("{{expiration}}" in s for s in role.creation_statements):
            out.append(
                Finding(
                    "warning", shown, f"vaultfleet:database.roles[{i}].creationStatements",
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
                        "warning", str(config.stack_file(Path("."), stack.name)), f"vaultfleet:databaseRoles[{i}]",
                        f"'{name}' is not a role of the shared stack's database engine {declared}",
                    )
                )
    return out


def _lint_fleet(stacks, project: Path) -> list[Finding]:
    out = _database_role_findings(stacks)
    seen: dict[str, str] = {}
    reviewers: dict[tuple[str, str, str], str] = {}
    for stack in stacks:
        if not isinstance(stack, ClusterStack):
            continue
        shown = str(config.stack_file(Path("."), stack.name))
        if stack.mount_path in seen:
            out.append(Finding("error", shown, "vaultfleet:mountPrefix", f"mount path '{stack.mount_path}' is also used by stack '{seen[stack.mount_path]}'"))
        seen[stack.mount_path] = stack.name
        # Two stacks owning one ServiceAccount would delete it under each other on destroy.
        reviewer = (stack.cluster.kube_context, stack.cluster.reviewer_namespace, stack.cluster.reviewer_service_account)
        if reviewer in reviewers:
            out.append(Finding(
                "error", shown, "vaultfleet:cluster.reviewerServiceAccount",
                f"context '{reviewer[0]}' reviewer {reviewer[1]}/{reviewer[2]} is also managed by stack "
                f"'{reviewers[reviewer]}'; give one of them its own reviewerServiceAccount",
            ))
        reviewers[reviewer] = stack.name
    return out
