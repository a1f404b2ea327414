"""The local lab: one Vault-compatible server and N Kubernetes control planes on 127.0.0.1.

Layout of the lab directory (default ~/.local/state/vaultfleet/lab, or $VAULTFLEET_LAB_DIR):
    lab.json            what was started (PIDs with start times, ports, paths): the only truth
                        `down` and `status` use
    kubeconfig          one context per cluster (lab-a, lab-b, ...), admin by client certificate
    vault.hcl           config of the lab's Vault server (file storage in vault-data/): OpenBao or
                        HashiCorp Vault, see vaultfleet/lab/servers.py
    vault-token         its root token (0600; never printed)
    vault-unseal-key    its unseal key (0600; never printed): the lab can seal and unseal it
    postgres-password   superuser password of the lab's PostgreSQL (0600; never printed); the
                        server itself: vaultfleet/lab/postgres.py
    pulumi/             local Pulumi backend (file://)
    pki/<cluster>/      CA, serving cert, admin cert, ServiceAccount signing key
    etcd/               data directory of the one etcd all clusters share (one key prefix each)
    logs/               one log per process
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import ssl
import string
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vaultfleet.lab import postgres, processes, servers
from vaultfleet.lab.pki import ClusterPki, create_cluster_pki
from vaultfleet.lab.processes import Tracked
from vaultfleet.toolchain import MissingTool, find_tool, search_path, tools_bin_dir

# Fixed ports, so Pulumi.yaml can name the lab's Vault; $VAULTFLEET_LAB_PORT_OFFSET shifts them all
# (a second lab beside a running one, as the lab lifecycle test does).
_OFFSET = int(os.environ.get("VAULTFLEET_LAB_PORT_OFFSET", "0"))
VAULT_PORT = 18200 + _OFFSET
ETCD_PORT = 18379 + _OFFSET
ETCD_PEER_PORT = 18380 + _OFFSET
APISERVER_BASE_PORT = 16443 + _OFFSET  # cluster i listens on 16443 + i
CONTROLLER_MANAGER_BASE_PORT = 17443 + _OFFSET
MAX_CLUSTERS = 26

# The controllers a lab cluster needs: tokens for kubernetes.io/service-account-token Secrets,
# `default` ServiceAccounts, namespace deletion (or destroy hangs) and kube-root-ca.crt.
CONTROLLERS = ",".join(
    [
        "serviceaccount-token-controller",
        "serviceaccount-controller",
        "namespace-controller",
        "garbage-collector-controller",
        "root-ca-certificate-publisher-controller",
    ]
)


def lab_dir() -> Path:
    return Path(os.environ.get("VAULTFLEET_LAB_DIR") or Path.home() / ".local/state/vaultfleet/lab")


def passphrase_file() -> Path:
    """The lab's Pulumi secrets passphrase (0600, never printed).

    It outlives `lab down` on purpose: `pulumi stack init` writes an encryption salt derived from it
    into the stack file, and a new passphrase per lab would make that committed file unusable.
    """
    base = Path(os.environ.get("VAULTFLEET_CONFIG_DIR") or Path.home() / ".config" / "vaultfleet")
    return base / "lab-passphrase"


def cluster_names(count: int) -> list[str]:
    if not 1 <= count <= MAX_CLUSTERS:
        raise ValueError(f"--clusters must be between 1 and {MAX_CLUSTERS}, got {count}")
    return [f"lab-{letter}" for letter in string.ascii_lowercase[:count]]


@dataclass
class ClusterInfo:
    name: str
    api_port: int
    controller_manager_port: int

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def issuer(self) -> str:
        # Distinct per cluster, as on real clusters; Vault checks it when issuer validation is on.
        return self.server


@dataclass
class LabState:
    """What `lab up` started; written to lab.json."""

    directory: Path
    vault_addr: str
    vault_server: str
    """Which server runs: "openbao" or "vault" (a key of servers.SERVERS)."""
    clusters: list[ClusterInfo]
    processes: list[Tracked] = field(default_factory=list)
    started_at: float = 0.0
    startup_seconds: float = 0.0
    postgres: postgres.PostgresServer | None = None
    """The lab's PostgreSQL (address, superuser, password file), None when started without it."""
    vault_cli: str = ""
    """The server's binary, which is also its CLI and agent (`bao` or `vault`): what tests and a
    `lab env` shell ($VAULT_CLI) run, so they talk to the lab with the same product it serves."""
    vault_version: str = ""
    """The version the server reports (sys/seal-status), e.g. "2.4.0" or "1.14.1"."""

    @property
    def server(self) -> servers.ServerKind:
        return servers.server_kind(self.vault_server, source=str(self.directory / "lab.json") + ": vault_server")

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def token_file(self) -> Path:
        return self.directory / "vault-token"

    @property
    def passphrase_file(self) -> Path:
        return passphrase_file()

    @property
    def unseal_key_file(self) -> Path:
        return self.directory / "vault-unseal-key"

    @property
    def vault_config(self) -> Path:
        return self.directory / "vault.hcl"

    @property
    def backend_url(self) -> str:
        return f"file://{self.directory / 'pulumi'}"

    def pki(self, cluster: str) -> ClusterPki:
        d = self.directory / "pki" / cluster
        return ClusterPki(
            ca_cert=d / "ca.crt",
            ca_key=d / "ca.key",
            serving_cert=d / "apiserver.crt",
            serving_key=d / "apiserver.key",
            admin_cert=d / "admin.crt",
            admin_key=d / "admin.key",
            sa_key=d / "sa.key",
            sa_pub=d / "sa.pub",
        )

    def vault_token(self) -> str:
        return self.token_file.read_text().strip()

    def save(self) -> None:
        data = {
            "vault_addr": self.vault_addr,
            "vault_server": self.vault_server,
            "vault_cli": self.vault_cli,
            "vault_version": self.vault_version,
            "clusters": [c.__dict__ for c in self.clusters],
            "processes": [p.to_json() for p in self.processes],
            "started_at": self.started_at,
            "startup_seconds": self.startup_seconds,
            "postgres": self.postgres.to_json() if self.postgres else None,
        }
        path = self.directory / "lab.json"
        path.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, directory: Path | None = None) -> LabState | None:
        directory = directory or lab_dir()
        path = directory / "lab.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        server = servers.server_kind(data["vault_server"], source=f"{path}: vault_server")
        return cls(
            directory=directory,
            vault_addr=data["vault_addr"],
            vault_server=server.name,
            # A lab.json from before the choice has no vault_cli: its server was found on the search path.
            vault_cli=data.get("vault_cli") or shutil.which(server.binary, path=search_path()) or server.binary,
            vault_version=data.get("vault_version", ""),
            clusters=[ClusterInfo(**c) for c in data["clusters"]],
            processes=[Tracked(**p) for p in data["processes"]],
            started_at=data.get("started_at", 0.0),
            startup_seconds=data.get("startup_seconds", 0.0),
            postgres=postgres.PostgresServer.from_json(data["postgres"]) if data.get("postgres") else None,
        )

    def env(self) -> dict[str, str]:
        """Environment for plain `pulumi`, kubectl and hvac use against this lab (no secret values)."""
        return {
            "VAULT_ADDR": self.vault_addr,
            "KUBECONFIG": str(self.kubeconfig),
            "PULUMI_BACKEND_URL": self.backend_url,
            "PULUMI_CONFIG_PASSPHRASE_FILE": str(self.passphrase_file),
            # Offline: plugins come from the tool cache on PATH; never download, never phone home.
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PATH": search_path(),
            # `bao` and `vault` are both on PATH when both are built: $VAULT_CLI is the lab's own.
            "VAULT_CLI": self.vault_cli,
            **(postgres.env(self.postgres) if self.postgres else {}),
        }


