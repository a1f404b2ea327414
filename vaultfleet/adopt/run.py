"""`vaultfleet adopt`: read, describe, and, when nothing is refused and the differences are
accepted, write the stack file and import.

1. Read the mount, its config and roles, and the reviewer (observe.py); nothing is written.
2. The stack file that reproduces them, checked by the schema like any other (describe.py), and
   the differences: refused ones stop here; the others are shown, and only `accept` goes on.
3. Write the stack file and preview the import (program/adoption.py sets Pulumi's `import` option
   on every object found): it may import and create the cluster's objects, update an imported one
   only in the accepted differences, and update the fleet-wide policies that list every cluster.
   Anything else (a role or policy that would be rewritten, the admin's checkout differing from
   what is applied) takes the file back and lists the steps.
   Then `up` of the shared stack and the cluster's with the import, and an ordinary `up` that
   writes the accepted differences (the reviewer JWT, the mount's description and max TTL) and
   makes what is new (the applier policy). No mount, role or policy is created, replaced or deleted.
4. A preview of both stacks must show no changes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from vaultfleet.adopt.describe import (
    BINDING,
    CONFIG,
    MOUNT,
    ROLE,
    SECRET,
    SERVICE_ACCOUNT,
    add_mount_differences,
    describe,
)
from vaultfleet.adopt.describe_jwt import add_body_differences
from vaultfleet.adopt.differences import Description, Difference
from vaultfleet.adopt.observe import AdoptError, AdoptionStopped, Observed, observe_reviewer, observe_vault
from vaultfleet.fleet.engine import ADOPT_IDS_ENV, engine_env
from vaultfleet.stackfile import Project, StackFile, stack_file_name
from vaultfleet.stackfile.schema import ClusterStack


@dataclass
class Adoption:
    cluster: str
    stack_file: str
    text: str
    differences: list[Difference]
    written: bool = False
    imported: list[str] = field(default_factory=list)
    """`<type> <id>` of every object imported."""


def adopt(
    project: Project,
    cluster: str,
    context: str,
    mount_path: str,
    vault_token: str,
    reviewer: tuple[str, str] | None = None,
    accept: bool = False,
    echo: Callable[[str], None] = lambda _: None,
) -> Adoption:
    import hvac

    from vaultfleet.kube import context_client, jwt_issuer

    if not context or any(not ch.isprintable() for ch in context):
        raise AdoptError("--context must be a kubeconfig context name (printable characters)")
    shown = stack_file_name(cluster)
    stack_file = project.stack(cluster)
    if stack_file.path.exists():
        raise AdoptError(f"{shown} already exists: {cluster} is managed already (release it first to adopt it again)")
    for other in project.stacks():
        settings = other.valid_settings()
        if isinstance(settings, ClusterStack) and settings.mount_path == mount_path:
            raise AdoptError(f"auth/{mount_path} is stack {other.name}'s mount already")
    vault_address = project.defaults.get("vaultAddress")
    vault = hvac.Client(url=vault_address, token=vault_token)
    mount, config, roles = observe_vault(vault, mount_path)
    echo(f"read auth/{mount_path}: {mount.type} mount {mount.accessor}, {len(roles)} roles")
    found_reviewer = None
    if mount.type == "kubernetes" and (reviewer is not None or not config.get("disable_local_ca_jwt")):
        # A config that reviews with the client's own token has no reviewer, unless one is named;
        # a jwt mount has none at all.
        found_reviewer = observe_reviewer(context_client(context), reviewer)
    if found_reviewer is not None:
        echo(
            f"reviewer: {found_reviewer.namespace}/{found_reviewer.service_account} (token Secret "
            f"{found_reviewer.token_secret}, binding {found_reviewer.binding})"
        )
    observed = Observed(mount, config, roles, found_reviewer)
    description = describe(observed, cluster, context)
    _refuse(description)  # before validating: a refused field may have left no valid value
    text = description.text(cluster, context, mount_path)
    settings = _checked(StackFile(project, stack_file.path, text=text))
    add_mount_differences(description, observed, cluster, settings.mount_max_ttl)
    if mount.type == "jwt":
        add_body_differences(description, observed, settings, *jwt_issuer(settings))
    _refuse(description)
    found = _found(observed, settings, description)
    adoption = Adoption(cluster, shown, text, description.differences, imported=sorted(found))
    if description.differences and not accept:
        return adoption  # shown to the admin; nothing written
    with open(stack_file.path, "x") as out:  # exclusive: never overwrites
        out.write(text)
    # Per-cluster layout: the cluster's access stack imports its mount and policies (under the same
    # names as the shared stack's subtree), the shared stack only lists the new cluster's name.
    stacks = [s.name for s in project.shared_stacks()] + project.access_stack_names([cluster]) + [cluster]
    with tempfile.TemporaryDirectory(prefix="vaultfleet-adopt-") as tmp:
        ids = os.path.join(tmp, "found.json")
        with open(ids, "w") as out:
            json.dump(found, out)
        env = {**engine_env(), ADOPT_IDS_ENV: ids}
        try:
            _only_the_cluster_changes(project, stacks, cluster, found, env, echo)
        except (AdoptError, AdoptionStopped):
            stack_file.path.unlink()  # nothing else was written: the preview changes nothing
            raise
        adoption.written = True
        echo(f"wrote {shown}; importing {len(found)} objects")
        _import_and_settle(project, stacks, cluster, env, echo)
    return adoption


def _only_the_cluster_changes(
    project: Project, stacks: list[str], cluster: str, found: dict[str, list[str]], env, echo
) -> None:
    """A preview of the adoption, which must show nothing but: the cluster's objects imported or
    created, an imported one updated only in the differences the admin accepted, and the fleet-wide
    policies that list every cluster updated. Anything else (an object changed beyond what was
    accepted, or the admin's checkout differing from what is applied: a cluster merged since, an
    edited template) would be written by this privileged run outside review: refused."""
    from vaultfleet.fleet.runner import run

    echo("previewing the import")
    planned = run(project, stacks, "preview", parallel=2, env=env)
    _stop_on_failure(planned, cluster, "the preview of the import")
    accepted: dict[str, set[str]] = {}
    for key, props in found.items():
        accepted.setdefault(key.split(" ", 1)[0], set()).update(p.split(".")[0] for p in props)
    subtree = f"fleet-cluster-{cluster}"  # the cluster's ClusterAccess in the shared stack
    outside = []
    for result in planned:
        for step in result.steps:
            # The cluster's stack is new: all of it is the cluster's. In the shared stack (or the
            # cluster's access stack), its subtree.
            name = step["name"]
            own = result.stack == cluster or name == subtree or name.startswith(f"{subtree}-")
            if own and step["op"] in ("import", "create"):
                continue
            if (
                own
                and step["op"] == "update"
                and step["diffs"]
                and set(step["diffs"]) <= accepted.get(step["type"], set())
            ):
                continue
            if step["op"] == "update" and (
                step["name"] == "fleet-previewer" or step["name"].startswith("fleet-pipeline")
            ):
                continue
            diffs = f" ({', '.join(step['diffs'])})" if step["diffs"] else ""
            outside.append(f"{result.stack}: {step['op']} {step['type']} {step['name']}{diffs}")
    if outside:
        raise AdoptError(
            "the import would change more than the accepted differences; nothing written:\n  " + "\n  ".join(outside)
        )


def _refuse(description: Description) -> None:
    if description.refusals:
        raise AdoptError(
            "cannot adopt without losing what the stack-file format cannot carry:\n  "
            + "\n  ".join(str(d) for d in description.refusals)
        )


def _checked(stack_file: StackFile) -> ClusterStack:
    from vaultfleet.validate import check_stack

    findings, settings = check_stack(stack_file)
    errors = [f for f in findings if f.severity == "error"]
    if errors or not isinstance(settings, ClusterStack):
        raise AdoptError(
            "the stack file that would reproduce the cluster does not validate, nothing written:\n  "
            + "\n  ".join(f"{f.file}: {f.field}: {f.message}" for f in errors)
        )
    return settings


def _found(observed: Observed, settings: ClusterStack, description: Description) -> dict[str, list[str]]:
    """`<type> <id>` -> inputs not compared, for every object that exists and the program makes.
    A jwt mount's config and roles are not among them: jwt mode writes them as generic endpoints,
    which Pulumi cannot import; the import run writes them (describe_jwt.py compared every field)."""
    mount = observed.mount.path
    found = [f"{MOUNT} {mount}"]
    if observed.mount.type == "jwt":
        return {key: description.ignore.get(key, []) for key in found}
    found.append(f"{CONFIG} auth/{mount}/config")
    found += [f"{ROLE} auth/{mount}/role/{role.name}" for role in settings.roles]
    if observed.reviewer is not None:
        r = observed.reviewer
        found += [f"{SERVICE_ACCOUNT} {r.namespace}/{r.service_account}", f"{SECRET} {r.namespace}/{r.token_secret}"]
        found.append(f"{BINDING} {r.binding}")
    return {key: description.ignore.get(key, []) for key in found}


def _import_and_settle(project: Project, stacks: list[str], cluster: str, env, echo: Callable[[str], None]) -> None:
    from vaultfleet.fleet.runner import run

    imported = run(project, stacks, "up", parallel=1, env=env)
    _stop_on_failure(imported, cluster, "import")
    echo("imported; writing the accepted differences")
    written = run(project, stacks, "up", parallel=1)
    _stop_on_failure(written, cluster, "the run after the import")
    checked = run(project, stacks, "preview", parallel=2)
    _stop_on_failure(checked, cluster, "the preview after adoption")
    changed = [r.stack for r in checked if r.changed]
    if changed:
        raise AdoptionStopped(f"the preview after adoption still shows changes in {', '.join(changed)}")


def _stop_on_failure(results, cluster: str, what: str) -> None:
    failed = [r for r in results if not r.ok]
    if failed:
        details = "; ".join(f"{r.stack}: {r.error}" for r in failed)
        raise AdoptionStopped(
            f"{what} failed ({details}). Nothing was deleted or replaced; `vaultfleet release {cluster}` "
            "takes what was imported back out of the state"
        )
