"""Who gains or loses which access in a change: the grants (access.py) of the project as it is at a
git revision (what is applied: the pipeline applies the default branch) against the working tree,
per cluster, mount, role and bound ServiceAccount, path by path.

A reviewer approves this, not resource diffs: a one-line template edit shows once per cluster and
role it reaches, and a binding widened to `*` shows as the access the new binding gains. What a
path's read hands out can change with no capability changing: a database role's statements, its
connection (what its users may do in the database), its TTLs; those are listed per credentials
path with the roles that may read it (`credentials`).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vaultfleet.access import UNMANAGED, Grant, grants
from vaultfleet.fleet.changes import changed_files, commit
from vaultfleet.render import acl
from vaultfleet.stackfile import ConfigError, Project, StackFileError, access_cluster, stack_file_name
from vaultfleet.stackfile.schema import ClusterStack, SharedStack


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


@dataclass(frozen=True)
class TrustChange:
    """A change in whom a mount believes at login (its API server, CA, issuer, audience, auth mode;
    the pipeline's issuer, audience and keys): who can log in changes, whatever the policies say."""

    stack: str
    field: str
    before: str
    after: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CredentialChange:
    """A change in what reading a database credentials path hands out: the role's statements, TTLs
    or connection (its URL and user; a password change is not access), or the role added or gone."""

    stack: str
    path: str
    """<databaseMount>/creds/<role>."""
    field: str
    before: str
    after: str
    readers: tuple[str, ...]
    """`cluster role` of every role whose policies grant read on the path, before or after."""

    def to_json(self) -> dict:
        return {**asdict(self), "readers": list(self.readers)}


@dataclass
class AccessDiff:
    ref: str
    changes: list[Change]
    templates: dict[str, list[str]]
    """Each policy template file that changed -> every `cluster role` it reaches now or reached."""
    trust: list[TrustChange] = field(default_factory=list)
    credentials: list[CredentialChange] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    """Stack files of either side that do not validate ("REF: file: why"): what they grant is not in
    the review, so it is incomplete and never identical."""

    @property
    def identical(self) -> bool:
        return not (self.changes or self.trust or self.templates or self.credentials or self.unread)

    def for_cluster(self, cluster: str) -> list[Change]:
        return [c for c in self.changes if c.who.cluster == cluster]

    def to_json(self) -> dict:
        return {
            "since": self.ref,
            "identical": self.identical,
            "changes": [c.to_json() for c in self.changes],
            "templates": self.templates,
            "trust": [t.to_json() for t in self.trust],
            "credentials": [c.to_json() for c in self.credentials],
            "unread": self.unread,
        }


def access_diff(project: Project, ref: str, stacks: list[str] | None = None) -> AccessDiff:
    """The access the working tree grants against the access `ref` granted, for `stacks` (default
    all; a shared stack stands for the pipeline's identities, and so, in the per-cluster layout,
    does an access stack vault.<cluster> for that cluster's share of them)."""
    revision = commit(project.root, ref)
    touched = changed_files(project, ref)
    changed_stacks = {
        Path(path).name[len("Pulumi.") : -len(".yaml")]
        for path in touched
        if path.startswith("stacks/Pulumi.") and path.endswith(".yaml")
    }
    shared_now = {s.name for s in project.shared_stacks()}
    if stacks is not None and any(access_cluster(name) for name in stacks):
        stacks = sorted({*stacks, *shared_now})
    # The pipeline's applier holds every cluster's applier policy. Unless the shared stack's file,
    # a fleet policy or Pulumi.yaml changed, or a file went, a cluster's rows differ between the
    # sides only if its own file did: the review reads the selected and the changed files, on both
    # sides (a review of one changed file does not read the whole fleet).
    whole_fleet = (
        stacks is None
        or any(path.startswith("policies/fleet/") or path == "Pulumi.yaml" for path in touched)
        or bool(changed_stacks - (set(project.stack_names()) - shared_now))
    )
    pool = None if whole_fleet else sorted({*(stacks or []), *changed_stacks})
    # Of the old side, only those files (the rest are as they are now); added ones are not there.
    files = set(project.stack_names()) | changed_stacks
    added = {n for n in changed_stacks if touched.get(stack_file_name(n)) == "A"}
    exported = None if pool is None else sorted(({*pool, *shared_now} & files) - added)
    with tempfile.TemporaryDirectory(prefix="vaultfleet-access-") as tmp:
        was = _export(project, revision, Path(tmp), exported)
        changed = _changed_templates(was, project)
        before = _grants(was, stacks, pool)
        reached = _reached(changed, [*_clusters(was, stacks), *_clusters(project, stacks)])
        trust = trust_changes(_anchors(was, stacks), _anchors(project, stacks))
        after = _grants(project, stacks, pool)
        issued_before, issued_after = _credentials(was, stacks), _credentials(project, stacks)
        # Who reads a path is worked out only when something it hands out changed (the shared
        # stack's file did: the whole fleet is read), on each side with that side's policies (a deny
        # dropped by the same change counts on its own side).
        sides = [_grants(was, None), _grants(project, None)] if issued_before != issued_after else []
        credentials = credential_changes(issued_before, issued_after, sides)
        unread = [f"{ref}: {problem}" for problem in _unread(was, pool)] + _unread(project, pool)
    # Both sides are worked out with this checkout's code: a change to the program itself (not to
    # the fleet's data) is not in the review, so it is never "identical".
    unread += [
        f"{path}: the program changed; the review works out both sides with this checkout's code"
        for path in sorted(touched)
        if project.touches_every_stack(path) and path != "Pulumi.yaml" and not path.startswith("policies/")
    ]
    return AccessDiff(ref, diff(before, after), reached, trust, credentials, unread)


def _files(project: Project, names: list[str] | None):
    """The stack files of `names` that exist (every one when None), without touching the others."""
    wanted = None if names is None else set(names)
    return [project.stack(n) for n in project.stack_names() if wanted is None or n in wanted]


def _unread(project: Project, names: list[str] | None = None) -> list[str]:
    """Each stack file among `names` (default: all: the review's selection and the files the change
    touched) and the shared stack's that does not validate, with why (the first problem): the review
    skips it."""
    found = []
    shared = [s.name for s in project.shared_stacks()]
    for stack_file in _files(project, None if names is None else [*names, *shared]):
        try:
            _ = stack_file.settings
        except StackFileError as exc:
            found.append(str(exc))
        except ConfigError as exc:
            file, key, message = exc.problems[0]
            found.append(f"{Path(file).name}: {key}: {message}")
    return found


def _credentials(project: Project, names: list[str] | None) -> dict[tuple[str, str], dict[str, str]]:
    """(shared stack, creds path) -> what reading it hands out, field by field, per shared stack file
    that validates and declares a database."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for stack_file in project.shared_stacks():
        settings = stack_file.valid_settings()
        if not isinstance(settings, SharedStack) or settings.database is None:
            continue
        if names is not None and settings.name not in names:
            continue
        connections = {c.name: c for c in settings.database.connections}
        for role in settings.database.roles:
            connection = connections.get(role.connection)
            found[(settings.name, f"{settings.fleet.database_mount}/creds/{role.name}")] = {
                "connection": role.connection,
                "connectionUrl": connection.connection_url if connection else "(none)",
                "username": connection.username if connection else "(none)",
                # As lists, each statement whole (JSON): joined text would hide a statement split
                # in two, and a placeholder for "none" could be written as a statement.
                "creationStatements": json.dumps(role.creation_statements),
                "revocationStatements": json.dumps(role.revocation_statements),
                "defaultTtl": f"{role.default_ttl}s",
                "maxTtl": f"{role.max_ttl}s",
            }
    return found


def credential_changes(
    before: dict[tuple[str, str], dict[str, str]],
    after: dict[tuple[str, str], dict[str, str]],
    sides: list[list[Grant]],
) -> list[CredentialChange]:
    """Field by field, for each credentials path on either side; a path on one side only is one line
    (`role` added or removed). `sides`: the grants before and after, each side's readers its own."""
    found = []
    for stack, path in sorted(before.keys() | after.keys()):
        old, new = before.get((stack, path)), after.get((stack, path))
        readers = tuple(sorted(set().union(*(_readers(path, rows) for rows in sides))))
        if old is None or new is None:
            state = ("(none)", "added") if old is None else ("declared", "(removed)")
            found.append(CredentialChange(stack, path, "role", *state, readers))
            continue
        for name in old:
            if old[name] != new[name]:
                found.append(CredentialChange(stack, path, name, old[name], new[name], readers))
    return found


def _readers(path: str, rows: list[Grant]) -> set[str]:
    """`cluster role` of each role whose policies, merged as Vault merges them, grant read on `path`;
    a path segment only the login fills in (a `*` binding's namespace) is taken as any (`+`), and a
    role with a policy whose body is not vaultfleet's is named as one to check in Vault."""
    held: dict[tuple[str, str], dict[str, dict[str, tuple[str, ...]]]] = defaultdict(lambda: defaultdict(dict))
    unmanaged = set()
    for g in rows:
        if g.path == UNMANAGED.path:
            unmanaged.add(f"{g.cluster} {g.role} (existingPolicies: check in Vault)")
        else:
            held[(g.cluster, g.role)][g.policy][_LOGIN_FILLED.sub("+", g.path)] = g.capabilities
    readers = set()
    for (cluster, role), policies in held.items():
        bodies = {
            name: "\n".join(
                f'path "{rule}" {{ capabilities = {json.dumps(list(caps))} }}' for rule, caps in rules.items()
            )
            for name, rules in policies.items()
        }
        if "read" in acl.capabilities(bodies, path).capabilities:
            readers.add(f"{cluster} {role}")
    return readers | unmanaged


# A path segment holding a <placeholder> (access.for_service_account): what only the login decides.
_LOGIN_FILLED = re.compile(r"[^/]*<[a-z_]+>[^/]*")


def _anchors(project: Project, names: list[str] | None) -> dict[tuple[str, str], str]:
    """(stack, field) -> what a login is checked against, per stack file that validates."""
    found: dict[tuple[str, str], str] = {}
    for stack_file in _files(project, names):
        settings = stack_file.valid_settings()
        if isinstance(settings, ClusterStack):
            c = settings.cluster
            found |= {
                (settings.name, "authMode"): c.auth_mode,
                # Where apiHost and caCert come from when the file does not set them.
                (settings.name, "kubeContext"): c.kube_context,
                (settings.name, "apiHost"): c.api_host or "(from the kube context)",
                (settings.name, "caCert"): _fingerprint(c.ca_cert) if c.ca_cert else "(from the kube context)",
                (settings.name, "issuer"): c.issuer or "(not checked)",
            }
            for role in settings.roles:
                found[(settings.name, f"roles[{role.name}].audience")] = role.audience or "(any)"
        elif settings is not None and getattr(settings, "pipeline", None) is not None:
            pipeline = settings.pipeline
            found |= {
                (settings.name, "pipeline.issuer"): pipeline.issuer,
                (settings.name, "pipeline.audience"): pipeline.audience,
                (settings.name, "pipeline.publicKeys"): ", ".join(_fingerprint(k) for k in pipeline.public_keys)
                or "(from the issuer's JWKS)",
            }
    return found


def _fingerprint(pem: str) -> str:
    return "sha256:" + hashlib.sha256(pem.strip().encode()).hexdigest()[:16]


def trust_changes(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> list[TrustChange]:
    """What changed in whom a login is checked against, for stacks on both sides (a new or removed
    stack shows in its grants)."""
    stacks = {stack for stack, _ in before} & {stack for stack, _ in after}
    return [
        TrustChange(stack, name, before.get((stack, name), "(none)"), after.get((stack, name), "(none)"))
        for stack, name in sorted(before.keys() | after.keys())
        if stack in stacks and before.get((stack, name)) != after.get((stack, name))
    ]


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


def _grants(project: Project, names: list[str] | None, pool: list[str] | None = None) -> list[Grant]:
    """The rows of the named stacks; a shared stack's (the pipeline's identities) over every cluster
    of the fleet, or over the clusters `pool` names."""
    stacks = _files(project, names)
    loaded = [s for s in (f.valid_settings() for f in stacks) if s is not None]
    if not any(isinstance(s, SharedStack) for s in loaded):
        return grants(loaded, project.policy_dir)
    pool = _files(project, pool)
    fleet = [s for s in (f.valid_settings() for f in pool if not f.is_shared) if isinstance(s, ClusterStack)]
    return grants(loaded, project.policy_dir, fleet)


def _export(project: Project, revision: str, into: Path, stacks: list[str] | None = None) -> Project:
    """The project as it is at `revision`: Pulumi.yaml, policies/ and stacks/ (only the files of
    `stacks` when named) out of git, nothing else."""
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=project.root, capture_output=True, text=True, check=True
    ).stdout.strip()
    prefix = project.root.relative_to(Path(top).resolve()).as_posix()
    tree = f"{revision}:{prefix}" if prefix != "." else revision
    archive = into / "tree.tar"
    subprocess.run(
        [
            "git",
            "archive",
            "--format=tar",
            "-o",
            str(archive),
            tree,
            "--",
            "Pulumi.yaml",
            "policies",
            *(["stacks"] if stacks is None else [stack_file_name(n) for n in stacks]),
        ],
        cwd=project.root,
        check=True,
        capture_output=True,
    )
    root = into / "project"
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return Project(root)


def _clusters(project: Project, names: list[str] | None) -> list[ClusterStack]:
    found = [s.valid_settings() for s in _files(project, names)]
    return [s for s in found if isinstance(s, ClusterStack)]


def _changed_templates(before: Project, after: Project) -> set[str]:
    """Changed policy files, relative to policies/: the templates (`kv-read.hcl`) and the fleet's own
    policies (`fleet/vaultfleet-previewer.hcl`, held by tokens rather than by roles)."""

    def bodies(project: Project) -> dict[str, str]:
        files = [*project.policy_dir.glob("*.hcl"), *project.policy_dir.glob("fleet/*.hcl")]
        return {p.relative_to(project.policy_dir).as_posix(): p.read_text() for p in files}

    old, new = bodies(before), bodies(after)
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


def _reached(templates: set[str], clusters: list[ClusterStack]) -> dict[str, list[str]]:
    """Each changed template -> every `cluster role` that renders it, before or after the change."""
    reached: dict[str, set[str]] = {name: set() for name in templates}
    for name in templates:
        if name.startswith("fleet/"):  # a fleet policy: tokens hold it by name
            reached[name].add(f"every token holding {name.removeprefix('fleet/').removesuffix('.hcl')}")
    for stack in clusters:
        for role in stack.roles:
            for template in {f"{p}.hcl" for p in role.policies} & templates:
                reached[template].add(f"{stack.name} {role.name}")
    return {f"policies/{name}": sorted(reached[name]) for name in sorted(templates)}