class LabError(RuntimeError):
    pass


def _log(msg: str, echo) -> None:
    if echo:
        echo(msg)


def up(
    clusters: int = 2,
    directory: Path | None = None,
    echo=print,
    with_postgres: bool = True,
    server: servers.ServerKind = servers.SERVERS[servers.DEFAULT],
) -> LabState:
    """Start the lab and wait until every part is healthy; on any failure stop what was started.

    `with_postgres`: also start the lab's PostgreSQL (vaultfleet/lab/postgres.py).
    `server`: the Vault-compatible server to run (vaultfleet/lab/servers.py), OpenBao by default.
    """
    directory = directory or lab_dir()
    existing = LabState.load(directory)
    if existing is not None:
        if all(processes.is_running(p) for p in existing.processes):
            raise LabError(f"a lab is already running from {directory}; `vaultfleet lab down` first")
        down(directory, echo=None)  # stale state from a crashed lab: clear it

    names = cluster_names(clusters)
    infos = [
        ClusterInfo(name, APISERVER_BASE_PORT + i, CONTROLLER_MANAGER_BASE_PORT + i) for i, name in enumerate(names)
    ]
    binaries = {
        "vault": _find_server(server),
        "etcd": find_tool("etcd"),
        "kube-apiserver": find_tool("kube-apiserver"),
        "kube-controller-manager": find_tool("kube-controller-manager"),
    }
    postgres_binaries = postgres.find_binaries() if with_postgres else None
    _check_ports(infos, {postgres.PORT: "postgresql"} if with_postgres else {})

    started = time.monotonic()
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    state = LabState(
        directory=directory,
        vault_addr=f"http://127.0.0.1:{VAULT_PORT}",
        vault_server=server.name,
        vault_cli=binaries["vault"],
        clusters=infos,
        started_at=time.time(),
    )
    if not state.passphrase_file.exists():
        state.passphrase_file.parent.mkdir(parents=True, exist_ok=True)
        _write_secret(state.passphrase_file, secrets.token_urlsafe(32))
    (directory / "pulumi").mkdir()
    try:
        _start_vault(state, binaries["vault"], echo)
        if postgres_binaries is not None:
            _start_postgres(state, postgres_binaries, echo)
        _start_etcd(state, binaries["etcd"], echo)
        pkis = {c.name: create_cluster_pki(directory / "pki" / c.name, c.name) for c in infos}
        _write_kubeconfig(state, pkis)
        for c in infos:
            _start_apiserver(state, c, pkis[c.name], binaries["kube-apiserver"], echo)
        # A controller manager gives up after 20 s without a healthy apiserver; on a busy machine
        # six apiservers can take longer than that to boot, so each starts after its apiserver is ready.
        for c in infos:
            _wait_apiserver_ready(state, c, pkis[c.name])
            _start_controller_manager(state, c, pkis[c.name], binaries["kube-controller-manager"], echo)
        for c in infos:
            _wait_default_service_account(state, c, pkis[c.name])
    except BaseException:
        # Nothing left running on failure: stop what this call started, keep logs for the error.
        for proc in reversed(state.processes):
            (postgres.stop if proc.name == postgres.PROCESS_NAME else processes.stop)(proc)
        if state.postgres is not None:
            postgres.remove(state.postgres, directory)
        (directory / "lab.json").unlink(missing_ok=True)
        raise
    state.startup_seconds = round(time.monotonic() - started, 1)
    state.save()
    return state


