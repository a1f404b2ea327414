"""Is the fleet's Vault able to serve a run? Asked before and after each stack's run, so a fleet run
with Vault down or sealed says so per stack instead of dumping provider errors; and, once per Vault
per run, whether it still accepts the run's token."""

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


def token_problem(address: str, token: str | None, timeout: float = 5.0) -> str | None:
    """Why Vault at `address` will not accept `token` (unset, expired, revoked, unknown), or None.

    One authenticated call, `auth/token/lookup-self`, which the default policy grants every token.
    None as well when Vault cannot be asked (down, sealed): `vault_problem` reports that per stack.
    """
    import hvac
    import requests

    if not token:
        return "no Vault token: set VAULT_TOKEN (vaultfleet reads no other token source)"
    try:
        hvac.Client(url=address, token=token, timeout=timeout).auth.token.lookup_self()
    except hvac.exceptions.Forbidden:
        return (
            f"Vault at {address} refused the token in VAULT_TOKEN (auth/token/lookup-self: permission denied): "
            "it is expired, revoked or unknown, or lacks the default policy; get a new one, then rerun"
        )
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError):
        return None  # unreachable, sealed, standby trouble: the per-stack health check says which
    return None
