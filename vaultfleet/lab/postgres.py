"""The lab's PostgreSQL: a real server on 127.0.0.1 for the database secrets engine to manage users in.

A little over 300 lines, on purpose: running it as another user (a root lab) is what no other lab
server needs, and its parts (setpriv, a data directory that user owns, initdb's password file) only
make sense together, so they stay in one module.

Under a root lab, initdb and the server run as the `postgres` system user through `setpriv`, which
execs the server (the PID the lab tracks, and `lab down` stops, is the postmaster itself), with the
data directory outside the lab directory; why, and what users see: docs/lab.md. That directory
belongs to `postgres`, who can plant links in it: root creates, chowns and removes anything there
only relative to a directory fd, never by path (vaultfleet/lab/files.py).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from vaultfleet.lab import files, processes
from vaultfleet.lab.processes import Tracked
from vaultfleet.toolchain import MissingTool

PORT = 18432 + int(os.environ.get("VAULTFLEET_LAB_PORT_OFFSET", "0"))
HOST = "127.0.0.1"
SUPERUSER = "postgres"
DATABASE = "postgres"
PROCESS_NAME = "postgres"
INSTALL_HINT = "apt-get install -y postgresql (or `vaultfleet lab up --no-postgres`)"
TEMP_PREFIX = "vaultfleet-lab-postgres-"
"""Name prefix of a root lab's data directory (a mkdtemp directory the `postgres` user owns)."""
INITDB_PASSWORD = "initdb-password"