def down(directory: Path | None = None, echo=print) -> list[str]:
    """Stop exactly the processes lab.json names (by PID and start time) and remove the lab state."""
    directory = directory or lab_dir()
    state = LabState.load(directory)
    stopped: list[str] = []
    if state is not None:
        # Controllers and apiservers before etcd, etcd and Vault last.
        for proc in reversed(state.processes):
            if processes.is_running(proc):
                (postgres.stop if proc.name == postgres.PROCESS_NAME else processes.stop)(proc)
                stopped.append(f"{proc.name} (pid {proc.pid})")
        if state.postgres is not None:
            postgres.remove(state.postgres, directory)
    if directory.exists():
        shutil.rmtree(directory)
    return stopped


def status(directory: Path | None = None) -> list[dict]:
    """Health of each lab component: its process and its health endpoint."""
    state = LabState.load(directory)
    if state is None:
        return []
    rows = []
    for proc in state.processes:
        running = processes.is_running(proc)
        healthy = running and _healthy(state, proc.name)
        rows.append({"component": proc.name, "pid": proc.pid, "running": running, "healthy": healthy})
    return rows


# --- internals -------------------------------------------------------------------------------


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)


def _check_ports(infos: list[ClusterInfo], extra: dict[int, str]) -> None:
    wanted = {
        VAULT_PORT: "vault",
        VAULT_PORT + 1: "vault (cluster)",
        ETCD_PORT: "etcd",
        ETCD_PEER_PORT: "etcd (peer)",
        **extra,
    }
    for c in infos:
        wanted[c.api_port] = f"kube-apiserver {c.name}"
        wanted[c.controller_manager_port] = f"kube-controller-manager {c.name}"
    taken = [f"127.0.0.1:{port} ({what})" for port, what in wanted.items() if not processes.port_is_free(port)]
    if taken:
        raise LabError("ports already in use, nothing was started: " + ", ".join(taken))


