"""The Vault-compatible servers the lab can run: OpenBao (the default) and HashiCorp Vault.

Both are started the same way: `<binary> server -config=vault.hcl`, a real (non-dev) server on
file storage, initialised and unsealed over the HTTP API by the lab (vaultfleet/lab/vault.py). Both
binaries are also the CLI (`bao read ...`, `vault read ...`) and carry the `agent` subcommand, so
the lab records which binary it runs (`LabState.vault_cli`, `$VAULT_CLI` in `lab env`) and the
tests use that one rather than a hard-coded name.

The choice is read at the edges only (`vaultfleet lab up --server`, `$VAULTFLEET_LAB_SERVER` in the
CLI and the test fixtures) and passed in as a `ServerKind`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_VAR = "VAULTFLEET_LAB_SERVER"
DEFAULT = "openbao"


@dataclass(frozen=True)
class ServerKind:
    name: str
    """What `--server` and $VAULTFLEET_LAB_SERVER take; recorded in lab.json as `vault_server`."""
    binary: str
    """Executable in the tool cache (server, CLI and agent in one)."""
    product: str
    banner: str
    """How `<binary> version` starts: "<banner> v<version> (<commit>)..."."""
    build: str
    """The command that puts `binary` into the tool cache, for the missing-tool error."""


SERVERS: dict[str, ServerKind] = {
    "openbao": ServerKind("openbao", "bao", "OpenBao", "OpenBao", "bash tools/build-vault-server.sh openbao"),
    "vault": ServerKind("vault", "vault", "HashiCorp Vault", "Vault", "bash tools/build-vault-server.sh vault"),
}

# lab.json written before the lab could choose recorded the binary's name ("bao") instead.
_LEGACY_NAMES = {"bao": "openbao"}


def server_kind(name: str, source: str = "--server") -> ServerKind:
    """The server called `name`; a clear error naming `source` and the choices otherwise."""
    key = _LEGACY_NAMES.get(name, name)
    if key not in SERVERS:
        raise ValueError(f"{source}: unknown lab server {name!r}; choose one of {', '.join(SERVERS)}")
    return SERVERS[key]


def from_env(environ: Mapping[str, str] | None = None) -> ServerKind:
    """The server $VAULTFLEET_LAB_SERVER names (default openbao); empty counts as unset."""
    environ = os.environ if environ is None else environ
    return server_kind(environ.get(ENV_VAR) or DEFAULT, source=f"${ENV_VAR}")


def config_hcl(data_dir: str, port: int) -> str:
    """Server config, the same for both servers.

    Every key here means the same in OpenBao 2.4 and Vault 1.14: file storage, one plain-HTTP
    listener on loopback, `api_addr` (what the server tells clients to use), `disable_mlock` (the
    lab's processes need no locked memory, and mlock needs CAP_IPC_LOCK when not root), no web
    UI (neither build has one). Both also listen for cluster traffic on the listener's port + 1
    (127.0.0.1 only, derived from `address`), which is why the lab checks that port is free too.
    """
    return (
        f'storage "file" {{\n  path = "{data_dir}"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        f'api_addr = "http://127.0.0.1:{port}"\n'
        "disable_mlock = true\n"
        "ui = false\n"
    )


def raft_config_hcl(data_dir: str, node_id: str, port: int) -> str:
    """Config of one node of an HA cluster (`lab up --ha`), the same for both servers: integrated
    storage (raft), the API on `port` and cluster traffic (raft, request forwarding; TLS the servers
    set up themselves) on `port` + 1, both on loopback. `performance_multiplier = 1` is the
    production timing the docs recommend (the default 5 stretches a leader election to tens of
    seconds). Nodes join the first one over the API (`sys/storage/raft/join`, vaultfleet/lab/ha.py),
    so no `retry_join` here."""
    return (
        f'storage "raft" {{\n  path = "{data_dir}"\n  node_id = "{node_id}"\n  performance_multiplier = 1\n'
        '  autopilot_reconcile_interval = "1s"\n  autopilot_update_interval = "1s"\n}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  cluster_address = "127.0.0.1:{port + 1}"\n'
        "  tls_disable = true\n}\n"
        f'api_addr = "http://127.0.0.1:{port}"\n'
        f'cluster_addr = "https://127.0.0.1:{port + 1}"\n'
        "disable_mlock = true\n"
        "ui = false\n"
    )
