"""Project copies and stack-file edits, for the unit and the lab tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from vaultfleet.lab.record import VAULT_PORT

REPO = Path(__file__).resolve().parents[2]

# What `validate`, `access` and `consumers` read; the engine runs the program files as well.
STACK_FILES = ("Pulumi.yaml", "stacks", "policies")
PROGRAM_FILES = ("__main__.py", "components", "vaultfleet")


def copy_project_files(parent: Path, *, program: bool = False) -> Path:
    """`parent/project`: a copy of the repository's stack files (and, with `program`, the program's),
    so a test can edit them without touching the repository."""
    dest = parent / "project"
    dest.mkdir()
    for name in (*STACK_FILES, *(PROGRAM_FILES if program else ())):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, dest / name)
    return dest


def copy_project(parent: Path, vault_address: str | None = None) -> Path:
    """A copy of the Pulumi project the engine can run, so tests can edit stack files without
    touching the repo.

    Its fleet Vault address is the lab's, so a lab on shifted ports ($VAULTFLEET_LAB_PORT_OFFSET,
    e.g. one per developer on a shared machine) is used rather than the default lab's Vault.
    """
    dest = copy_project_files(parent, program=True)
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    project["config"]["vaultfleet:vaultAddress"]["value"] = vault_address or f"http://127.0.0.1:{VAULT_PORT}"
    (dest / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


def set_cluster_access(project: Path, layout: str) -> None:
    """Pulumi.yaml's vaultfleet:clusterAccess (docs/fleet-layout.md): `shared` or `per-cluster`."""
    path = project / "Pulumi.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["vaultfleet:clusterAccess"] = {"type": "string", "value": layout}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def edit_stack(project: Path, stack: str, change: Callable[[dict], object]) -> None:
    """Apply `change` to the `config:` mapping of stacks/Pulumi.<stack>.yaml, in place."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def use_state_key(project: Path, stack: str) -> None:
    """Stack `stack` keeps its state's secrets under its Vault Transit key (the shared stack makes it)
    instead of the lab passphrase: `secretsprovider` in place of the passphrase's `encryptionsalt`."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.pop("encryptionsalt", None)
    doc = {"secretsprovider": f"hashivault://vaultfleet-{stack}", **doc}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def add_team_role(config: dict, **extra) -> None:
    """The kv-namespace policy and a role `team` for every namespace, each reading only its own subtree."""
    config["vaultfleet:policies"] = ["kv-read", "kv-write", "kv-namespace"]
    config["vaultfleet:roles"].append(
        {
            "name": "team",
            "serviceAccounts": ["app"],
            "namespaces": ["*"],
            "policies": ["kv-namespace"],
            "audience": "vault",
            **extra,
        }
    )


def git(project: Path, *args: str) -> None:
    """`git ARGS` in a project copy, as the tests' author (no git identity needed on the machine)."""
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=project,
        check=True,
        capture_output=True,
    )


def commit_all(project: Path, message: str) -> None:
    """Everything in the project copy committed, the repository made first if it has none: what
    `--changed-since HEAD` then compares with."""
    if not (project / ".git").exists():
        git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "--allow-empty", "-m", message)


def tracked_changes() -> str:
    """What `git` sees changed in the repository's tracked files: names and content."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout

    return git("status", "--porcelain=v1", "--untracked-files=no") + git("diff", "HEAD", "--binary")


def built_wheel(out_dir: Path) -> Path:
    """The vaultfleet wheel: `make test` builds it once (`make wheel`) and names it in
    $VAULTFLEET_WHEEL; a run without it builds one into `out_dir` (`pip wheel`, a few seconds)."""
    import os
    import sys

    if os.environ.get("VAULTFLEET_WHEEL"):
        return Path(os.environ["VAULTFLEET_WHEEL"])
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out_dir), str(REPO)]
    subprocess.run(pip, check=True, capture_output=True)
    (found,) = Path(out_dir).glob("vaultfleet-*.whl")
    return found


def install_wheel(wheel: Path, target: Path) -> dict[str, str]:
    """The wheel installed into `target` alone (its dependencies are this venv's), and the variables
    that put it first on a Python's path: vaultfleet and the program then run from the wheel, not
    from this checkout (the venv's editable install comes after `PYTHONPATH`)."""
    import sys

    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    return {"PYTHONPATH": str(target)}


# The release the upgrade test starts from (tests/lab/test_upgrade.py): tag v0.1.0. Its commit, not
# the tag, so a clone without tags has it too. Move it to the newest tag when tagging a release.
PREVIOUS_RELEASE = ("0.1.0", "aeb4a2a476042f0db0a2e87ac0e7cabbb8f5f524")


def previous_release_wheel(out_dir: Path) -> Path:
    """The wheel of PREVIOUS_RELEASE, built from its commit's files (`git archive`, then `pip wheel`
    as `make wheel` builds it): what a fleet pinned before upgrading."""
    import sys

    version, commit = PREVIOUS_RELEASE
    source = out_dir / f"vaultfleet-{version}-source"
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True, capture_output=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out_dir), str(source)]
    subprocess.run(pip, check=True, capture_output=True)
    return out_dir / f"vaultfleet-{version}-py3-none-any.whl"


def wheel_cli(env: dict[str, str], site: Path) -> Callable[..., str]:
    """`vaultfleet ARGS` run from the wheel installed in `site` (`install_wheel`'s env): a function
    of (*args, cwd) that returns stdout and fails the test, with the output, on a non-zero exit."""
    import sys

    # The path of the module that ran, on stderr: proof the wheel's vaultfleet ran, not the checkout's.
    code = "import sys, vaultfleet; print(vaultfleet.__file__, file=sys.stderr); from vaultfleet.cli import app; app()"

    def vaultfleet(*args: str, cwd: Path) -> str:
        out = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        assert out.stderr.startswith(str(site)), out.stderr
        assert out.returncode == 0, f"vaultfleet {' '.join(args)}: {out.stdout}\n{out.stderr}"
        return out.stdout

    return vaultfleet