def _child_env() -> dict[str, str]:
    # Servers get a minimal environment: no proxies, no VAULT_TOKEN of the caller's shell.
    return {"PATH": search_path(), "HOME": os.environ.get("HOME", "/tmp")}


def _start(state: LabState, name: str, argv: list[str], env=None) -> Tracked:
    proc = processes.start(name, argv, state.directory / "logs" / f"{name}.log", env or _child_env())
    state.processes.append(proc)
    state.save()  # from the first process on, `lab down` can always find what was started
    return proc


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310 - loopback only
        return resp.status == 200


def _start_vault(state: LabState, binary: str, echo) -> None:
    """A real (non-dev) server on file storage: it survives a restart and can be sealed, so the
    lab can take Vault down or seal it in the middle of a run, as production Vaults do. Its root
    token is generated at init and written to a 0600 file, never printed (a dev server logs it)."""
    first_start = not state.vault_config.exists()
    if first_start:
        state.vault_config.write_text(
            servers.config_hcl(str(state.directory / "vault-data"), VAULT_PORT, state.vault_addr)
        )
    _log(f"starting {state.server.product} ({binary}) on {state.vault_addr}", echo)
    proc = _start(state, "vault", [binary, "server", f"-config={state.vault_config}"])
    processes.wait_until(lambda: _http_answers(f"{state.vault_addr}/v1/sys/seal-status"), 60, "vault server", proc)
    if first_start:
        _initialise_vault(state)
    unseal_vault(state)
    processes.wait_until(lambda: _http_ok(f"{state.vault_addr}/v1/sys/health"), 60, "vault unseal", proc)
    if not state.vault_version:
        state.vault_version = _server_version(state)
        state.save()


def _find_server(server: servers.ServerKind) -> str:
    try:
        return find_tool(server.binary)
    except MissingTool as exc:
        raise MissingTool(f"{exc} ({server.product}: `{server.build}`)") from None


def _server_version(state: LabState) -> str:
    import hvac

    return str(hvac.Client(url=state.vault_addr).sys.read_seal_status().get("version", ""))


def _initialise_vault(state: LabState) -> None:
    import hvac

    keys = hvac.Client(url=state.vault_addr).sys.initialize(secret_shares=1, secret_threshold=1)
    _write_secret(state.token_file, keys["root_token"])
    _write_secret(state.unseal_key_file, keys["keys_base64"][0])


def unseal_vault(state: LabState) -> None:
    """Unseal the lab's Vault with the key kept at init (a no-op when it is unsealed)."""
    import hvac

    hvac.Client(url=state.vault_addr).sys.submit_unseal_key(state.unseal_key_file.read_text().strip())


def seal_vault(state: LabState) -> None:
    """Seal the lab's Vault, as an operator would during an incident."""
    import hvac

    hvac.Client(url=state.vault_addr, token=state.vault_token()).sys.seal()


def stop_vault(state: LabState) -> None:
    """Take the lab's Vault down (stopped by its tracked PID); its data stays for `start_vault`."""
    proc = _proc(state, "vault")
    processes.stop(proc)
    state.processes.remove(proc)
    state.save()


def start_vault(state: LabState, echo=None) -> None:
    """Start the lab's Vault again on its data and unseal it: the same binary `up` started."""
    _start_vault(state, state.vault_cli, echo)