@dataclass(frozen=True)
class PostgresServer:
    """The lab's PostgreSQL as lab.json records it. `LabState.postgres` holds one (or None)."""

    host: str
    port: int
    superuser: str
    database: str
    password_file: str
    """0600 file holding the superuser's password."""
    directory: str
    """Directory holding the data directory (`data/`); removed by `lab down`."""
    os_user: str
    """The system user the server runs as."""
    version: str
    """Major version of the server binaries (e.g. '15')."""

    def password(self) -> str:
        return Path(self.password_file).read_text().strip()

    @property
    def data_directory(self) -> Path:
        return Path(self.directory) / "data"

    def connect_kwargs(self, user: str | None = None, password: str | None = None, database: str | None = None) -> dict:
        """Keyword arguments for psycopg.connect / libpq: the superuser unless `user` is given."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": database or self.database,
            "user": user or self.superuser,
            "password": password if user else self.password(),
            "sslmode": "disable",  # loopback only; the lab serves no TLS
            "connect_timeout": 5,
        }

    def vault_connection_url(self, database: str | None = None) -> str:
        """What the database secrets engine's `connection_url` is for this server (Vault's templating)."""
        return f"postgresql://{{{{username}}}}:{{{{password}}}}@{self.host}:{self.port}/{database or self.database}?sslmode=disable"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> PostgresServer:
        return cls(**data)


@dataclass(frozen=True)
class Binaries:
    initdb: str
    postgres: str
    pg_isready: str
    version: str
    createdb: str = ""
    """Used by state_backend.py."""


def find_binaries() -> Binaries:
    """Debian installs each major version in /usr/lib/postgresql/<major>/bin (not on PATH): the newest."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise MissingTool(f"PostgreSQL server not found in /usr/lib/postgresql/*/bin: {INSTALL_HINT}")
    bin_dir = found[-1].parent
    return Binaries(
        initdb=str(bin_dir / "initdb"),
        postgres=str(bin_dir / "postgres"),
        pg_isready=str(bin_dir / "pg_isready"),
        version=bin_dir.parent.name,
        createdb=str(bin_dir / "createdb"),
    )


def server_account() -> pwd.struct_passwd:
    """Who runs the server: the `postgres` system user for a root lab, else the caller."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise MissingTool(f"no `postgres` system user (the Debian package creates it): {INSTALL_HINT}") from None


def start(
    lab_directory: Path,
    binaries: Binaries,
    start_process: Callable[[str, list[str], dict[str, str]], Tracked],
    echo: Callable[[str], None] | None,
) -> PostgresServer:
    """initdb a fresh data directory, start the server, wait until it accepts connections.

    `start_process(name, argv, env)` starts and records a lab process (record.start_process), so that
    `lab down` finds the server even when this function fails half-way.
    """
    account = server_account()
    if echo:
        echo(f"starting postgresql {binaries.version} on {HOST}:{PORT} (as {account.pw_name})")
    directory = _private_directory(lab_directory, account)
    server = PostgresServer(
        host=HOST,
        port=PORT,
        superuser=SUPERUSER,
        database=DATABASE,
        password_file=str(lab_directory / "postgres-password"),
        directory=str(directory),
        os_user=account.pw_name,
        version=binaries.version,
    )
    proc = None
    try:
        files.write_private(Path(server.password_file), secrets.token_urlsafe(32))
        _initdb(server, binaries, account, lab_directory / "logs" / "postgres-initdb.log")
        proc = _start_server(server, binaries, account, start_process)
        processes.wait_until(lambda: healthy(server, binaries), 60, "postgresql", proc, interval=0.2)
    except BaseException:
        # The caller only learns of `server` on success: leave nothing of it behind.
        if proc is not None:
            stop(proc)
        remove(server, lab_directory)
        raise
    return server


def healthy(server: PostgresServer, binaries: Binaries | None = None) -> bool:
    """pg_isready: the server answers the protocol and accepts connections (no login needed)."""
    binaries = binaries or find_binaries()
    result = subprocess.run(
        [binaries.pg_isready, "-q", "-h", server.host, "-p", str(server.port), "-t", "2"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
    )
    return result.returncode == 0


def stop(proc: Tracked, timeout: float = 15.0) -> None:
    """Fast shutdown (SIGINT): SIGTERM is PostgreSQL's *smart* shutdown, which waits for every client
    to disconnect, and Vault keeps its pooled connections open. SIGTERM/SIGKILL if that stalls."""
    if processes.is_running(proc):
        os.kill(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while processes.is_running(proc) and time.monotonic() < deadline:
            time.sleep(0.1)
    processes.stop(proc)  # reaps it, or forces it when fast shutdown did not finish


def remove(server: PostgresServer, lab_directory: Path) -> bool:
    """Remove the data directory when it lives outside the lab dir (the lab dir goes as a whole).

    Outside, it is a mkdtemp directory the server's user owns: removed only when it is still a
    real directory (not a link) of that user (or of the lab's, if the chown never happened), by
    fd-based rmtree (files.remove_tree). False when it was left alone for not being that.
    """
    directory = Path(server.directory)
    if directory.is_relative_to(lab_directory):
        return True
    if not directory.name.startswith(TEMP_PREFIX):
        return False
    owners = {os.geteuid()}
    try:
        owners.add(pwd.getpwnam(server.os_user).pw_uid)
    except KeyError:
        pass
    return files.remove_tree(directory, owners)


def env(server: PostgresServer) -> dict[str, str]:
    """libpq's environment (psql, pg_dump, psycopg) for the lab server; the password stays in its file."""
    return {
        "PGHOST": server.host,
        "PGPORT": str(server.port),
        "PGUSER": server.superuser,
        "PGDATABASE": server.database,
        "PGSSLMODE": "disable",
    }


# --- internals -------------------------------------------------------------------------------


def _start_server(
    server: PostgresServer,
    binaries: Binaries,
    account: pwd.struct_passwd,
    start_process: Callable[[str, list[str], dict[str, str]], Tracked],
) -> Tracked:
    return start_process(
        PROCESS_NAME,
        _as_account(
            account,
            [
                # Work in the server's own directory (the caller's may be closed to its user);
                # env execs the server, so the PID stays the postmaster's.
                shutil.which("env") or "/usr/bin/env",
                f"--chdir={server.directory}",
                binaries.postgres,
                "-D",
                str(server.data_directory),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                f"port={PORT}",
                "-c",
                "unix_socket_directories=",  # TCP on loopback only
                # A throwaway lab database: durability buys nothing here and costs seconds per test.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
        ),
        _server_env(Path(server.directory)),
    )


def _private_directory(lab_directory: Path, account: pwd.struct_passwd) -> Path:
    if account.pw_uid == os.geteuid():
        directory = lab_directory / "postgres"
        directory.mkdir(mode=0o700)
    else:
        # mkdtemp: a new 0700 directory of ours; handed over by fchown on its own fd (O_NOFOLLOW).
        directory = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        with files.open_dir(directory) as d:
            os.fchown(d.fd, account.pw_uid, account.pw_gid)
    return directory


def _as_account(account: pwd.struct_passwd, argv: list[str]) -> list[str]:
    """argv run as `account`: setpriv changes user and groups, then execs argv in the same process."""
    if account.pw_uid == os.geteuid():
        return argv
    return [
        shutil.which("setpriv") or "/usr/bin/setpriv",
        f"--reuid={account.pw_uid}",
        f"--regid={account.pw_gid}",
        "--init-groups",
        "--",
        *argv,
    ]


def _server_env(directory: Path) -> dict[str, str]:
    # Minimal, as for the other lab servers; HOME is the server user's own directory, not root's.
    return {"PATH": "/usr/bin:/bin", "HOME": str(directory), "LC_ALL": "C.UTF-8"}


def _initdb(server: PostgresServer, binaries: Binaries, account: pwd.struct_passwd, log: Path) -> None:
    # initdb reads the superuser password from a file the server user can read; it is removed right
    # after, the lab's copy stays in the root-only password file. The directory is that user's: the
    # file is created and removed relative to the directory's fd, a link planted there is refused
    # (create) or removed itself (unlink), never followed.
    with files.open_dir(Path(server.directory), owners={account.pw_uid}) as directory:
        directory.create(INITDB_PASSWORD, server.password(), owner=(account.pw_uid, account.pw_gid))
        try:
            result = _run_initdb(server, binaries, account, directory.path / INITDB_PASSWORD, log)
        finally:
            directory.unlink(INITDB_PASSWORD)
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed (exit {result.returncode}); last lines of {log}:\n{processes.tail(log)}")


def _run_initdb(
    server: PostgresServer, binaries: Binaries, account: pwd.struct_passwd, pwfile: Path, log: Path
) -> subprocess.CompletedProcess:
    with files.open_append(log) as out:
        return subprocess.run(
            _as_account(
                account,
                [
                    # In the server's own directory, entered as its user (env --chdir after setpriv),
                    # as the server is started.
                    shutil.which("env") or "/usr/bin/env",
                    f"--chdir={server.directory}",
                    binaries.initdb,
                    "-D",
                    str(server.data_directory),
                    f"--username={server.superuser}",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",  # a throwaway lab database (see fsync=off)
                ],
            ),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_server_env(Path(server.directory)),
            timeout=120,
        )
