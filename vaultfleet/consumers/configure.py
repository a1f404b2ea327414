"""`vaultfleet consumers`' logic: the configuration of one kind of consumer for each ServiceAccount
a stack's roles let in, with the lines that say what each is and how to use it. The CLI
(vaultfleet/cli/consumers.py) only checks its options, prints and picks the exit code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vaultfleet.consumers import agent, eso, injector, vso
from vaultfleet.consumers.bindings import Binding, ConsumerError, bindings, secret_templates
from vaultfleet.consumers.database import DatabaseCredentialsError, resolve
from vaultfleet.stackfile.schema import ClusterStack, SharedStack

Kind = Literal["injector", "eso", "vso", "agent"]

# How to use what each kind prints, said once per ServiceAccount.
USAGE = {
    "injector": "patch a Deployment with it: kubectl patch deployment NAME -n {namespace} --patch-file FILE",
    "eso": "kubectl apply -f FILE (external-secrets installed)",
    "vso": "kubectl apply -f FILE (Vault Secrets Operator installed)",
    "agent": "bao agent -config FILE (or vault agent); {token_key} must hold a token of {namespace}/{account}{audience}",
}


@dataclass(frozen=True)
class ConsumerConfig:
    """One ServiceAccount's configuration for one kind of consumer."""

    binding: Binding
    lines: list[str]
    """What it logs in as, which database credentials it reads, how to use it."""
    documents: list[dict]


def consumer_configs(
    stack: ClusterStack,
    kind: Kind,
    policy_dir: Path,
    shared_stack: Callable[[], SharedStack | None],
    role: str | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    secret: str = "config",
    cluster_store: bool = False,
) -> tuple[list[ConsumerConfig], list[str]]:
    """(configurations, notes) for the bindings selected. `shared_stack` is called only when a role
    reads database credentials: a broken or absent shared stack file has nothing to say about KV
    consumers. Raises ConsumerError naming what is missing (a database credential's included)."""
    found, notes = bindings(stack, role, namespace, service_account, secret, policy_dir)
    if kind == "agent" and len(found) > 1:
        raise ConsumerError(
            "an agent config logs in as one ServiceAccount: pick one with --role/--namespace "
            f"({', '.join(f'{b.role.name} in {b.namespace}' for b in found)})"
        )
    shared = shared_stack() if any(b.database_creds for b in found) else None
    return [_config(stack, kind, b, shared, cluster_store) for b in found], notes


def _config(
    stack: ClusterStack, kind: Kind, binding: Binding, shared: SharedStack | None, cluster_store: bool
) -> ConsumerConfig:
    try:
        databases = resolve(stack, binding.database_creds, shared)
    except DatabaseCredentialsError as exc:
        raise ConsumerError(str(exc)) from None
    templates = secret_templates(binding, databases)
    if kind == "injector":
        documents = [injector.injector_patch(binding, templates)]
    elif kind == "eso":
        documents = eso.eso_objects(binding, cluster_store, databases)
    elif kind == "vso":
        documents = vso.vso_objects(binding, databases)
    else:
        documents = [agent.agent_config(binding, templates)]
    audience = f" for audience '{binding.role.audience}'" if binding.role.audience else ""
    token_key = "path" if binding.auth_method == "jwt" else "token_path"  # the auto-auth method's file key
    usage = USAGE[kind].format(
        namespace=binding.namespace, account=binding.service_account, audience=audience, token_key=token_key
    )
    return ConsumerConfig(binding, [binding.describe(), *(d.describe() for d in databases), usage], documents)