def _http_answers(url: str) -> bool:
    """Any HTTP answer at all (Vault answers sys/seal-status before init and while sealed)."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
            return True
    except urllib.error.HTTPError:
        return True


def _start_postgres(state: LabState, binaries: postgres.Binaries, echo) -> None:
    state.postgres = postgres.start(
        state.directory, binaries, lambda name, argv, env: _start(state, name, argv, env), echo
    )
    state.save()


def _start_etcd(state: LabState, binary: str, echo) -> None:
    _log(f"starting etcd on 127.0.0.1:{ETCD_PORT}", echo)
    client = f"http://127.0.0.1:{ETCD_PORT}"
    peer = f"http://127.0.0.1:{ETCD_PEER_PORT}"
    proc = _start(
        state,
        "etcd",
        [
            binary,
            "--name=lab",
            f"--data-dir={state.directory / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=lab={peer}",
            "--log-level=warn",
        ],
    )
    processes.wait_until(lambda: _http_ok(f"{client}/health"), 60, "etcd", proc)


def _write_kubeconfig(state: LabState, pkis: dict[str, ClusterPki]) -> None:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": c.name, "cluster": {"server": c.server, "certificate-authority-data": b64(pkis[c.name].ca_cert)}}
            for c in state.clusters
        ],
        "users": [
            {
                "name": f"{c.name}-admin",
                "user": {
                    "client-certificate-data": b64(pkis[c.name].admin_cert),
                    "client-key-data": b64(pkis[c.name].admin_key),
                },
            }
            for c in state.clusters
        ],
        "contexts": [
            {"name": c.name, "context": {"cluster": c.name, "user": f"{c.name}-admin"}} for c in state.clusters
        ],
        "current-context": state.clusters[0].name,
    }
    _write_secret(state.kubeconfig, yaml.safe_dump(config, sort_keys=False))


def _single_context_kubeconfig(state: LabState, cluster: ClusterInfo) -> Path:
    """kube-controller-manager takes a kubeconfig without a context flag: give it its own."""
    config = yaml.safe_load(state.kubeconfig.read_text())
    config["current-context"] = cluster.name
    path = state.directory / "pki" / cluster.name / "kubeconfig"
    _write_secret(path, yaml.safe_dump(config, sort_keys=False))
    return path


def _start_apiserver(state: LabState, cluster: ClusterInfo, pki: ClusterPki, binary: str, echo) -> None:
    _log(f"starting kube-apiserver {cluster.name} on {cluster.server}", echo)
    _start(
        state,
        f"kube-apiserver-{cluster.name}",
        [
            binary,
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={cluster.api_port}",
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            f"--etcd-prefix=/{cluster.name}",  # one etcd, one key space per cluster
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={cluster.issuer}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/24",  # bookkeeping only: the lab has no nodes
            "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            f"--cert-dir={state.directory / 'pki' / cluster.name}",
        ],
    )


def _start_controller_manager(state: LabState, cluster: ClusterInfo, pki: ClusterPki, binary: str, echo) -> None:
    _log(f"starting kube-controller-manager {cluster.name}", echo)
    kubeconfig = _single_context_kubeconfig(state, cluster)
    _start(
        state,
        f"kube-controller-manager-{cluster.name}",
        [
            binary,
            f"--kubeconfig={kubeconfig}",
            f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--bind-address=127.0.0.1",
            f"--secure-port={cluster.controller_manager_port}",
            f"--cert-dir={state.directory / 'pki' / cluster.name / 'kcm'}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
        ],
    )


def _admin_context(pki: ClusterPki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return ctx


def _proc(state: LabState, name: str) -> Tracked:
    return next(p for p in state.processes if p.name == name)


def _wait_apiserver_ready(state: LabState, cluster: ClusterInfo, pki: ClusterPki) -> None:
    ctx = _admin_context(pki)
    processes.wait_until(
        lambda: _http_ok(f"{cluster.server}/readyz", ctx),
        120,
        f"kube-apiserver {cluster.name}",
        _proc(state, f"kube-apiserver-{cluster.name}"),
    )


def _wait_default_service_account(state: LabState, cluster: ClusterInfo, pki: ClusterPki) -> None:
    # The controller manager is working once it has created the `default` ServiceAccount.
    ctx = _admin_context(pki)
    processes.wait_until(
        lambda: _http_ok(f"{cluster.server}/api/v1/namespaces/default/serviceaccounts/default", ctx),
        120,
        f"kube-controller-manager {cluster.name}",
        _proc(state, f"kube-controller-manager-{cluster.name}"),
        interval=0.5,
    )


def _healthy(state: LabState, name: str) -> bool:
    try:
        if name == "vault":
            return _http_ok(f"{state.vault_addr}/v1/sys/health")
        if name == "etcd":
            return _http_ok(f"http://127.0.0.1:{ETCD_PORT}/health")
        if name == postgres.PROCESS_NAME and state.postgres is not None:
            return postgres.healthy(state.postgres)
        for c in state.clusters:
            ctx = _admin_context(state.pki(c.name))
            if name == f"kube-apiserver-{c.name}":
                return _http_ok(f"{c.server}/readyz", ctx)
            if name == f"kube-controller-manager-{c.name}":
                return _http_ok(
                    f"https://127.0.0.1:{c.controller_manager_port}/healthz", ssl._create_unverified_context()
                )  # noqa: S323 - self-signed loopback cert
    except Exception:  # noqa: BLE001 - unhealthy is the answer
        return False
    return False


__all__ = ["LabState", "LabError", "up", "down", "status", "lab_dir", "tools_bin_dir"]
