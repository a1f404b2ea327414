"""Pulumi Automation API plumbing shared by the CLI and the lab tests."""

from __future__ import annotations

from pathlib import Path

from pulumi import automation as auto

from vaultfleet.lab.tools import find_tool
from vaultfleet.project import project_dir

__all__ = ["project_dir", "pulumi_command", "select_stack"]


def pulumi_command() -> auto.PulumiCommand:
    """The pinned engine from the tool cache (or PATH), never a download."""
    binary = Path(find_tool("pulumi"))
    return auto.PulumiCommand(root=str(binary.resolve().parent.parent))


def select_stack(name: str, work_dir: Path, env: dict[str, str]) -> auto.Stack:
    """Create or select stack `name` of the project in `work_dir` (stack files in its stacks/)."""
    return auto.create_or_select_stack(
        stack_name=name,
        work_dir=str(work_dir),
        opts=auto.LocalWorkspaceOptions(env_vars=env, pulumi_command=pulumi_command()),
    )
