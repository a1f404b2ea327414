"""vaultfleet as a package and `vaultfleet init`: the fleet repository it writes (files, validation,
the program running in it under mocks), what it refuses, the one copy of each template (this
repository is a fleet built the same way), and the wheel: its files, and installed on its own it
runs `vaultfleet init`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.bad_inputs import certificate_pem
from tests.harness import REPO, built_wheel, install_wheel
from vaultfleet import __version__
from vaultfleet.cli import app
from vaultfleet.scaffold import FILES, PLACEHOLDER_ADDRESS, render

runner = CliRunner()

EXPECTED = {
    ".github/setup.sh",
    ".github/vault-login.sh",
    ".github/workflows/fleet.yml",
    ".gitignore",
    "Pulumi.yaml",
    "__main__.py",
    "requirements.txt",
    "stacks/Pulumi.vault.yaml",
    *(str(p.relative_to(REPO)) for p in (REPO / "policies").rglob("*.hcl")),
}


def files_in(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def fleet(tmp_path, monkeypatch) -> Path:
    """A fleet repository `vaultfleet init` wrote, on the lab's Vault address."""
    monkeypatch.delenv("VAULTFLEET_PROJECT", raising=False)
    dest = tmp_path / "fleet"
    result = runner.invoke(app, ["init", str(dest), "--vault-address", "http://127.0.0.1:18200"])
    assert result.exit_code == 0, result.output
    return dest


def test_init_writes_the_fleet_files_and_says_what_next(fleet, tmp_path):
    assert files_in(fleet) == EXPECTED
    assert (fleet / "__main__.py").read_text() == (REPO / "__main__.py").read_text()
    for name in ("policies/kv-read.hcl", "policies/fleet/vaultfleet-previewer.hcl"):
        assert (fleet / name).read_text() == (REPO / name).read_text()
    assert f"\nvaultfleet=={__version__}\n" in (fleet / "requirements.txt").read_text()
    project = yaml.safe_load((fleet / "Pulumi.yaml").read_text())
    assert project["config"]["vaultfleet:vaultAddress"]["value"] == "http://127.0.0.1:18200"
    assert yaml.safe_load((fleet / "stacks/Pulumi.vault.yaml").read_text()) == {"config": {"vaultfleet:kind": "shared"}}
    for script in (".github/setup.sh", ".github/vault-login.sh"):
        assert os.access(fleet / script, os.X_OK)
        subprocess.run(["bash", "-n", fleet / script], check=True)
    workflow = yaml.safe_load((fleet / ".github/workflows/fleet.yml").read_text())
    assert set(workflow["jobs"]) == {"validate", "preview", "shared", "apply"}

    # Without --vault-address: a placeholder, and the output says to edit it, then the two commands.
    result = runner.invoke(app, ["init", str(tmp_path / "other")])
    assert result.exit_code == 0, result.output
    assert PLACEHOLDER_ADDRESS in (tmp_path / "other/Pulumi.yaml").read_text()
    assert "edit Pulumi.yaml's vaultfleet:vaultAddress" in result.output
    assert f"cd {tmp_path / 'other'} && ./.github/setup.sh --engine" in result.output
    assert "vaultfleet onboard CLUSTER --context CONTEXT && .venv/bin/vaultfleet up vault CLUSTER" in result.output


def test_the_written_project_validates(fleet, monkeypatch):
    monkeypatch.chdir(fleet)
    result = runner.invoke(app, ["validate", "--strict"])
    assert result.exit_code == 0, result.output
    assert "1 stack(s) valid, 0 error(s), 0 warning(s)" in result.output


def test_the_program_runs_in_the_fleet_repository_on_its_own_policies(fleet, monkeypatch, tmp_path):
    """The fleet's __main__.py (a call into the installed package) under Pulumi's mocks: the cluster's
    access stack (a new fleet is in the per-cluster layout) and its cluster stack register what they
    do in this repository, rendering the fleet's own policies/ (a template only the fleet has,
    here), never the package's."""
    from tests.unit.test_program import run_program, types

    (fleet / "policies/team.hcl").write_text(
        'path "${kv_mount}/data/team/${cluster}/*" {\n  capabilities = ["read"]\n}\n'
    )
    cluster = yaml.safe_load((REPO / "stacks/Pulumi.lab-a.yaml").read_text())
    cluster.pop("encryptionsalt", None)
    cluster["config"]["vaultfleet:cluster"].update(apiHost="https://lab-a.example:6443", caCert=certificate_pem())
    cluster["config"]["vaultfleet:policies"] = ["kv-read", "kv-write", "team"]
    cluster["config"]["vaultfleet:roles"][0]["policies"] = ["kv-read", "team"]
    (fleet / "stacks/Pulumi.lab-a.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    monkeypatch.chdir(fleet)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))

    assert not run_program(fleet, "vault").of_type("vault:index/authBackend:AuthBackend")
    shared = run_program(fleet, "vault.lab-a")
    assert [r.inputs["path"] for r in shared.of_type("vault:index/authBackend:AuthBackend")] == ["k8s-lab-a"]
    bodies = {r.inputs["name"]: r.inputs["policy"] for r in shared.of_type("vault:index/policy:Policy")}
    assert 'path "kv/data/team/lab-a/*"' in bodies["k8s-lab-a-team"]
    roles = run_program(fleet, "lab-a").of_type("vault:kubernetes/authBackendRole:AuthBackendRole")
    app_role = next(r.inputs for r in roles if r.inputs["roleName"] == "app")
    assert "k8s-lab-a-team" in app_role["tokenPolicies"]
    assert "vault:index/policy:Policy" in types(shared)


def test_init_refuses_a_directory_that_is_not_empty_and_writes_nothing(tmp_path):
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "README.md").write_text("mine")
    result = runner.invoke(app, ["init", str(dest)])
    assert result.exit_code == 2
    assert f"{dest} is not empty; nothing written" in result.output
    assert files_in(dest) == {"README.md"}

    (tmp_path / "a-file").write_text("x")
    result = runner.invoke(app, ["init", str(tmp_path / "a-file")])
    assert result.exit_code == 2 and "is not a directory" in result.output


