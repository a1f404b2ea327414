"""Is the fleet's Vault able to serve a run? One question asked before and after each stack's run,
so a fleet run with Vault down or sealed says so per stack instead of dumping provider errors."""

from __future__ import annotations


def vault_problem(address: str, timeout: float = 3.0) -> str | None:
    """Why Vault at `address` cannot serve a run right now (unreachable, sealed, uninitialised), or None.

    Asks the unauthenticated `sys/seal-status`, so no token is needed or sent.
    """
    import hvac
    import requests

    try:
        status = hvac.Client(url=address, timeout=timeout).sys.read_seal_status()
    except requests.exceptions.ConnectionError:
        return f"Vault at {address} is unreachable (connection refused): start it, then rerun"
    except requests.exceptions.Timeout:
        return f"Vault at {address} did not answer within {timeout:.0f}s: check it, then rerun"
    except Exception as exc:  # noqa: BLE001 - any other answer: report it, the run decides
        return f"Vault at {address} answered sys/seal-status with an error: {type(exc).__name__}"
    if not status.get("initialized", True):
        return f"Vault at {address} is not initialised: `vault operator init`, then rerun"
    if status.get("sealed"):
        return f"Vault at {address} is sealed: unseal it (`vault operator unseal`), then rerun"
    return None
