"""The lab record: where a lab lives, its ports, and lab.json (`LabState`), which is all that
`down`, `status` and the tests know of a running lab; plus the few helpers every part of the lab
shares (start a process and record it at once, 0600 files, loopback HTTP checks). About 340
lines, in one module on purpose: the record and what writes it belong together, and every other
lab module (Vault, Kubernetes, PostgreSQL, HA, controllers) reads it from here.

Layout of the lab directory (default ~/.local/state/vaultfleet/lab, or $VAULTFLEET_LAB_DIR; 0700,
never a symbolic link or another user's; `up` and `down` delete it only when it holds lab.json,
see `check_lab_dir`):
    lab.json            what was started (PIDs with start times, ports, paths): the only truth
                        `down` and `status` use, and what makes the directory the lab's
    kubeconfig          one context per cluster (lab-a, lab-b, ...), admin by client certificate
    vault.hcl           config of the lab's Vault server (file storage in vault-data/): OpenBao or
                        HashiCorp Vault, see vaultfleet/lab/servers.py
    vault-N.hcl         with --ha instead: config of node N of three (raft storage in vault-N-data/),
    vault-lb.cfg        and of the HAProxy in front of them (vaultfleet/lab/ha.py)
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

import json
import os
import shutil
import ssl
import stat
import string
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from vaultfleet.lab import postgres, processes, servers
from vaultfleet.lab.files import LabError, private_dir, remove_tree, write_private
from vaultfleet.lab.pki import ClusterPki
from vaultfleet.lab.processes import Tracked
from vaultfleet.toolchain import search_path

# Fixed ports, so Pulumi.yaml can name the lab's Vault; $VAULTFLEET_LAB_PORT_OFFSET shifts them all
# (a second lab beside a running one, as the lab lifecycle test does).
_OFFSET = int(os.environ.get("VAULTFLEET_LAB_PORT_OFFSET", "0"))
VAULT_PORT = 18200 + _OFFSET  # the Vault address clients use: the server, or with --ha the load balancer
HA_NODE_PORTS = [VAULT_PORT + 10 * i for i in (1, 2, 3)]  # --ha: node i's API; its cluster port is + 1
ETCD_PORT = 18379 + _OFFSET
ETCD_PEER_PORT = 18380 + _OFFSET
APISERVER_BASE_PORT = 16443 + _OFFSET  # cluster i listens on 16443 + i
CONTROLLER_MANAGER_BASE_PORT = 17443 + _OFFSET
CONTROLLERS_BASE_PORT = 18560 + _OFFSET  # the consumers' controllers (lab/controllers.py): + 0 .. 3
MAX_CLUSTERS = 26


def lab_dir() -> Path:
    return Path(os.environ.get("VAULTFLEET_LAB_DIR") or Path.home() / ".local/state/vaultfleet/lab")


LAB_PASSPHRASE = "vaultfleet-lab: not a secret, lab only"
"""The lab's Pulumi secrets passphrase: one fixed value, public on purpose, the same on every machine.

`pulumi stack init` writes an `encryptionsalt` derived from the passphrase into the stack file; the
tracked lab stack files (stacks/Pulumi.lab-a.yaml, lab-b, vault) carry the salt that belongs to
this value, so running the lab leaves the checkout unchanged. It protects lab state only (the lab's
own reviewer tokens, lab-only); a real fleet uses its own secrets provider. docs/lab.md.
"""


def passphrase_file() -> Path:
    """Where the lab hands LAB_PASSPHRASE to Pulumi (PULUMI_CONFIG_PASSPHRASE_FILE), in a 0700
    directory (~/.config/vaultfleet, or $VAULTFLEET_CONFIG_DIR); `lab up` writes it."""
    base = Path(os.environ.get("VAULTFLEET_CONFIG_DIR") or Path.home() / ".config" / "vaultfleet")
    return base / "lab-passphrase"


def write_passphrase_file(path: Path | None = None) -> Path:
    """LAB_PASSPHRASE into its file (0600; whatever was there before is replaced, a link too)."""
    path = path or passphrase_file()
    private_dir(path.parent)
    write_private(path, LAB_PASSPHRASE)
    return path


LAB_RECORD = "lab.json"


def check_lab_dir(directory: Path) -> bool:
    """Whether `directory` holds a lab, before `up` or `down` deletes anything in it.

    True: it holds a lab record (lab.json), the lab may clear it. False: it does not exist or is
    empty, the lab may take it (and deletes nothing). Anything else is refused with a LabError
    naming it, so that nothing is deleted and nothing started: a symbolic link, not a directory,
    another user's directory, or a directory that is not empty and holds no lab record
    (`VAULTFLEET_LAB_DIR=$HOME vaultfleet lab up` must never wipe $HOME).
    """
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise LabError(f"lab directory {directory} is a symbolic link: refusing to use it; name a real directory")
    if not stat.S_ISDIR(st.st_mode):
        raise LabError(f"lab directory {directory} is not a directory: refusing to use it")
    if st.st_uid != os.geteuid():
        raise LabError(
            f"lab directory {directory} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}): refusing to use it"
        )
    if not os.listdir(directory):
        return False
    if _is_lab_record(directory / LAB_RECORD):
        return True
    raise LabError(
        f"{directory} is not a lab directory: it is not empty and holds no lab record ({LAB_RECORD}); "
        "nothing was deleted and nothing started. Point $VAULTFLEET_LAB_DIR at a new or empty directory."
    )


def _is_lab_record(path: Path) -> bool:
    """A regular file (not a link) that reads as lab.json: a JSON object naming the lab's server and processes."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "vault_addr" in data and "processes" in data


