"""Vault policy templates: policies/<name>.hcl rendered per cluster and checked before any write.

Templates use ${cluster}, ${mount} (the cluster's auth mount path), ${kv_mount},
${database_mount} and ${mount_accessor}. Vault's own ACL templating ({{identity...}}) passes
through untouched; its kubernetes alias metadata form is checked (see ALIAS_METADATA_KEYS).

${database_role} stands for a list: the database roles the cluster declares
(vaultfleet:databaseRoles). A template using it is rendered once per role and the renderings are
merged path by path, so policies/db-creds.hcl grants the creds of exactly the declared roles and
nothing else; a path the renderings share (sys/leases/renew) is kept once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from hcl.parser import HclParser

if TYPE_CHECKING:
    from vaultfleet.stackfile.schema import ClusterStack, SharedStack

# Every capability Vault (and OpenBao) accepts in an ACL policy.
CAPABILITIES = frozenset(
    {"create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe", "recover"}
)

# The packaged templates (in this checkout, a link to the repository's policies/; in an installed
# wheel, its copy): the default of tests and benchmarks. The program and every command render from
# their project's policies/ (`Project.policy_dir`), the copy a fleet repository owns.
POLICY_DIR = Path(__file__).resolve().parents[1] / "templates" / "fleet" / "policies"

# Vault keys an entity's aliases by mount accessor, not by mount path, and the accessor exists only
# once the mount does (a Pulumi Output). Rendering keeps ${mount_accessor} as this placeholder;
# ClusterOnboarding fills it in from the mount's accessor (fill_mount_accessor).
MOUNT_ACCESSOR_PLACEHOLDER = "${mount_accessor}"
# Stands in for the accessor when a body is checked, or read by `access`, before the mount exists.
EXAMPLE_ACCESSOR = "auth_kubernetes_00000000"

# The metadata the kubernetes auth method puts on the entity alias at login (OpenBao and Vault,
# builtin/credential/kubernetes/path_login.go), for {{identity.entity.aliases.<accessor>.metadata.<key>}}.
ALIAS_METADATA_KEYS = (
    "service_account_namespace",
    "service_account_name",
    "service_account_uid",
    "service_account_secret_name",
)
_ALIAS_TEMPLATE = re.compile(r"\{\{\s*identity\.entity\.aliases\.([^.\s}]+)\.metadata\.([^\s}]+)\s*\}\}")


class PolicyError(ValueError):
    def __init__(self, source: str, message: str):
        self.source = source
        super().__init__(f"{source}: {message}")


@dataclass(frozen=True)
class PathRule:
    path: str
    capabilities: tuple[str, ...]


def template_path(name: str, policy_dir: Path = POLICY_DIR) -> Path:
    return policy_dir / f"{name}.hcl"


# List placeholder -> the stack field that holds its values (named in errors).
LIST_PLACEHOLDERS = {"database_role": "vaultfleet:databaseRoles"}


def render(
    name: str, variables: dict[str, str], policy_dir: Path = POLICY_DIR, lists: dict[str, list[str]] | None = None
) -> str:
    """Render policies/<name>.hcl and check it; raises PolicyError naming the file.

    `lists` gives the values of list placeholders (LIST_PLACEHOLDERS) for templates that use one.
    """
    path = template_path(name, policy_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PolicyError(str(path), f"no policy template named '{name}'") from None
    template = Template(text)
    repeated = sorted(set(template.get_identifiers()) & set(LIST_PLACEHOLDERS))
    if not repeated:
        body = _substitute(template, variables, path)
        _checked(body, path)
        return body
    if len(repeated) > 1:
        raise PolicyError(str(path), f"uses more than one list placeholder {repeated}; a template may use one")
    key = repeated[0]
    values = (lists or {}).get(key) or []
    if not values:
        raise PolicyError(
            str(path),
            f"uses ${{{key}}}: name the values in {LIST_PLACEHOLDERS[key]} of the stack file, or drop '{name}' from its policies",
        )
    renderings = [
        _checked(_substitute(template, {**variables, key: value}, path), path, capabilities_only=True)
        for value in values
    ]
    # Block by block in template order, each block once per value: the creds paths stay together.
    merged: dict[str, tuple[str, ...]] = {}
    for blocks in zip(*renderings, strict=True):  # one template: the same blocks per value
        for rule in blocks:
            merged.setdefault(rule.path, rule.capabilities)
    header = f"# Rendered from {path.name} for {LIST_PLACEHOLDERS[key]}: {', '.join(values)}.\n"
    return header + "".join(
        f'\npath "{fill_mount_accessor(p, MOUNT_ACCESSOR_PLACEHOLDER, EXAMPLE_ACCESSOR)}" {{\n'
        f"  capabilities = [{', '.join(chr(34) + c + chr(34) for c in caps)}]\n}}\n"
        for p, caps in merged.items()
    )


def _substitute(template: Template, variables: dict[str, str], path: Path) -> str:
    try:
        return template.substitute(variables)
    except (KeyError, ValueError) as exc:
        known = ", ".join(f"${{{k}}}" for k in sorted({*variables, *LIST_PLACEHOLDERS}))
        raise PolicyError(str(path), f"unknown or malformed placeholder {exc} (known: {known})") from None


def _checked(body: str, path: Path, capabilities_only: bool = False) -> list[PathRule]:
    """The rules of a rendered body as Vault will see them (an example accessor in place of the
    mount's), with its alias templates checked."""
    rules = parse_rules(fill_mount_accessor(body, EXAMPLE_ACCESSOR), str(path), capabilities_only)
    _check_alias_templates(rules, str(path))
    return rules


def fill_mount_accessor(body: str, accessor: str, placeholder: str = MOUNT_ACCESSOR_PLACEHOLDER) -> str:
    """A rendered body with the auth mount's real accessor in place of the placeholder."""
    return body.replace(placeholder, accessor)


def _check_alias_templates(rules: list[PathRule], source: str) -> None:
    """Vault renders an alias template it cannot resolve as nothing: the path then grants nothing."""
    for rule in rules:
        for accessor, key in _ALIAS_TEMPLATE.findall(rule.path):
            if accessor != EXAMPLE_ACCESSOR:
                raise PolicyError(
                    source,
                    f'path "{rule.path}": aliases.{accessor}: Vault keys aliases by mount accessor, not by name '
                    "or path; write aliases.${mount_accessor}",
                )
            if key not in ALIAS_METADATA_KEYS:
                raise PolicyError(
                    source,
                    f"path \"{rule.path}\": unknown alias metadata '{key}' (kubernetes auth sets {', '.join(ALIAS_METADATA_KEYS)})",
                )


def for_service_account(path: str, namespace: str, service_account: str) -> str:
    """A policy path as Vault applies it to a token of this ServiceAccount (alias metadata filled in).

    What the login alone decides (a wildcard binding, the uid) stays a readable <placeholder>.
    """
    known = {"service_account_namespace": namespace, "service_account_name": service_account}

    def value(match: re.Match) -> str:
        found = known.get(match.group(2))
        return found if found and found != "*" else f"<{match.group(2)}>"

    return _ALIAS_TEMPLATE.sub(value, path)


@functools.cache
def _hcl_parser() -> HclParser:
    # pyhcl builds its LALR tables in the parser's constructor (~0.25 s) and `hcl.loads` makes a
    # new parser per call: one per process keeps `validate` of 100 stacks, and every engine run,
    # from paying that per policy.
    return HclParser()


# Path-block keys that only narrow what the capabilities grant (parameters, wrapping, MFA):
# vaultfleet's view of a rule is its capabilities, and these cannot add to them.
RESTRICTING_KEYS = frozenset(
    {
        "comment",
        "allowed_parameters",
        "denied_parameters",
        "required_parameters",
        "min_wrapping_ttl",
        "max_wrapping_ttl",
        "mfa_methods",
        "control_group",
        "pagination_limit",  # OpenBao's
        "list_scan_response_keys_filter_path",
        "subscribe_event_types",
    }
)


def parse_rules(body: str, source: str, capabilities_only: bool = False) -> list[PathRule]:
    """Parse a policy body as Vault does (HCL), checking paths and capabilities.

    `capabilities_only` refuses other path attributes (allowed_parameters, ...): renderings merged
    path by path keep only the capabilities, and must not drop anything silently.
    """
    try:
        document = _hcl_parser().parse(body)
    except Exception as exc:  # pyhcl raises ValueError subclasses with line/column in the text
        raise PolicyError(source, f"HCL does not parse: {exc}") from None
    unknown_blocks = sorted(set(document) - {"path"})
    if unknown_blocks:
        raise PolicyError(source, f"unknown top-level block(s) {unknown_blocks}; a policy holds `path` blocks")
    paths = document.get("path")
    if not paths:
        raise PolicyError(source, "no `path` block: the policy would grant nothing")
    from vaultfleet.render.acl import _top_level_paths  # acl builds on this module

    # pyhcl merges a repeated path's blocks key by key (the later capabilities win), where the
    # servers merge both blocks' capabilities: what is rendered and reviewed would be less than
    # what is granted. One block per path.
    keys, _ = _top_level_paths(body)
    repeated = sorted({k for k in keys if k is not None and keys.count(k) > 1})
    if isinstance(paths, list) or repeated:
        named = ", ".join(f'"{k}"' for k in repeated) or "a path"
        raise PolicyError(source, f"{named} declared more than once: merge the blocks into one")
    rules = []
    for path, block in paths.items():
        if not path.strip():
            raise PolicyError(source, "empty path")
        if "*" in path[:-1]:
            # Vault would match such a `*` literally and silently grant nothing.
            raise PolicyError(
                source, f'path "{path}": `*` is a glob only at the end of a path (use `+` for one segment)'
            )
        caps = block.get("capabilities") if isinstance(block, dict) else None
        if not caps or not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise PolicyError(source, f'path "{path}": `capabilities` must be a non-empty list of names')
        if "policy" in block:
            # The servers still add the old shorthand's capabilities (`policy = "write"`) to the
            # rule's: a grant that `capabilities`, and so the access review, would not show.
            raise PolicyError(source, f'path "{path}": the old `policy = ...` shorthand; list `capabilities` instead')
        unknown = sorted(set(block) - RESTRICTING_KEYS - {"capabilities"})
        if unknown:
            raise PolicyError(source, f'path "{path}": unknown keys {unknown}')
        bad = sorted(set(caps) - CAPABILITIES)
        if bad:
            raise PolicyError(source, f'path "{path}": unknown capabilities {bad} (known: {sorted(CAPABILITIES)})')
        if capabilities_only and set(block) != {"capabilities"}:
            others = sorted(set(block) - {"capabilities"})
            raise PolicyError(
                source, f'path "{path}": a template rendered per list value may hold only `capabilities`, not {others}'
            )
        rules.append(PathRule(path, tuple(caps)))
    return rules


def render_cluster_policies(stack: ClusterStack, policy_dir: Path = POLICY_DIR) -> dict[str, str]:
    """Policy name -> rendered body for a cluster stack, every one checked before anything is written."""
    variables = {
        "cluster": stack.name,
        "mount": stack.mount_path,
        "kv_mount": stack.fleet.kv_mount,
        "database_mount": stack.fleet.database_mount,
        "mount_accessor": MOUNT_ACCESSOR_PLACEHOLDER,
    }
    lists = {"database_role": list(stack.database_roles)}
    return {stack.policy_name(t): render(t, variables, policy_dir, lists) for t in stack.policies}


def cluster_policy_rules(stack: ClusterStack, policy_dir: Path = POLICY_DIR) -> dict[str, list[PathRule]]:
    """Policy name -> its path rules, alias templates still in the paths (see for_service_account)."""
    return policy_rules(render_cluster_policies(stack, policy_dir))


def policy_rules(bodies: dict[str, str]) -> dict[str, list[PathRule]]:
    """The path rules of rendered policy bodies (render_cluster_policies), for a caller that has
    rendered them already."""
    return {name: parse_rules(fill_mount_accessor(body, EXAMPLE_ACCESSOR), name) for name, body in bodies.items()}


def render_previewer(
    stack: SharedStack,
    policy_dir: Path = POLICY_DIR,
    state_keys: Sequence[str] = (),
    cluster_mounts: Sequence[str] = (),
) -> str:
    """The read-only policy of pull-request previews (policies/fleet/vaultfleet-previewer.hcl), plus
    decrypt on each cluster stack's Transit state key (`state_keys`): a preview reads the stack's
    state. Never the shared stack's key (its state holds the database passwords) and never encrypt.
    `cluster_mounts`: the clusters' auth mounts; the template reads those under the fleet's prefix,
    and one outside it (cluster.mountPath, an adopted cluster's) is added by name."""
    variables = {
        "mount_prefix": stack.fleet.mount_prefix,
        "database_mount": stack.fleet.database_mount,
        "pipeline_mount": stack.pipeline.mount if stack.pipeline else "ci",
    }
    body = render("fleet/vaultfleet-previewer", variables, policy_dir)
    own = sorted(m for m in set(cluster_mounts) if not m.startswith(f"{stack.fleet.mount_prefix}-"))
    return body + previewer_grants(own, state_keys)


def previewer_grants(
    mounts: Sequence[str],
    state_keys: Sequence[str],
    heading: str = "Cluster mounts outside the fleet's prefix (cluster.mountPath): config and roles.",
) -> str:
    """What a preview reads beyond the fleet's previewer template: auth mounts it names by path (one
    outside the fleet's prefix), and cluster stacks' state keys. In the per-cluster layout each
    access stack writes its cluster's as `vaultfleet-preview-<cluster>`; else they end the
    vaultfleet-previewer policy."""
    from vaultfleet.stackfile.pipeline import TRANSIT_MOUNT

    body = ""
    if mounts:
        # Exactly what a preview reads of a cluster mount (its config and roles), nothing else under
        # the path: a mountPath naming another method's mount (approle, userpass) opens no more.
        body += f"\n# {heading}\n"
        for mount in sorted(set(mounts)):
            body += f'\npath "auth/{mount}/config" {{\n  capabilities = ["read"]\n}}\n'
            body += f'\npath "auth/{mount}/role" {{\n  capabilities = ["list"]\n}}\n'
            body += f'\npath "auth/{mount}/role/*" {{\n  capabilities = ["read", "list"]\n}}\n'
    if state_keys:
        # A cluster stack's preview decrypts its state; the shared stack's refresh reads the keys'
        # settings (transit/keys/<key>: never the key material, that is transit/export).
        body += "\n# The cluster stacks' state keys (secretsprovider: hashivault://...): decrypt, and their settings.\n"
        for key in sorted(state_keys):
            body += f'\npath "{TRANSIT_MOUNT}/decrypt/{key}" {{\n  capabilities = ["update"]\n}}\n'
            body += f'\npath "{TRANSIT_MOUNT}/keys/{key}" {{\n  capabilities = ["read"]\n}}\n'
    return body
