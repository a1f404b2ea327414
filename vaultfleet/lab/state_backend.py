"""Pulumi's PostgreSQL state backend on the lab's PostgreSQL: one database every process of the
fleet shares, with the backend's stack locks in it (`vaultfleet lab env --backend postgres`)."""

from __future__ import annotations

import subprocess

from vaultfleet.lab.postgres import Binaries, PostgresServer, find_binaries

# The database Pulumi's PostgreSQL state backend keeps the lab's stacks in (`lab env --backend postgres`).
STATE_DATABASE = "pulumi"


def state_backend_url(server: PostgresServer, database: str = STATE_DATABASE) -> str:
    """A `postgres://` Pulumi backend URL without the password: libpq's PGPASSWORD supplies it, so it
    never appears in an error message that names the backend (a stack lock's path does)."""
    return f"postgres://{server.superuser}@{server.host}:{server.port}/{database}?sslmode=disable"


def ensure_database(server: PostgresServer, database: str = STATE_DATABASE, binaries: Binaries | None = None) -> None:
    """Create `database` (owned by the superuser) unless it exists."""
    binaries = binaries or find_binaries()
    result = subprocess.run(
        [binaries.createdb, "-h", server.host, "-p", str(server.port), "-U", server.superuser, database],
        env={**{"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}, "PGPASSWORD": server.password(), "PGSSLMODE": "disable"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise RuntimeError(f"createdb {database} failed: {result.stderr.strip()}")
