"""`vaultfleet consumers`: injector, external-secrets, VSO and Vault Agent config for a stack's roles."""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Annotated

import typer

from vaultfleet.console import err


class Kind(str, Enum):
    injector = "injector"
    eso = "eso"
    vso = "vso"
    agent = "agent"


class Format(str, Enum):
    yaml = "yaml"
    json = "json"


# How to use what each kind prints, said once per ServiceAccount.
USAGE = {
    Kind.injector: "patch a Deployment with it: kubectl patch deployment NAME -n {namespace} --patch-file FILE",
    Kind.eso: "kubectl apply -f FILE (external-secrets installed)",
    Kind.vso: "kubectl apply -f FILE (Vault Secrets Operator installed)",
    Kind.agent: "bao agent -config FILE (or vault agent); token_path must hold a token of {namespace}/{account}{audience}",
}


def consumers(
    stack: Annotated[str, typer.Argument(help="Cluster stack whose mount and roles the consumers log in to.")],
    kind: Annotated[Kind, typer.Option("--kind", help="injector (pod annotations), eso (external-secrets), vso (Vault Secrets Operator) or agent (Vault Agent config).")],
    role: Annotated[str | None, typer.Option("--role", help="Only this role (default: every role).")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", help="Namespace the consumer runs in (default: each the role binds).")] = None,
    service_account: Annotated[str | None, typer.Option("--service-account", help="ServiceAccount to log in as (default: the role's first).")] = None,
    secret: Annotated[str, typer.Option("--secret", help="Name of the example KV secret under the role's subtree.")] = "config",
    cluster_store: Annotated[bool, typer.Option("--cluster-store", help="eso: a ClusterSecretStore (usable from the namespace only) instead of a SecretStore.")] = False,
    output: Annotated[Format | None, typer.Option("--format", help="yaml (default) or json; agent config is JSON only.")] = None,
) -> None:
    """Print consumer configuration matching the stack's auth mount and roles; no Vault or cluster needed.

    A role granted db-creds also gets its dynamic PostgreSQL credentials, pointed at the connection
    the shared stack declares for the database role.
    """
    from vaultfleet import consumers as gen
    from vaultfleet.cli_checks import load_stacks
    from vaultfleet.config import ClusterStack
    from vaultfleet.consumer_database import DatabaseCredentialsError, resolve

    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", secret):
        _fail(f"--secret '{secret}' must be a lowercase DNS label (it names the file and the Kubernetes Secret)")
    for option, value in (("--namespace", namespace), ("--service-account", service_account)):
        if value is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", value):
            _fail(f"{option} '{value}' is not a Kubernetes name")
    if kind is Kind.agent and output is Format.yaml:
        _fail("Vault Agent reads HCL or JSON, not YAML: use --format json (the default for --kind agent)")
    output = output or (Format.json if kind is Kind.agent else Format.yaml)

    project, (settings,) = load_stacks([stack])
    if not isinstance(settings, ClusterStack):
        _fail(f"{stack} is the shared stack; consumers log in through a cluster stack")
    try:
        found, notes = gen.bindings(settings, role, namespace, service_account, secret, project / "policies")
    except gen.ConsumerError as exc:
        _fail(str(exc))
    if kind is Kind.agent and len(found) > 1:
        _fail("an agent config logs in as one ServiceAccount: pick one with --role/--namespace "
              f"({', '.join(f'{b.role.name} in {b.namespace}' for b in found)})")

    # The shared stack is read only when a role reads database credentials: a broken or absent
    # shared stack file has nothing to say about KV consumers.
    shared = _shared_stack(project) if any(b.database_creds for b in found) else None
    groups = []
    for b in found:
        try:
            databases = resolve(settings, b.database_creds, shared)
        except DatabaseCredentialsError as exc:
            _fail(str(exc))
        templates = gen.secret_templates(b, databases)
        documents = {
            Kind.injector: lambda: [gen.injector_patch(b, templates)],
            Kind.eso: lambda: gen.eso_objects(b, cluster_store, databases),
            Kind.vso: lambda: gen.vso_objects(b, databases),
            Kind.agent: lambda: [gen.agent_config(b, templates)],
        }[kind]()
        audience = f" for audience '{b.role.audience}'" if b.role.audience else ""
        usage = USAGE[kind].format(namespace=b.namespace, account=b.service_account, audience=audience)
        groups.append(([b.describe(), *(d.describe() for d in databases), usage], documents))
    for note in notes:
        err.print(f"[yellow]note[/]: {note}", highlight=False)

    if output is Format.json:
        for lines, _ in groups:
            for line in lines:
                err.print(line, highlight=False, markup=False)
        documents = [d for _, docs in groups for d in docs]
        print(json.dumps(documents[0] if kind is Kind.agent else documents, indent=2))
        return
    for lines, docs in groups:
        print("\n".join(f"# {line}" for line in lines))
        for d in docs:
            print("---")
            print(_yaml(d), end="")


def _shared_stack(project):
    """The project's shared stack (vaultfleet:kind: shared) that declares the database engine, validated.

    None when no shared stack declares one; resolve() then says what is missing.
    """
    import yaml

    from vaultfleet.cli_checks import load_stacks
    from vaultfleet.fleet import all_stacks, is_shared

    names = []
    for name in all_stacks(project):
        try:
            if is_shared(project, name):
                names.append(name)
        except yaml.YAMLError:
            continue  # not readable as a stack file; `vaultfleet validate` names it
    if not names:
        return None
    _, stacks = load_stacks(names)
    engines = [s for s in stacks if s.database is not None]
    if len(engines) > 1:
        _fail(f"shared stacks {', '.join(s.name for s in engines)} each declare vaultfleet:database; "
              "vaultfleet expects the fleet's database engine in one of them")
    return engines[0] if engines else stacks[0]


def _fail(message: str):
    err.print(f"[red]error[/]: {message}", highlight=False)
    raise typer.Exit(code=2)


def _yaml(document: dict) -> str:
    import yaml

    class BlockStrings(yaml.SafeDumper):
        """Templates and other multi-line values as `|` blocks, readable and diffable."""

    def represent_str(dumper, value: str):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    BlockStrings.add_representer(str, represent_str)
    return yaml.dump(document, Dumper=BlockStrings, sort_keys=False, default_flow_style=False, width=1000)
