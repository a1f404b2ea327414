"""During `vaultfleet adopt`: every object the program registers that already exists is imported
instead of created, under the URN the program gives it.

The adopt command lists the objects it found (in Vault and in the cluster) in a JSON file named by
$VAULTFLEET_ADOPT_IDS (fleet/engine.py ADOPT_IDS_ENV): `<type> <import id>` -> the inputs the import does not compare (the
differences it showed and the admin accepted, and what Vault never returns, the reviewer JWT).
The program (main.py) then registers `adopting_transform`, which sets Pulumi's `import` option on each
resource found. The engine reads each object and refuses the run if any other input of the
program differs from it: nothing is written then.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from vaultfleet.fleet.engine import ADOPT_IDS_ENV


def import_id(type_: str, props: Mapping[str, Any]) -> str | None:
    """The ID Pulumi imports an object of this type by (the provider's import format), from the
    program's inputs; None for a type adoption never imports (a component, a provider)."""

    def prop(*names: str) -> Any:
        return next((props[n] for n in names if props.get(n) is not None), None)

    if type_ == "vault:index/authBackend:AuthBackend":
        return prop("path")
    if type_ == "vault:kubernetes/authBackendConfig:AuthBackendConfig":
        return f"auth/{prop('backend')}/config"
    if type_ == "vault:kubernetes/authBackendRole:AuthBackendRole":
        return f"auth/{prop('backend')}/role/{prop('roleName', 'role_name')}"
    if type_ == "vault:generic/endpoint:Endpoint":
        return prop("path")
    if type_ == "vault:index/policy:Policy":
        return prop("name")
    if type_.startswith("kubernetes:") and not type_.startswith("pulumi:"):
        metadata = prop("metadata") or {}
        name, namespace = metadata.get("name"), metadata.get("namespace")
        if not isinstance(name, str):
            return None
        return f"{namespace}/{name}" if isinstance(namespace, str) else name
    return None


def adopting_transform(existing: Mapping[str, list[str]]):
    """A stack transformation importing each resource whose (type, ID) the adopt command found.

    The SDK's stack transformation, not the engine's newer transforms: it runs in the program's
    process, so the unit tests' mocks run it too (the engine's need the CLI's transform service)."""

    def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if not isinstance(args.resource, pulumi.CustomResource):
            return None
        found = import_id(args.type_, args.props)
        key = f"{args.type_} {found}"
        if found is None or key not in existing:
            return None
        opts = pulumi.ResourceOptions.merge(
            args.opts, pulumi.ResourceOptions(import_=found, ignore_changes=list(existing[key]) or None)
        )
        return pulumi.ResourceTransformationResult(props=args.props, opts=opts)

    return transform


def existing_ids() -> dict[str, list[str]] | None:
    """`<type> <id>` of every object adopt found -> inputs not compared; None outside an adopt run."""
    path = os.environ.get(ADOPT_IDS_ENV)
    if not path:
        return None
    return json.loads(Path(path).read_text())
