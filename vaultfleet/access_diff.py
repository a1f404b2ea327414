"""Who gains or loses which access in a change: the grants (access.py) of the project as it is at a
git revision (what is applied: the pipeline applies the default branch) against the working tree,
per cluster, mount, role and bound ServiceAccount, path by path.

A reviewer approves this, not resource diffs: a one-line template edit shows once per cluster and
role it reaches, and a binding widened to `*` shows as the access the new binding gains.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from vaultfleet.access import UNMANAGED, Grant, grants
from vaultfleet.fleet.changes import commit
from vaultfleet.stackfile import Project
from vaultfleet.stackfile.schema import ClusterStack


@dataclass(frozen=True)
class Who:
    """One identity as Vault sees its login: a ServiceAccount of a namespace logged in as a role at
    a cluster's mount (or a CI job's claims at the pipeline's mount)."""

    cluster: str
    mount: str
    role: str
    namespace: str
    service_account: str
    login: str

    def __str__(self) -> str:
        return f"{self.cluster} {self.namespace}/{self.service_account} as role {self.role} (auth/{self.mount})"


@dataclass(frozen=True)
class Change:
    who: Who
    path: str
    gained: tuple[str, ...]
    lost: tuple[str, ...]
    policies: tuple[str, ...]
    """The policies that grant (or granted) the path: the template a change came from."""

    def to_json(self) -> dict:
        return {
            **asdict(self.who),
            "path": self.path,
            "gained": list(self.gained),
            "lost": list(self.lost),
            "policies": list(self.policies),
        }


@dataclass
class AccessDiff:
    ref: str
    changes: list[Change]
    templates: dict[str, list[str]]
    """Each policy template file that changed -> every `cluster role` it reaches now or reached."""

    @property
    def identical(self) -> bool:
        return not self.changes

    def for_cluster(self, cluster: str) -> list[Change]:
        return [c for c in self.changes if c.who.cluster == cluster]

    def to_json(self) -> dict:
        return {
            "since": self.ref,
            "identical": self.identical,
            "changes": [c.to_json() for c in self.changes],
            "templates": self.templates,
        }


def access_diff(project: Project, ref: str, stacks: list[str] | None = None) -> AccessDiff:
    """The access the working tree grants against the access `ref` granted, for `stacks` (default
    all; a shared stack stands for the pipeline's identities)."""
    revision = commit(project.root, ref)
    with tempfile.TemporaryDirectory(prefix="vaultfleet-access-") as tmp:
        was = _export(project, revision, Path(tmp))
        before = _grants(was, stacks)
        changed = _changed_templates(was, project)
        reached = _reached(changed, [*_clusters(was, stacks), *_clusters(project, stacks)])
    return AccessDiff(ref, diff(before, _grants(project, stacks)), reached)


def diff(before: list[Grant], after: list[Grant]) -> list[Change]:
    """Capabilities gained and lost per identity and path; a policy attached by name whose body is
    not vaultfleet's shows as attached or detached."""
    old, new = _by_who(before), _by_who(after)
    changes = []
    for who in sorted(old.keys() | new.keys(), key=lambda w: (w.cluster, w.role, w.namespace, w.service_account)):
        paths_old, paths_new = _held(old, who), _held(new, who)
        for path in sorted(paths_old.keys() | paths_new.keys()):
            caps_old, policies_old = paths_old.get(path, (set(), set()))
            caps_new, policies_new = paths_new.get(path, (set(), set()))
            if caps_old != caps_new:
                changes.append(
                    Change(
                        who,
                        path,
                        tuple(sorted(caps_new - caps_old)),
                        tuple(sorted(caps_old - caps_new)),
                        tuple(sorted(policies_old | policies_new)),
                    )
                )
    return changes


def _held(side: dict[Who, dict[str, tuple[set[str], set[str]]]], who: Who) -> dict[str, tuple[set[str], set[str]]]:
    """What `who` holds on one side, through every binding of its role that takes it in: the
    ServiceAccount app/app keeps what a binding widened to `*/app` grants (no loss shown), and
    `*/app` itself holds only what a `*` binding grants."""
    held: dict[str, tuple[set[str], set[str]]] = {}
    for other, paths in side.items():
        if (other.cluster, other.mount, other.role, other.login) != (who.cluster, who.mount, who.role, who.login):
            continue
        if other.namespace not in ("*", who.namespace) or other.service_account not in ("*", who.service_account):
            continue
        for path, (caps, policies) in paths.items():
            mine = held.setdefault(path, (set(), set()))
            mine[0].update(caps)
            mine[1].update(policies)
    return held


def _by_who(rows: list[Grant]) -> dict[Who, dict[str, tuple[set[str], set[str]]]]:
    found: dict[Who, dict[str, tuple[set[str], set[str]]]] = defaultdict(dict)
    for g in rows:
        who = Who(g.cluster, g.mount, g.role, g.namespace, g.service_account, g.login)
        if g.path == UNMANAGED.path:
            # Its body is in Vault, not here: what changes is whether it is attached.
            path, caps = f"(policy {g.policy}: body not managed by vaultfleet)", ("attached",)
        else:
            path, caps = g.path, g.capabilities
        held, policies = found[who].setdefault(path, (set(), set()))
        held.update(caps)
        policies.add(g.policy)
    return found


def _grants(project: Project, names: list[str] | None) -> list[Grant]:
    stacks = [s for s in project.stacks() if names is None or s.name in names]
    loaded = [s.valid_settings() for s in stacks]
    fleet = [s for s in (f.valid_settings() for f in project.stacks() if not f.is_shared) if s is not None]
    return grants([s for s in loaded if s is not None], project.policy_dir, fleet)


def _export(project: Project, revision: str, into: Path) -> Project:
    """The project as it is at `revision`: Pulumi.yaml, stacks/ and policies/ out of git, nothing else."""
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=project.root, capture_output=True, text=True, check=True
    ).stdout.strip()
    prefix = project.root.relative_to(Path(top).resolve()).as_posix()
    tree = f"{revision}:{prefix}" if prefix != "." else revision
    archive = into / "tree.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), tree, "--", "Pulumi.yaml", "stacks", "policies"],
        cwd=project.root,
        check=True,
        capture_output=True,
    )
    root = into / "project"
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return Project(root)


def _clusters(project: Project, names: list[str] | None) -> list[ClusterStack]:
    found = [s.valid_settings() for s in project.stacks() if names is None or s.name in names]
    return [s for s in found if isinstance(s, ClusterStack)]


def _changed_templates(before: Project, after: Project) -> set[str]:
    def bodies(project: Project) -> dict[str, str]:
        return {p.stem: p.read_text() for p in project.policy_dir.glob("*.hcl")}

    old, new = bodies(before), bodies(after)
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


def _reached(templates: set[str], clusters: list[ClusterStack]) -> dict[str, list[str]]:
    """Each changed template -> every `cluster role` that renders it, before or after the change."""
    reached: dict[str, set[str]] = {name: set() for name in templates}
    for stack in clusters:
        for role in stack.roles:
            for template in set(role.policies) & templates:
                reached[template].add(f"{stack.name} {role.name}")
    return {f"policies/{name}.hcl": sorted(reached[name]) for name in sorted(templates)}
