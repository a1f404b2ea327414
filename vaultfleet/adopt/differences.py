"""One field of one object that the first run after the import would write differently from how
it is, and the stack file that comes with them (describe.py, describe_jwt.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class Difference:
    object: str
    field: str
    found: str
    written: str
    refused: bool = False
    """True: adopting would widen access or lose what the format cannot carry; never proceeds."""
    why: str = ""
    """A refusal's reason when `written` cannot say it (a field the format has no place for)."""

    def __str__(self) -> str:
        if self.why:
            return f"{self.object}: {self.field}: {self.found} (refused: {self.why})"
        verdict = "refused" if self.refused else "would be written"
        return f"{self.object}: {self.field}: {self.found} -> {self.written} ({verdict})"


@dataclass
class Description:
    document: dict[str, Any]
    """The stack file, as YAML would load it."""
    differences: list[Difference] = field(default_factory=list)
    ignore: dict[str, list[str]] = field(default_factory=dict)
    """`<type> <id>` -> inputs the import does not compare (the differences, written after it)."""

    @property
    def refusals(self) -> list[Difference]:
        return [d for d in self.differences if d.refused]

    def text(self, cluster: str, context: str, mount: str) -> str:
        header = (
            f"# Cluster {cluster}: adopted with `vaultfleet adopt {cluster} --context {context} --mount {mount}`.\n"
            "# Fleet-wide settings (Vault address, mount prefix, KV mount) come from Pulumi.yaml.\n"
        )
        return header + yaml.dump(self.document, Dumper=_Dumper, sort_keys=False, width=200)


class _Dumper(yaml.SafeDumper):
    """A multi-line string (the cluster's CA) as a literal block, the way a person writes it."""


_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)
