"""Access expectations: `access/*.yaml`, what reviewers expect a cluster's role can and cannot do.

    expectations:
      - cluster: lab-a
        role: app
        path: kv/data/clusters/lab-a/config
        can: [read]
      - {cluster: lab-a, role: app, path: kv/data/clusters/lab-b/config, cannot: [read]}

They live apart from the stack files so that a repository can give `access/` its own owners
(CODEOWNERS): the people who approve who may read what are not necessarily those who edit a
cluster. `validate` checks them offline (vaultfleet/expectations.py), `verify` live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, Field, ValidationError, model_validator

from vaultfleet.stackfile import Project
from vaultfleet.stackfile.fields import Label, Model

ACCESS_DIR = "access"
Capability = Literal["create", "read", "update", "patch", "delete", "list", "sudo", "subscribe", "recover"]


def _concrete_path(value: str) -> str:
    if not value or value.startswith("/") or any(ch in value for ch in "*+{}"):
        raise ValueError("must be one request path as a client sends it (no leading '/', no `*`, `+` or templates)")
    return value


class Expectation(Model):
    cluster: Label
    role: Label
    path: Annotated[str, AfterValidator(_concrete_path)]
    """Checked for the role's first bound namespace and ServiceAccount, as `verify` logs in."""
    can: list[Capability] = Field(default_factory=list)
    cannot: list[Capability] = Field(default_factory=list)

    @model_validator(mode="after")
    def _says_something(self) -> Expectation:
        if not self.can and not self.cannot:
            raise ValueError("name the capabilities the role `can` or `cannot` have on the path")
        both = sorted(set(self.can) & set(self.cannot))
        if both:
            raise ValueError(f"{both} both in `can` and `cannot`")
        return self


class ExpectationFile(Model):
    expectations: list[Expectation]


@dataclass(frozen=True)
class Located:
    """An expectation and where it is written: `file`, `field` (expectations[2])."""

    file: str
    field: str
    expectation: Expectation


def load(project: Project) -> tuple[list[Located], list[tuple[str, str, str]]]:
    """Every expectation of access/*.yaml, and (file, field, message) for each one that is not valid."""
    found: list[Located] = []
    problems: list[tuple[str, str, str]] = []
    for path in sorted((project.root / ACCESS_DIR).glob("*.yaml")):
        shown = f"{ACCESS_DIR}/{path.name}"
        try:
            document = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            problems.append((shown, "-", f"not YAML: {exc}"))
            continue
        try:
            parsed = ExpectationFile.model_validate(document)
        except ValidationError as exc:
            problems += [(shown, _field(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
            continue
        found += [Located(shown, f"expectations[{i}]", e) for i, e in enumerate(parsed.expectations)]
    return found, problems


def _field(loc: tuple) -> str:
    """('expectations', 2, 'can', 0) -> 'expectations[2].can[0]'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "-"
