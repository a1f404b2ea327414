"""What the lab modules (and the benchmarks) do on the lab: engine runs, Vault clients and tokens,
logins, and `Fleet`, a project copy on the lab with its stacks."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import hvac
import psycopg
from kubernetes import client
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.harness.project import edit_stack
from tests.lab import database as lab_db
from tests.lab import k8s
from vaultfleet.cli import app
from vaultfleet.fleet.engine import pulumi_command, select_stack
from vaultfleet.fleet.runner import run

# Six clusters: the fleet tests bring six cluster stacks up in parallel and check every pair.
LAB_CLUSTERS = 6


class LoginLoop:
    """Workloads logging in once a second each while a change runs, counting the logins that fail.
    `logins` maps a name to a function that logs in once (raising when the login fails)."""

    def __init__(self, logins: dict[str, Callable[[], object]]):
        self.logins = logins
        self.done = dict.fromkeys(logins, 0)
        self.failed: dict[str, list[str]] = {name: [] for name in logins}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, log_in in self.logins.items():
                try:
                    log_in()
                except Exception as exc:  # any failed login counts, whatever its cause
                    self.failed[name].append(repr(exc))
                self.done[name] += 1
            self._stop.wait(1)

    def summary(self) -> str:
        return ", ".join(f"{name}: {self.done[name]} logins, {len(self.failed[name])} failed" for name in self.logins)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def use_lab_for_cli(monkeypatch, project: Path, lab_env: dict[str, str]) -> None:
    """Point in-process CLI calls (CliRunner) at the lab and at a project copy."""
    for key, value in lab_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VAULTFLEET_PROJECT", str(project))


def up_stacks(
    project: Path, env: dict[str, str], names: Iterable[str], parallel: int = 4, allow_dangerous: Iterable[str] = ()
) -> None:
    """Setup: bring `names` up as `vaultfleet up` does (the shared stack first), asserting each did.
    Cheaper than the Automation API's `Stack.up()`, whose `stack select`, outputs and history
    runs around the engine cost about 1.5 s per stack (vaultfleet/fleet/engine.py).
    `allow_dangerous`: as `vaultfleet up --allow-dangerous` (an offboarding's shared stack)."""
    from vaultfleet.stackfile import Project

    results = run(Project(project), list(names), "up", env=env, parallel=parallel, allow_dangerous=set(allow_dangerous))
    failed = {r.stack: r.error for r in results if not r.ok}
    assert not failed, f"setup could not bring up {failed}"


def destroy_stacks(project: Path, env: dict[str, str], names: Iterable[str], parallel: int = 6) -> None:
    """Teardown: destroy those of `names` that exist in the lab's backend, as `vaultfleet destroy`
    does (cluster stacks in parallel, then the shared stack; pending operations of a killed run
    healed first), and remove them, so the next module starts from an empty backend and Vault."""
    from pulumi import automation as auto

    from vaultfleet.stackfile import Project

    workspace = auto.LocalWorkspace(work_dir=str(project), env_vars=env, pulumi_command=pulumi_command())
    existing = {s.name: s.resource_count for s in workspace.list_stacks()}
    names = [n for n in names if n in existing]
    # One a test destroyed already (0 resources) is only removed: no engine run.
    busy = [n for n in names if existing[n] != 0]
    failed = {r.stack: r.error for r in run(Project(project), busy, "destroy", env=env, parallel=parallel) if not r.ok}
    for name in names:
        if name not in failed:
            workspace.remove_stack(name)
    assert not failed, f"teardown could not destroy {failed}"


def plain_stack_export(project: Path, name: str, env: dict[str, str]) -> str:
    """What `pulumi stack export` prints (the Automation API's export_stack adds --show-secrets)."""
    out = pulumi_command().run(["stack", "export", "--stack", name], str(project), env)
    return out.stdout


def root_client(lab) -> hvac.Client:
    """A client of the lab's Vault with the root token."""
    return hvac.Client(url=lab.vault_addr, token=lab.vault_token())


def enable_transit(root: hvac.Client) -> None:
    """The fleet admin's one-time step for Transit state keys: the mount at transit/ (the one Pulumi's
    hashivault:// provider uses). Left in place: later modules on the same lab find it."""
    if "transit/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("transit", path="transit")


@contextmanager
def vault_token(root: hvac.Client, policies: list[str], ttl: str, **options) -> Iterator[str]:
    """A token with `policies` (created by `root`), revoked when the block ends."""
    token = root.auth.token.create(policies=policies, ttl=ttl, **options)["auth"]["client_token"]
    try:
        yield token
    finally:
        root.auth.token.revoke(token)


def login(
    lab,
    cluster: str | None = None,
    role: str = "app",
    namespace: str = "app",
    account: str = "app",
    audience: str | None = "vault",
    *,
    jwt: str | None = None,
    method: str = "kubernetes",
    mount: str | None = None,
    vault_addr: str | None = None,
) -> hvac.Client:
    """A client logged in as `role` with `method` (`kubernetes` or `jwt`) at `mount` (default: the
    cluster's, k8s-<cluster>), at the lab's Vault or at `vault_addr` (another Vault on the lab's
    clusters). The JWT it presents: `jwt` if given (a CI token, another cluster's, a forged one), else a
    TokenRequest token for `audience` of ServiceAccount namespace/account of `cluster` (created if
    missing)."""
    if jwt is None:
        api = k8s.api_client(str(lab.kubeconfig), cluster)
        k8s.ensure_service_account(api, namespace, account)
        jwt = k8s.request_token(api, namespace, account, audience=audience)
    vault = hvac.Client(url=vault_addr or lab.vault_addr)
    mount = mount or f"k8s-{cluster}"
    if method == "jwt":
        vault.auth.jwt.jwt_login(role=role, jwt=jwt, path=mount)
    elif method == "kubernetes":
        vault.auth.kubernetes.login(role, jwt, mount_point=mount)
    else:
        raise ValueError(f"no login method {method!r}")
    return vault


class Fleet:
    """A project copy on the lab and what a lab module does with it: the Automation API stacks it
    selected (`stacks`), root and per-ServiceAccount Vault clients, the kube API of its `cluster`, the
    lab's PostgreSQL, `vaultfleet consumers` on it.

    `stacks` are selected at once; a module that edits the stack files first (the database modules:
    `declare_database`) selects them afterwards. `admin_password` is the database engine's connection
    password, for `declare_database`. `held` is for what a module's fixtures issue once and share
    between its tests (credentials, leases)."""

    def __init__(
        self,
        lab,
        env: dict[str, str],
        project: Path,
        stacks: Iterable[str] = (),
        *,
        cluster: str = "lab-a",
        admin_password: SecretStr | None = None,
    ):
        self.lab, self.env, self.project, self.cluster = lab, env, project, cluster
        self.admin_password = admin_password
        self.pg = lab.postgres
        self.vault = root_client(lab)
        self.kube = self.kube_of(cluster)
        self.stacks: dict = {}
        self.outputs: list[str] = []  # what `up` printed
        self.held: dict[str, object] = {}
        self.select(*stacks)

    def select(self, *names: str) -> None:
        self.stacks.update({name: select_stack(name, self.project, self.env) for name in names})

    def kube_of(self, cluster: str) -> client.ApiClient:
        return k8s.api_client(str(self.lab.kubeconfig), cluster)

    def stack_file(self, name: str) -> Path:
        return self.project / "stacks" / f"Pulumi.{name}.yaml"

    def edit(self, name: str, change: Callable[[dict], object]) -> None:
        edit_stack(self.project, name, change)

    def up(self, name: str):
        """`up` of a selected stack through the Automation API, asserted to succeed."""
        result = self.stacks[name].up(color="never")
        assert result.summary.result == "succeeded", result.stderr
        self.outputs += [result.stdout, result.stderr]
        return result

    def login(
        self, role: str, namespace: str, account: str, audience: str | None = "vault", *, cluster: str | None = None
    ) -> hvac.Client:
        """ServiceAccount namespace/account of `cluster` (default: the fleet's) logged in as `role`."""
        return login(self.lab, cluster or self.cluster, role, namespace, account, audience)

    def write(self, key: str, data: dict) -> None:
        """A KV secret at kv/`key`, written with the root token."""
        self.vault.secrets.kv.v2.create_or_update_secret(key, secret=data, mount_point="kv")

    def consumers(self, *args: str):
        """What `vaultfleet consumers <cluster> ARGS --format json` prints, parsed (a list of
        documents, or the agent config)."""
        result = CliRunner().invoke(
            app,
            ["consumers", self.cluster, *args, "--format", "json"],
            env={"VAULTFLEET_PROJECT": str(self.project)},
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def declare_database(self, engine_roles: list[dict], role: dict, database_roles: list[str]) -> None:
        """The database engine as a user declares it: the lab's PostgreSQL prepared for it (its
        admin user with `admin_password`); the shared stack's engine with `engine_roles`; on the
        cluster the db-creds policy, `database_roles` and Vault role `role`; the password only through
        `config set --secret --path`. Selects the shared and the cluster's stack."""
        lab_db.prepare(self.pg, self.admin_password)
        self.edit("vault", lambda c: c.update({"vaultfleet:database": lab_db.engine_config(self.pg, engine_roles)}))

        def grant(config):
            config["vaultfleet:policies"] = ["kv-read", "kv-write", "db-creds"]
            config["vaultfleet:databaseRoles"] = database_roles
            config["vaultfleet:roles"].append(role)

        self.edit(self.cluster, grant)
        self.select("vault", self.cluster)
        lab_db.set_admin_password(self.stacks["vault"], self.admin_password)

    def superuser(self) -> psycopg.Connection:
        return lab_db.superuser(self.pg)

    def as_user(self, username: str, password: str) -> psycopg.Connection:
        return psycopg.connect(**self.pg.connect_kwargs(user=username, password=password))
