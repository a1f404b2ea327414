"""The local lab, orchestrated: `up` starts a Vault-compatible server (or three), PostgreSQL and N Kubernetes
control planes on 127.0.0.1 in order and waits until each is healthy; `down` stops exactly what
lab.json records; `status` checks each component's process and health endpoint. Both `up` and
`down` delete a directory only when it holds a lab record (record.check_lab_dir).

The parts: record.py (lab.json, ports, paths), vault.py (ha.py for --ha), kubernetes.py, postgres.py,
pki.py.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path

from vaultfleet.lab import files, ha, kubernetes, postgres, processes, servers, vault
from vaultfleet.lab.pki import create_cluster_pki
from vaultfleet.lab.record import (
    APISERVER_BASE_PORT,
    CONTROLLER_MANAGER_BASE_PORT,
    ETCD_PEER_PORT,
    ETCD_PORT,
    HA_NODE_PORTS,
    VAULT_PORT,
    ClusterInfo,
    LabError,
    LabState,
    VaultNode,
    check_lab_dir,
    cluster_names,
    http_ok,
    lab_dir,
    remove_lab_dir,
    start_process,
    write_passphrase_file,
)
from vaultfleet.toolchain import find_tool


def up(
    clusters: int = 2,
    directory: Path | None = None,
    echo=print,
    with_postgres: bool = True,
    server: servers.ServerKind = servers.SERVERS[servers.DEFAULT],
    high_availability: bool = False,
) -> LabState:
    """Start the lab and wait until every part is healthy; on any failure stop what was started.

    `with_postgres`: also start the lab's PostgreSQL (vaultfleet/lab/postgres.py).
    `server`: the Vault-compatible server to run (vaultfleet/lab/servers.py), OpenBao by default.
    `high_availability`: three raft nodes of it behind HAProxy, at the same address (ha.py).
    """
    directory = directory or lab_dir()
    # First of all: a directory that is not the lab's (a link, another user's, or not empty without
    # lab.json) is refused before anything is deleted or started.
    existing = LabState.load(directory) if check_lab_dir(directory) else None
    if existing is not None:
        if existing.processes and all(processes.is_running(p) for p in existing.processes):
            raise LabError(f"a lab is already running from {directory}; `vaultfleet lab down` first")
        down(directory, echo=None)  # stale state from a crashed or failed lab: clear it

    names = cluster_names(clusters)
    infos = [
        ClusterInfo(name, APISERVER_BASE_PORT + i, CONTROLLER_MANAGER_BASE_PORT + i) for i, name in enumerate(names)
    ]
    binaries = {
        "vault": vault.find_server(server),
        "etcd": find_tool("etcd"),
        "kube-apiserver": find_tool("kube-apiserver"),
        "kube-controller-manager": find_tool("kube-controller-manager"),
    }
    postgres_binaries = postgres.find_binaries() if with_postgres else None
    if high_availability:
        ha.find_haproxy()
        nodes = [VaultNode(f"vault-{i}", port) for i, port in enumerate(HA_NODE_PORTS, start=1)]
    else:
        nodes = [VaultNode("vault", VAULT_PORT)]
    _check_ports(infos, nodes, {postgres.PORT: "postgresql"} if with_postgres else {})

    started = time.monotonic()
    remove_lab_dir(directory)  # a lab that appeared meanwhile; check_lab_dir refuses anything else
    files.private_dir(directory)
    state = LabState(
        directory=directory,
        vault_addr=f"http://127.0.0.1:{VAULT_PORT}",
        vault_server=server.name,
        vault_cli=binaries["vault"],
        clusters=infos,
        vault_nodes=nodes,
        started_at=time.time(),
    )
    state.save()  # from here on the directory holds a lab record: `down` and the next `up` may clear it
    try:
        write_passphrase_file(state.passphrase_file)
        (directory / "pulumi").mkdir(mode=0o700)
        vault.start(state, binaries["vault"], echo)
        if postgres_binaries is not None:
            _start_postgres(state, postgres_binaries, echo)
        kubernetes.start_etcd(state, binaries["etcd"], echo)
        pkis = {c.name: create_cluster_pki(directory / "pki" / c.name, c.name) for c in infos}
        kubernetes.write_kubeconfig(state, pkis)
        for c in infos:
            kubernetes.start_apiserver(state, c, pkis[c.name], binaries["kube-apiserver"], echo)
        # A controller manager gives up after 20 s without a healthy apiserver; on a busy machine
        # six apiservers can take longer than that to boot, so each starts after its apiserver is ready.
        for c in infos:
            kubernetes.wait_apiserver_ready(state, c, pkis[c.name])
            kubernetes.start_controller_manager(state, c, pkis[c.name], binaries["kube-controller-manager"], echo)
        for c in infos:
            kubernetes.wait_default_service_account(state, c, pkis[c.name])
    except BaseException:
        # Nothing left running on failure: stop what this call started. Its logs stay for a look,
        # with lab.json (nothing of it runs) so that `down` or the next `up` clears them; with no
        # process started there is no log, and the directory goes at once.
        for proc in reversed(state.processes):
            (postgres.stop if proc.name == postgres.PROCESS_NAME else processes.stop)(proc)
        if state.postgres is not None:
            postgres.remove(state.postgres, directory)
            state.postgres = None
        if state.processes:
            state.save()
        else:
            remove_lab_dir(directory)
        raise
    state.startup_seconds = round(time.monotonic() - started, 1)
    state.save()
    return state


def down(directory: Path | None = None, echo=print) -> list[str]:
    """Stop exactly the processes lab.json names (by PID and start time) and remove the lab state.

    Only a directory holding a lab record is touched: none (or an empty one) is left as it is; one
    that is not the lab's is refused with a LabError, nothing deleted (record.check_lab_dir).
    """
    directory = directory or lab_dir()
    if not check_lab_dir(directory):
        return []
    state = LabState.load(directory)
    stopped: list[str] = []
    if state is not None:
        running = [p for p in reversed(state.processes) if processes.is_running(p)]
        # Controllers and apiservers first, all at once; then etcd, PostgreSQL and Vault, one by one.
        kube = [p for p in running if p.name.startswith("kube-")]
        processes.stop_all(kube)
        for proc in running:
            if proc not in kube:
                (postgres.stop if proc.name == postgres.PROCESS_NAME else processes.stop)(proc)
        stopped = [f"{proc.name} (pid {proc.pid})" for proc in running]
        if state.postgres is not None and not postgres.remove(state.postgres, directory) and echo:
            echo(f"left {state.postgres.directory}: not a directory of the lab's PostgreSQL user any more")
    remove_lab_dir(directory)
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


def _check_ports(infos: list[ClusterInfo], nodes: list[VaultNode], extra: dict[int, str]) -> None:
    wanted = {
        VAULT_PORT: "vault" if nodes[0].port == VAULT_PORT else "vault (load balancer)",
        **{node.port: node.name for node in nodes},
        **{node.port + 1: f"{node.name} (cluster)" for node in nodes},
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


def _start_postgres(state: LabState, binaries: postgres.Binaries, echo) -> None:
    state.postgres = postgres.start(
        state.directory, binaries, lambda name, argv, env: start_process(state, name, argv, env), echo
    )
    state.save()


def _healthy(state: LabState, name: str) -> bool:
    try:
        if name == ha.LOAD_BALANCER:
            return http_ok(f"{state.vault_addr}/v1/sys/health")  # it answers 200 for the active node only
        if any(node.name == name for node in state.vault_nodes):
            return http_ok(f"{state.vault_node(name).addr}/v1/sys/health?standbyok=true")
        if name == "etcd":
            return http_ok(f"http://127.0.0.1:{ETCD_PORT}/health")
        if name == postgres.PROCESS_NAME and state.postgres is not None:
            return postgres.healthy(state.postgres)
        for c in state.clusters:
            ctx = kubernetes.admin_context(state.pki(c.name))
            if name == f"kube-apiserver-{c.name}":
                return http_ok(f"{c.server}/readyz", ctx)
            if name == f"kube-controller-manager-{c.name}":
                return http_ok(
                    f"https://127.0.0.1:{c.controller_manager_port}/healthz", ssl._create_unverified_context()
                )  # noqa: S323 - self-signed loopback cert
        from vaultfleet.lab import controllers  # the kubernetes client: only when a row may be one of them

        return bool(controllers.healthy(state, name))
    except Exception:  # noqa: BLE001 - unhealthy is the answer
        return False
