"""Vault policy templates: policies/<name>.hcl rendered per cluster and checked before any write.

Templates use ${cluster}, ${mount} (the cluster's auth mount path) and ${kv_mount}. Vault's own
ACL templating ({{identity...}}) passes through untouched.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from hcl.parser import HclParser

if TYPE_CHECKING:
    from vaultfleet.config import ClusterStack, SharedStack

# Every capability Vault (and OpenBao) accepts in an ACL policy.
CAPABILITIES = frozenset({"create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe", "recover"})

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"


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


def render(name: str, variables: dict[str, str], policy_dir: Path = POLICY_DIR) -> str:
    """Render policies/<name>.hcl and check it; raises PolicyError naming the file."""
    path = template_path(name, policy_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PolicyError(str(path), f"no policy template named '{name}'") from None
    try:
        body = Template(text).substitute(variables)
    except (KeyError, ValueError) as exc:
        known = ", ".join("${%s}" % k for k in sorted(variables))
        raise PolicyError(str(path), f"unknown or malformed placeholder {exc} (known: {known})") from None
    parse_rules(body, str(path))
    return body


@functools.cache
def _hcl_parser() -> HclParser:
    # pyhcl builds its LALR tables in the parser's constructor (~0.25 s) and `hcl.loads` makes a
    # new parser per call: one per process keeps `validate` of 100 stacks, and every engine run,
    # from paying that per policy.
    return HclParser()


def parse_rules(body: str, source: str) -> list[PathRule]:
    """Parse a policy body as Vault does (HCL), checking paths and capabilities."""
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
    if isinstance(paths, list):  # pyhcl yields a list when the same path appears twice
        raise PolicyError(source, "a path is declared more than once")
    rules = []
    for path, block in paths.items():
        if not path.strip():
            raise PolicyError(source, "empty path")
        if "*" in path[:-1]:
            # Vault would match such a `*` literally and silently grant nothing.
            raise PolicyError(source, f'path "{path}": `*` is a glob only at the end of a path (use `+` for one segment)')
        caps = block.get("capabilities") if isinstance(block, dict) else None
        if not caps or not isinstance(caps, list):
            raise PolicyError(source, f'path "{path}": `capabilities` must be a non-empty list')
        bad = sorted(set(caps) - CAPABILITIES)
        if bad:
            raise PolicyError(source, f'path "{path}": unknown capabilities {bad} (known: {sorted(CAPABILITIES)})')
        rules.append(PathRule(path, tuple(caps)))
    return rules


def render_cluster_policies(stack: "ClusterStack", policy_dir: Path = POLICY_DIR) -> dict[str, str]:
    """Policy name -> rendered body for a cluster stack, every one checked before anything is written."""
    variables = {"cluster": stack.name, "mount": stack.mount_path, "kv_mount": stack.fleet.kv_mount}
    return {stack.policy_name(t): render(t, variables, policy_dir) for t in stack.policies}


def render_provisioner(stack: "SharedStack", policy_dir: Path = POLICY_DIR) -> str:
    """The least-privilege policy for the token that provisions cluster stacks."""
    variables = {"mount_prefix": stack.fleet.mount_prefix, "kv_mount": stack.fleet.kv_mount}
    return render("fleet/vaultfleet-provisioner", variables, policy_dir)
