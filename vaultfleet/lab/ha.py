"""`lab up --ha`: three Vault nodes on integrated storage (raft) and HAProxy in front of them.

The shape of a production HA Vault: clients use one address (the load balancer's, the lab's
`vault_addr`), which sends every request to the active node, found by the health check Vault
documents for load balancers (`GET /v1/sys/health`: 200 only on the active node, 429 on a standby,
503 sealed). When the active node is lost, a standby is elected within seconds and the balancer
follows it; meanwhile it answers 503. HAProxy is the Debian package (`make haproxy`), run in the
foreground by PID like every lab process.
"""

from __future__ import annotations

import json
import shutil
import urllib.request

from vaultfleet.lab import processes
from vaultfleet.lab.files import write_private
from vaultfleet.lab.record import LabState, VaultNode, http_ok, log, start_process
from vaultfleet.toolchain import MissingTool, search_path

LOAD_BALANCER = "vault-lb"
"""The balancer's process name in lab.json; its config is <lab>/vault-lb.cfg."""


def find_haproxy() -> str:
    found = shutil.which("haproxy", path=f"{search_path()}:/usr/sbin:/usr/local/sbin")
    if not found:
        raise MissingTool("haproxy not found: `lab up --ha` runs it in front of the nodes (`make haproxy`)")
    return found


def join(state: LabState, node: VaultNode, leader: VaultNode, proc: processes.Tracked) -> None:
    """Join `node` to the raft cluster of `leader` (it is unsealed by the caller afterwards)."""
    # Retried: for a moment after its first unseal, Vault 1.14's leader is not ready for joins (404).
    processes.wait_until(
        lambda: _request(node, "POST", "sys/storage/raft/join", {"leader_api_addr": leader.addr})["joined"],
        60,
        f"{node.name} join",
        proc,
    )


def promote_quickly(state: LabState, leader: VaultNode) -> None:
    """Autopilot promotes a joined node to a voter once it has been healthy this long (default 10s)."""
    _request(leader, "POST", "sys/storage/raft/autopilot/configuration", {"server_stabilization_time": "1s"}, state)


def start_load_balancer(state: LabState, haproxy: str, echo) -> None:
    config = state.directory / f"{LOAD_BALANCER}.cfg"
    port = int(state.vault_addr.rsplit(":", 1)[1])
    write_private(config, haproxy_config(port, state.vault_nodes))
    log(f"starting HAProxy ({haproxy}) on {state.vault_addr} in front of the nodes", echo)
    proc = start_process(state, LOAD_BALANCER, [haproxy, "-db", "-f", str(config)])
    processes.wait_until(lambda: http_ok(f"{state.vault_addr}/v1/sys/health"), 30, "load balancer", proc)


def haproxy_config(port: int, nodes: list[VaultNode]) -> str:
    """Active node only (a 200 from sys/health): no dependence on standbys forwarding requests.

    Checks every 250 ms on a node marked down, so a newly elected node takes traffic within a
    quarter second; two failed checks (1 s apart, 250 ms once one failed) take one out. A request in
    flight to a node that dies gets a 502; with no active node the balancer answers 503 itself. A
    connection refused is retried once, on another node if one is up (HAProxy's default, three
    retries a second apart, would hold a client for 3 s on a node that is gone).
    """
    servers = "\n".join(f"  server {n.name} 127.0.0.1:{n.port} check" for n in nodes)
    return f"""global
  maxconn 512

defaults
  mode http
  timeout connect 2s
  timeout client 300s
  timeout server 300s
  timeout check 2s
  retries 1
  option redispatch

frontend vault
  bind 127.0.0.1:{port}
  default_backend active

backend active
  option httpchk GET /v1/sys/health
  http-check expect status 200
  default-server inter 1s fastinter 250ms downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions
{servers}
"""


def leader(state: LabState) -> VaultNode:
    """The active node, as the cluster reports it (sys/leader through the balancer)."""
    with urllib.request.urlopen(f"{state.vault_addr}/v1/sys/leader", timeout=5) as response:  # noqa: S310 - loopback
        address = json.loads(response.read())["leader_address"]
    return next(n for n in state.vault_nodes if n.addr == address)


def standbys(state: LabState) -> list[VaultNode]:
    active = leader(state)
    return [n for n in state.vault_nodes if n != active]


def wait_for_leader(state: LabState, timeout: float = 60) -> VaultNode:
    """Wait until the balancer serves an active node again (after an election), and return it."""
    processes.wait_until(lambda: http_ok(f"{state.vault_addr}/v1/sys/health"), timeout, "a new active node")
    return leader(state)


def voters(state: LabState, node: VaultNode) -> dict[str, bool]:
    """node_id -> whether it votes, from the raft configuration as `node` knows it."""
    answer = _request(node, "GET", "sys/storage/raft/configuration", None, state)
    return {s["node_id"]: s["voter"] for s in answer["data"]["config"]["servers"]}


def _request(node: VaultNode, method: str, path: str, body: dict | None, state: LabState | None = None) -> dict:
    headers = {"X-Vault-Token": state.vault_token()} if state is not None else {}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{node.addr}/v1/{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        return json.loads(response.read() or b"{}")