def remove_lab_dir(directory: Path) -> None:
    """Delete the lab directory, only when it holds a lab record (check_lab_dir), links inside
    removed, never followed."""
    if check_lab_dir(directory) and not remove_tree(directory):
        raise LabError(f"lab directory {directory} changed while it was being removed: nothing more was deleted")


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


@dataclass(frozen=True)
class VaultNode:
    """One Vault server process of the lab: the single server ("vault"), or a node of the HA
    cluster ("vault-1" ...). `name` is also its process's name in lab.json and its files' stem."""

    name: str
    port: int

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"


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
    vault_nodes: list[VaultNode] = field(default_factory=list)
    """The server processes behind `vault_addr`: one (the server itself), or three with --ha."""

    @property
    def ha(self) -> bool:
        """Three raft nodes behind a load balancer (`lab up --ha`) rather than one server."""
        return len(self.vault_nodes) > 1

    def vault_node(self, name: str) -> VaultNode:
        return next(n for n in self.vault_nodes if n.name == name)

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

    def node_config(self, node: VaultNode) -> Path:
        return self.directory / f"{node.name}.hcl"

    def node_data(self, node: VaultNode) -> Path:
        return self.directory / f"{node.name}-data"

    @property
    def backend_url(self) -> str:
        return f"file://{self.directory / 'pulumi'}"

    def pki(self, cluster: str) -> ClusterPki:
        return ClusterPki.in_directory(self.directory / "pki" / cluster)

    def vault_token(self) -> str:
        return self.token_file.read_text().strip()

    def save(self) -> None:
        data = {
            "vault_addr": self.vault_addr,
            "vault_server": self.vault_server,
            "vault_cli": self.vault_cli,
            "vault_version": self.vault_version,
            "vault_nodes": [n.__dict__ for n in self.vault_nodes],
            "clusters": [c.__dict__ for c in self.clusters],
            "processes": [p.to_json() for p in self.processes],
            "started_at": self.started_at,
            "startup_seconds": self.startup_seconds,
            "postgres": self.postgres.to_json() if self.postgres else None,
        }
        write_private(self.directory / LAB_RECORD, json.dumps(data, indent=2))

    @classmethod
    def load(cls, directory: Path | None = None) -> LabState | None:
        directory = directory or lab_dir()
        path = directory / LAB_RECORD
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
            # A lab.json from before --ha: its one server listened on the address itself.
            vault_nodes=[VaultNode(**n) for n in data.get("vault_nodes", [])]
            or [VaultNode("vault", int(data["vault_addr"].rsplit(":", 1)[1]))],
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


# --- shared by the parts of the lab ------------------------------------------------------------


def log(msg: str, echo) -> None:
    if echo:
        echo(msg)


def write_secret(path: Path, value: str) -> None:
    """A 0600 file in a directory of the lab's own user, written anew (files.write_private)."""
    write_private(path, value)


def child_env() -> dict[str, str]:
    # Servers get a minimal environment: no proxies, no VAULT_TOKEN of the caller's shell.
    return {"PATH": search_path(), "HOME": os.environ.get("HOME", "/tmp")}


def start_process(state: LabState, name: str, argv: list[str], env=None) -> Tracked:
    """Start a lab process and record it in lab.json at once."""
    proc = processes.start(name, argv, state.directory / "logs" / f"{name}.log", env or child_env())
    # What lab.json records now, not what `state` was loaded with: another handle on the lab may
    # have restarted a process since, and saving the older list would lose it from `lab down`.
    recorded = LabState.load(state.directory)
    if recorded is not None:
        state.processes = recorded.processes
    state.processes.append(proc)
    state.save()  # from the first process on, `lab down` can always find what was started
    return proc


def tracked(state: LabState, name: str) -> Tracked:
    """The recorded process called `name` (the latest, if an earlier one was left in the record)."""
    return [p for p in state.processes if p.name == name][-1]


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    """A 2xx answer (a health endpoint's 200, or 204 as the agent injector's); an error status raises."""
    with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310 - loopback only
        return 200 <= resp.status < 300
