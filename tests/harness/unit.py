"""What the unit modules share: stack-file values and schema checks (test_schema_*.py), `vaultfleet
consumers` through the CLI (test_consumers_*.py), Pulumi mocks (test_components_*.py and the program's
tests), the lab-file checks (test_lab_*.py)."""

from __future__ import annotations

import base64
import os
import stat
import unittest
from pathlib import Path

import pulumi
import pytest
import yaml
from typer.testing import CliRunner

from tests.harness.project import edit_stack
from vaultfleet.cli import app
from vaultfleet.stackfile.schema import ConfigError, parse

# --- stack-file values: test_schema_*.py ----------------------------------------------------------

FILE = "stacks/Pulumi.lab-a.yaml"
SHARED_FILE = "stacks/Pulumi.vault.yaml"
FLEET = {"vaultAddress": "http://127.0.0.1:18200", "mountPrefix": "k8s", "kvMount": "kv"}


def role(**overrides):
    base = {
        "name": "app",
        "serviceAccounts": ["app"],
        "namespaces": ["app"],
        "policies": ["kv-read"],
        "audience": "vault",
    }
    base.update(overrides)
    return base


def cluster_values(**overrides):
    values = {**FLEET, "cluster": {"kubeContext": "lab-a"}, "roles": [role()]}
    values.update(overrides)
    return values


def problems(values, stack="lab-a"):
    with pytest.raises(ConfigError) as info:
        parse(values, stack, FILE)
    return info.value.problems


def cluster(**settings):
    return cluster_values(cluster={"kubeContext": "lab-a", **settings})


def accepted(values, stack="lab-a"):
    return parse(values, stack, FILE)


def refused(values, field, fragment, stack="lab-a"):
    found = problems(values, stack)
    assert any(f == FILE and fld == field and fragment in msg for f, fld, msg in found), found


# --- `vaultfleet consumers` through the CLI: test_consumers_*.py ----------------------------------

runner = CliRunner()
VAULT = "http://127.0.0.1:18200"  # Pulumi.yaml's fleet-wide vaultAddress


def consumers(*args) -> list[dict]:
    result = runner.invoke(app, ["consumers", *args])
    assert result.exit_code == 0, result.output
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def by_kind(documents: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in documents}


DB_URL = "postgresql://{{username}}:{{password}}@db.internal:6432/shop?sslmode=verify-full"


def add_database(project: Path, mount: str | None = None) -> None:
    """The shared stack's engine (two connections, two roles) and lab-a role `orders` reading app-readonly."""
    edit_stack(
        project,
        "vault",
        lambda c: c.update(
            {
                "vaultfleet:database": {
                    "connections": [
                        {
                            "name": "other",
                            "connectionUrl": "postgresql://{{username}}:{{password}}@elsewhere:5432/x",
                            "username": "vault",
                            "password": {"secure": "v1:x"},
                        },
                        {
                            "name": "shop-db",
                            "connectionUrl": DB_URL,
                            "username": "vault",
                            "password": {"secure": "v1:y"},
                        },
                    ],
                    "roles": [
                        {
                            "name": "reporting",
                            "connection": "other",
                            "creationStatements": [
                                "CREATE ROLE \"{{name}}\" PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
                            ],
                        },
                        {
                            "name": "app-readonly",
                            "connection": "shop-db",
                            "defaultTtl": "10m",
                            "maxTtl": "1h",
                            "creationStatements": [
                                "CREATE ROLE \"{{name}}\" PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
                            ],
                        },
                    ],
                }
            }
        ),
    )

    def grant(config):
        config["vaultfleet:policies"] = ["kv-read", "kv-write", "db-creds"]
        config["vaultfleet:databaseRoles"] = ["app-readonly"]
        config["vaultfleet:roles"].append(
            {
                "name": "orders",
                "serviceAccounts": ["orders"],
                "namespaces": ["shop"],
                "policies": ["kv-read", "db-creds"],
                "audience": "vault",
            }
        )

    edit_stack(project, "lab-a", grant)
    if mount:
        pulumi_yaml = yaml.safe_load((project / "Pulumi.yaml").read_text())
        pulumi_yaml["config"]["vaultfleet:databaseMount"]["value"] = mount
        (project / "Pulumi.yaml").write_text(yaml.safe_dump(pulumi_yaml))


# --- Pulumi mocks: test_components_*.py -----------------------------------------------------------

REVIEWER_JWT = "reviewer.jwt.value"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        state = dict(args.inputs)
        if args.typ == "kubernetes:core/v1:Secret":
            # What the token controller does in a real cluster.
            state["data"] = {"token": base64.b64encode(REVIEWER_JWT.encode()).decode()}
        if args.typ == "vault:index/authBackend:AuthBackend":
            state["accessor"] = f"auth_kubernetes_{args.name}"
        return [f"{args.name}_id", state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}

    def of_type(self, typ):
        return [r for r in self.resources if r.typ == typ]


class ComponentTest(unittest.TestCase):
    def setUp(self):
        self.mocks = Mocks()
        pulumi.runtime.set_mocks(self.mocks, preview=False)


# --- lab files, where a link may be planted: test_lab_*.py (the `victim` fixture is in tests/unit/conftest.py)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to another user needs root")


def unchanged(path: Path, owner: int = os.geteuid()) -> bool:
    """The `victim` file as the fixture made it: content, mode and owner."""
    st = path.lstat()
    return path.read_text() == "precious" and stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == owner