def test_init_refuses_a_project_that_would_not_validate_and_writes_nothing(tmp_path):
    dest = tmp_path / "fleet"
    result = runner.invoke(app, ["init", str(dest), "--vault-address", "http://vault.internal:8200"])
    assert result.exit_code == 2
    assert "would not validate, nothing written" in result.output
    assert "Pulumi.yaml" in result.output or "vaultAddress" in result.output
    assert not dest.exists()
    result = runner.invoke(app, ["init", str(dest), "--vault-address", "https://v\n  vaultfleet:kind: shared"])
    assert result.exit_code == 2 and not dest.exists()


# One copy of each template: this repository is a fleet made the same way.


def test_this_repository_runs_the_template_program_and_policies():
    assert (REPO / "__main__.py").read_text() == render()["__main__.py"]
    link = REPO / "vaultfleet/templates/fleet/policies"
    assert link.is_symlink() and link.resolve() == (REPO / "policies").resolve()


def test_the_template_pulumi_yaml_declares_what_this_repository_declares():
    """Runtime, options and every config key's declaration alike; only the Vault address and the
    layout differ: a new fleet starts per-cluster, this repository's lab fleet stays in the shared
    layout most lab modules exercise (tests/lab/test_layout.py runs the other)."""
    mine = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    template = yaml.safe_load(render("https://vault.example.com")["Pulumi.yaml"])
    assert (
        mine["config"]["vaultfleet:clusterAccess"]["value"],
        template["config"]["vaultfleet:clusterAccess"]["value"],
    ) == ("shared", "per-cluster")
    for doc in (mine, template):
        doc.pop("description")
        doc["config"]["vaultfleet:vaultAddress"].pop("value")
        doc["config"]["vaultfleet:clusterAccess"].pop("value")
        doc["config"]["vaultfleet:clusterAccess"].pop("description")
    assert template == mine


def test_the_docs_name_the_packaged_workflow_and_hold_its_login_script_as_packaged():
    docs = (REPO / "docs/github-actions.md").read_text()
    assert "vaultfleet/templates/fleet/github/workflows/fleet.yml" in docs
    assert "\njobs:" not in docs, "the workflow lives in the package only; the docs point at it"
    script = re.search(r"```sh\n(#!/usr/bin/env bash\n# Usage: vault-login\.sh.*?)```", docs, re.S)
    assert script and script.group(1) == render()[".github/vault-login.sh"]


# The wheel `make wheel` builds (make test passes it as $VAULTFLEET_WHEEL; alone, this builds one).


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return built_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_package_version_is_pyprojects():
    import tomllib

    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"] == __version__


def test_the_wheel_carries_the_program_components_and_templates_not_the_lab_toolchain(wheel):
    assert wheel.name == f"vaultfleet-{__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = "vaultfleet/templates/fleet/"
    assert "vaultfleet/program/main.py" in names
    assert {f"components/{p.name}" for p in (REPO / "components").glob("*.py")} <= names
    assert {f"{templates}{p.relative_to(REPO)}" for p in (REPO / "policies").rglob("*.hcl")} <= names
    assert {f"{templates}{source}" for source in FILES.values()} <= names
    assert "vaultfleet/lab/lab.py" in names  # `vaultfleet lab`, a dev tool, comes along (docs/fleet-repository.md)
    tops = {n.split("/")[0] for n in names}
    assert tops == {"vaultfleet", "components", f"vaultfleet-{__version__}.dist-info"}  # no tools/, tests/
    with zipfile.ZipFile(wheel) as z:
        assert z.read(f"{templates}policies/kv-read.hcl") == (REPO / "policies/kv-read.hcl").read_bytes()


def test_the_wheel_installed_alone_runs_init(wheel, tmp_path):
    """Installed (no dependencies: they are this venv's) into a directory of its own, first on the
    path, so what runs is the wheel's code and templates, not this checkout's."""
    env = {**os.environ, **install_wheel(wheel, tmp_path / "site")}
    env.pop("VAULTFLEET_PROJECT", None)

    def vaultfleet(*args: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess:
        code = (
            "import sys, vaultfleet; print(vaultfleet.__file__, file=sys.stderr); from vaultfleet.cli import app; app()"
        )
        argv = [sys.executable, "-c", code, *args]
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)

    result = vaultfleet("--help")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(str(tmp_path / "site"))
    assert "init" in result.stdout
    result = vaultfleet("init", "fleet")
    assert result.returncode == 0, result.stderr
    assert files_in(tmp_path / "fleet") == EXPECTED
    result = vaultfleet("validate", cwd=tmp_path / "fleet")
    assert result.returncode == 0, result.stderr
    assert "1 stack(s) valid" in result.stdout
