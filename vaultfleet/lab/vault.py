"""The lifecycle of the lab's Vault-compatible servers (OpenBao or HashiCorp Vault, see servers.py).

Real (non-dev) servers, initialised and unsealed over the HTTP API: they survive a restart and can
be sealed, so the tests can seal one or take it down in the middle of a fleet run (`seal_vault`,
`unseal_vault`, `stop_vault`, `start_vault`) and bring it back on its data. One server on file
storage by default; with --ha, three raft nodes behind a load balancer (ha.py forms the cluster).
"""

from __future__ import annotations

import urllib.error
import urllib.request

from vaultfleet.lab import ha, processes, servers
from vaultfleet.lab.files import private_dir, write_private
from vaultfleet.lab.processes import Tracked
from vaultfleet.lab.record import LabState, VaultNode, http_ok, log, start_process, tracked, write_secret
from vaultfleet.toolchain import MissingTool, find_tool


def find_server(server: servers.ServerKind) -> str:
    try:
        return find_tool(server.binary)
    except MissingTool as exc:
        raise MissingTool(f"{exc} ({server.product}: `{server.build}`)") from None


def start(state: LabState, binary: str, echo) -> None:
    """Start the lab's Vault, initialise and unseal it: its one server, or (state.ha) a cluster of
    three. The root token and unseal key are generated at init and written to 0600 files, never
    printed (a dev server logs its token)."""
    if state.ha:
        _form_cluster(state, binary, echo)
    else:
        [node] = state.vault_nodes
        first_start = not state.node_config(node).exists()
        proc = launch(state, node, binary, echo)
        if first_start:
            initialise(state, node)
        unseal_vault(state, node)
        processes.wait_until(lambda: http_ok(f"{node.addr}/v1/sys/health"), 60, "vault unseal", proc)
    if not state.vault_version:
        state.vault_version = _server_version(state.vault_nodes[0])
        state.save()


def _form_cluster(state: LabState, binary: str, echo) -> None:
    """--ha: start the nodes, initialise and unseal the first, join the others to it, wait until all
    three vote (so the cluster survives losing any one), then start the balancer (lab/ha.py)."""
    haproxy = ha.find_haproxy()
    first, *others = state.vault_nodes
    procs = {node.name: launch(state, node, binary, echo) for node in state.vault_nodes}
    initialise(state, first)
    unseal_vault(state, first)
    processes.wait_until(lambda: http_ok(f"{first.addr}/v1/sys/health"), 60, "first node active", procs[first.name])
    ha.promote_quickly(state, first)
    for node in others:
        log(f"joining {node.name} to {first.name}", echo)
        ha.join(state, node, first, procs[node.name])
        unseal_vault(state, node)
        processes.wait_until(
            lambda n=node: http_ok(f"{n.addr}/v1/sys/health?standbyok=true"), 60, f"{node.name} join", procs[node.name]
        )
    processes.wait_until(lambda: all(ha.voters(state, first).values()), 60, "raft voters")
    ha.start_load_balancer(state, haproxy, echo)


def launch(state: LabState, node: VaultNode, binary: str, echo) -> Tracked:
    """Start one server process (its config written on first start) and wait until it answers."""
    config = state.node_config(node)
    if not config.exists():
        data = state.node_data(node)
        if state.ha:
            private_dir(data)  # raft opens its files in it; file storage makes its own
            write_private(config, servers.raft_config_hcl(str(data), node.name, node.port))
        else:
            write_private(config, servers.config_hcl(str(data), node.port))
    log(f"starting {state.server.product} {node.name} ({binary}) on {node.addr}", echo)
    proc = start_process(state, node.name, [binary, "server", f"-config={config}"])
    processes.wait_until(lambda: _http_answers(f"{node.addr}/v1/sys/seal-status"), 60, f"{node.name} server", proc)
    return proc


def initialise(state: LabState, node: VaultNode) -> None:
    import hvac

    keys = hvac.Client(url=node.addr).sys.initialize(secret_shares=1, secret_threshold=1)
    write_secret(state.token_file, keys["root_token"])
    write_secret(state.unseal_key_file, keys["keys_base64"][0])


def unseal_vault(state: LabState, node: VaultNode | None = None) -> None:
    """Unseal a server (the single one by default) with the key kept at init; a no-op when unsealed."""
    import hvac

    node = node or state.vault_nodes[0]
    hvac.Client(url=node.addr).sys.submit_unseal_key(state.unseal_key_file.read_text().strip())


def seal_vault(state: LabState) -> None:
    """Seal the lab's Vault, as an operator would during an incident. (A standby of an HA cluster
    refuses to seal: "please restart instead"; `start_vault(..., unseal=False)` does that.)"""
    import hvac

    hvac.Client(url=state.vault_addr, token=state.vault_token()).sys.seal()


def stop_vault(state: LabState, name: str = "vault", kill: bool = False) -> None:
    """Take a server down by its tracked PID (SIGKILL with `kill`, as a lost machine); its data stays."""
    proc = tracked(state, name)
    processes.kill(proc) if kill else processes.stop(proc)
    state.processes.remove(proc)
    state.save()


def start_vault(state: LabState, echo=None, name: str = "vault", unseal: bool = True) -> None:
    """Start a server again on its data (the binary `up` started) and unseal it unless told not to;
    an HA node then rejoins its cluster as a standby."""
    node = state.vault_node(name)
    proc = launch(state, node, state.vault_cli, echo)
    if unseal:
        unseal_vault(state, node)
        health = f"{node.addr}/v1/sys/health" + ("?standbyok=true" if state.ha else "")
        processes.wait_until(lambda: http_ok(health), 60, f"{name} unseal", proc)


def _server_version(node: VaultNode) -> str:
    import hvac

    return str(hvac.Client(url=node.addr).sys.read_seal_status().get("version", ""))


def _http_answers(url: str) -> bool:
    """Any HTTP answer at all (Vault answers sys/seal-status before init and while sealed)."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
            return True
    except urllib.error.HTTPError:
        return True
