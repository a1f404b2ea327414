"""The lifecycle of the lab's Vault-compatible server (OpenBao or HashiCorp Vault, see servers.py).

A real (non-dev) server on file storage, initialised and unsealed over the HTTP API: it survives
a restart and can be sealed, so the tests can seal it or take it down in the middle of a fleet run
(`seal_vault`, `unseal_vault`, `stop_vault`, `start_vault`) and bring it back on its data.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from vaultfleet.lab import processes, servers
from vaultfleet.lab.files import write_private
from vaultfleet.lab.record import VAULT_PORT, LabState, http_ok, log, start_process, tracked, write_secret
from vaultfleet.toolchain import MissingTool, find_tool


def find_server(server: servers.ServerKind) -> str:
    try:
        return find_tool(server.binary)
    except MissingTool as exc:
        raise MissingTool(f"{exc} ({server.product}: `{server.build}`)") from None


def start(state: LabState, binary: str, echo) -> None:
    """A real (non-dev) server on file storage: it survives a restart and can be sealed, so the
    lab can take Vault down or seal it in the middle of a run, as production Vaults do. Its root
    token is generated at init and written to a 0600 file, never printed (a dev server logs it)."""
    first_start = not state.vault_config.exists()
    if first_start:
        write_private(
            state.vault_config, servers.config_hcl(str(state.directory / "vault-data"), VAULT_PORT, state.vault_addr)
        )
    log(f"starting {state.server.product} ({binary}) on {state.vault_addr}", echo)
    proc = start_process(state, "vault", [binary, "server", f"-config={state.vault_config}"])
    processes.wait_until(lambda: _http_answers(f"{state.vault_addr}/v1/sys/seal-status"), 60, "vault server", proc)
    if first_start:
        _initialise_vault(state)
    unseal_vault(state)
    processes.wait_until(lambda: http_ok(f"{state.vault_addr}/v1/sys/health"), 60, "vault unseal", proc)
    if not state.vault_version:
        state.vault_version = _server_version(state)
        state.save()


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
    proc = tracked(state, "vault")
    processes.stop(proc)
    state.processes.remove(proc)
    state.save()


def start_vault(state: LabState, echo=None) -> None:
    """Start the lab's Vault again on its data and unseal it: the same binary `up` started."""
    start(state, state.vault_cli, echo)


def _server_version(state: LabState) -> str:
    import hvac

    return str(hvac.Client(url=state.vault_addr).sys.read_seal_status().get("version", ""))


def _initialise_vault(state: LabState) -> None:
    import hvac

    keys = hvac.Client(url=state.vault_addr).sys.initialize(secret_shares=1, secret_threshold=1)
    write_secret(state.token_file, keys["root_token"])
    write_secret(state.unseal_key_file, keys["keys_base64"][0])


def _http_answers(url: str) -> bool:
    """Any HTTP answer at all (Vault answers sys/seal-status before init and while sealed)."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback only
            return True
    except urllib.error.HTTPError:
        return True
