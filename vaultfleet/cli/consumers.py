"""`vaultfleet consumers`: its options, output formats and exit codes; the configuration itself comes
from vaultfleet/consumers/configure.py."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

import typer

from vaultfleet.cli.common import cluster_stack, err, fail, format_option, load_stacks

Kind = Literal["injector", "eso", "vso", "agent"]
Format = format_option("yaml", "json", optional=True, help="yaml (default) or json; agent config is JSON only.")


def consumers(
    stack: Annotated[str, typer.Argument(help="Cluster stack whose mount and roles the consumers log in to.")],
    kind: Annotated[
        Kind,
        typer.Option(
            "--kind",
            help="injector (pod annotations), eso (external-secrets), vso (Vault Secrets Operator) or agent (Vault Agent config).",
        ),
    ],
    role: Annotated[str | None, typer.Option("--role", help="Only this role (default: every role).")] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Namespace the consumer runs in (default: each the role binds).")
    ] = None,
    service_account: Annotated[
        str | None, typer.Option("--service-account", help="ServiceAccount to log in as (default: the role's first).")
    ] = None,
    secret: Annotated[
        str, typer.Option("--secret", help="Name of the example KV secret under the role's subtree.")
    ] = "config",
    cluster_store: Annotated[
        bool,
        typer.Option(
            "--cluster-store",
            help="eso: a ClusterSecretStore (usable from the namespace only) instead of a SecretStore.",
        ),
    ] = False,
    output: Format = None,
) -> None:
    """Print consumer configuration matching the stack's auth mount and roles; no Vault or cluster needed.

    A role granted db-creds also gets its dynamic PostgreSQL credentials, pointed at the connection
    the shared stack declares for the database role.
    """
    from vaultfleet.consumers.bindings import ConsumerError
    from vaultfleet.consumers.configure import consumer_configs

    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", secret):
        fail(f"--secret '{secret}' must be a lowercase DNS label (it names the file and the Kubernetes Secret)")
    for option, value in (("--namespace", namespace), ("--service-account", service_account)):
        if value is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", value):
            fail(f"{option} '{value}' is not a Kubernetes name")
    if kind == "agent" and output == "yaml":
        fail("Vault Agent reads HCL or JSON, not YAML: use --format json (the default for --kind agent)")
    output = output or ("json" if kind == "agent" else "yaml")

    project, settings = cluster_stack(stack, "consumers log in through a cluster stack")
    try:
        configs, notes = consumer_configs(
            settings,
            kind,
            project.policy_dir,
            lambda: _shared_stack(project),
            role,
            namespace,
            service_account,
            secret,
            cluster_store,
        )
    except ConsumerError as exc:
        fail(str(exc))
    for note in notes:
        err.print(f"[yellow]note[/]: {note}", highlight=False)

    if output == "json":
        for config in configs:
            for line in config.lines:
                err.print(line, highlight=False, markup=False)
        documents = [d for config in configs for d in config.documents]
        print(json.dumps(documents[0] if kind == "agent" else documents, indent=2))
        return
    for config in configs:
        print("\n".join(f"# {line}" for line in config.lines))
        for d in config.documents:
            print("---")
            print(_yaml(d), end="")


def _shared_stack(project):
    """The project's shared stack (vaultfleet:kind: shared) that declares the database engine, validated.

    None when no shared stack declares one; resolve() then says what is missing.
    """
    names = [s.name for s in project.shared_stacks()]  # an unreadable file is left to `validate`
    if not names:
        return None
    _, stacks = load_stacks(names, project)
    engines = [s for s in stacks if s.database is not None]
    if len(engines) > 1:
        fail(
            f"shared stacks {', '.join(s.name for s in engines)} each declare vaultfleet:database; "
            "vaultfleet expects the fleet's database engine in one of them"
        )
    return engines[0] if engines else stacks[0]


def _yaml(document: dict) -> str:
    import yaml

    class BlockStrings(yaml.SafeDumper):
        """Templates and other multi-line values as `|` blocks, readable and diffable."""

    def represent_str(dumper, value: str):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    BlockStrings.add_representer(str, represent_str)
    return yaml.dump(document, Dumper=BlockStrings, sort_keys=False, default_flow_style=False, width=1000)
