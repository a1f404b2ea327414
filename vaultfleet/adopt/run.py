"""`vaultfleet adopt`: read, describe, and, when nothing is refused and the differences are
accepted, write the stack file and import.

1. Read the mount, its config and roles, and the reviewer (observe.py); nothing is written.
2. The stack file that reproduces them, checked by the schema like any other (describe.py), and
   the differences: refused ones stop here; the others are shown, and only `accept` goes on.
3. Write the stack file; `up` of the shared stack and the cluster's with every found object
   imported (program/adoption.py): the engine compares each object with the program's inputs
   and refuses the run on any difference not accepted. Then an ordinary `up` writes the accepted
   differences (the reviewer JWT, the mount's description and max TTL) and makes what is new
   (the applier policy). No mount, role or policy is created, replaced or deleted.
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
    Description,
    Difference,
    add_mount_differences,
    describe,
)
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
    runs: list = field(default_factory=list)
    """The fleet runs (StackResult lists): import, write, check."""


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

    from vaultfleet.kube import context_client

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
    observed = Observed(mount, config, roles, observe_reviewer(context_client(context), reviewer))
    description = describe(observed, cluster, context)
    text = description.text(cluster, context, mount_path)
    settings = _checked(StackFile(project, stack_file.path, text=text))
    add_mount_differences(description, observed, cluster, settings.mount_max_ttl)
    found = _found(observed, settings, description)
    adoption = Adoption(cluster, shown, text, description.differences, imported=sorted(found))
    if description.refusals:
        raise AdoptError(
            "cannot adopt without losing what the stack-file format cannot carry:\n  "
            + "\n  ".join(str(d) for d in description.refusals)
        )
    if description.differences and not accept:
        return adoption  # shown to the admin; nothing written
    with open(stack_file.path, "x") as out:  # exclusive: never overwrites
        out.write(text)
    adoption.written = True
    echo(f"wrote {shown}; importing {len(found)} objects")
    _import_and_settle(project, cluster, found, adoption, echo)
    return adoption


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
    """`<type> <id>` -> inputs not compared, for every object that exists and the program makes."""
    mount = observed.mount.path
    found = [f"{MOUNT} {mount}", f"{CONFIG} auth/{mount}/config"]
    found += [f"{ROLE} auth/{mount}/role/{role.name}" for role in settings.roles]
    if observed.reviewer is not None:
        r = observed.reviewer
        found += [f"{SERVICE_ACCOUNT} {r.namespace}/{r.service_account}", f"{SECRET} {r.namespace}/{r.token_secret}"]
        found.append(f"{BINDING} {r.binding}")
    return {key: description.ignore.get(key, []) for key in found}


def _import_and_settle(
    project: Project, cluster: str, found: dict[str, list[str]], adoption: Adoption, echo: Callable[[str], None]
) -> None:
    from vaultfleet.fleet.runner import run

    stacks = [s.name for s in project.shared_stacks()] + [cluster]
    with tempfile.TemporaryDirectory(prefix="vaultfleet-adopt-") as tmp:
        ids = os.path.join(tmp, "found.json")
        with open(ids, "w") as out:
            json.dump(found, out)
        imported = run(project, stacks, "up", parallel=1, env={**engine_env(), ADOPT_IDS_ENV: ids})
    adoption.runs.append(imported)
    _stop_on_failure(imported, cluster, "import")
    echo("imported; writing the accepted differences")
    written = run(project, stacks, "up", parallel=1)
    adoption.runs.append(written)
    _stop_on_failure(written, cluster, "the run after the import")
    checked = run(project, stacks, "preview", parallel=2)
    adoption.runs.append(checked)
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
