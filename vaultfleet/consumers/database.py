"""Where a role's dynamic PostgreSQL credentials come from and where they connect to.

A cluster's `db-creds` policy grants `<databaseMount>/creds/<role>` for each of its
`vaultfleet:databaseRoles`; the shared stack's `vaultfleet:database` declares that role, the
connection it creates its users through, and the connection's URL. Consumer configuration takes the
host, port, database and parameters from that URL, with Vault's `{{username}}:{{password}}`
replaced by the credentials the consumer reads, so the workload connects to the server Vault
created its user on. Nothing here talks to Vault: it is the same stack files `up` applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from vaultfleet.stackfile import stack_file_name
from vaultfleet.stackfile.schema import ClusterStack, SharedStack

# Key of the PostgreSQL URL in the Secrets external-secrets and VSO write (beside username, password).
DATABASE_URL_KEY = "url"


class DatabaseCredentialsError(ValueError):
    """The stack files disagree about the credentials a role reads; the message names file and field."""


@dataclass(frozen=True)
class PostgresTarget:
    """The server part of a connection's `connectionUrl` (everything after `{{username}}:{{password}}@`)."""

    address: str
    """host:port as written (a multi-host list stays as written; no port: libpq's 5432)."""
    database: str
    """'' when the URL names none (libpq then uses the user name)."""
    query: str
    """Parameters as written (sslmode=...): they are the ones Vault connects with."""

    @classmethod
    def from_connection_url(cls, url: str) -> PostgresTarget:
        parts = urlsplit(url)
        return cls(address=parts.netloc.rpartition("@")[2], database=parts.path.lstrip("/"), query=parts.query)

    def url(self, username: str, password: str) -> str:
        """A postgresql:// URL as a Go template; `username`/`password` are the expressions yielding them.

        Both go through `urlquery`: Vault's generated names and passwords are URL-safe today, but a
        character such as `@`, `/` or `:` would otherwise cut the URL in the wrong place (libpq and
        URL parsers undo the %-escapes). `urlquery` is text/template's own function, so the injector,
        Vault Agent, external-secrets and VSO all have it.
        """
        text = f"postgresql://{{{{ {username} | urlquery }}}}:{{{{ {password} | urlquery }}}}@{self.address}"
        if self.database:
            text += f"/{self.database}"
        if self.query:
            text += f"?{self.query}"
        return text


@dataclass(frozen=True)
class DatabaseCredentials:
    """One database role a binding reads dynamic credentials of, resolved against the shared stack."""

    mount: str
    """The database secrets engine's mount (vaultfleet:databaseMount)."""
    role: str
    """The database role (shared stack's vaultfleet:database.roles[].name)."""
    connection: str
    """The connection the role creates its users through."""
    target: PostgresTarget
    default_ttl: int
    """Lease TTL of the credentials, seconds."""
    max_ttl: int

    @property
    def path(self) -> str:
        return f"{self.mount}/creds/{self.role}"

    @property
    def name(self) -> str:
        """What consumers call it: the rendered file, the Kubernetes Secret and the objects."""
        return f"db-{self.role}"

    def describe(self) -> str:
        where = f"{self.target.address}/{self.target.database}" if self.target.database else self.target.address
        return (
            f"dynamic PostgreSQL credentials at {self.path} (connection {self.connection}: {where}), "
            f"lease {self.default_ttl}s, renewable up to {self.max_ttl}s"
        )


def resolve(cluster: ClusterStack, paths: tuple[str, ...], shared: SharedStack | None) -> list[DatabaseCredentials]:
    """The credentials behind `paths` (`<mount>/creds/<role>`, read by a role of `cluster`).

    Raises DatabaseCredentialsError when the shared stack does not declare what the cluster reads:
    writing a consumer for it would hand the workload a URL with nowhere to connect.
    """
    if not paths:
        return []
    cluster_file = _file(cluster.name)
    wanted = ", ".join(paths)
    if shared is None:
        raise DatabaseCredentialsError(
            f"{cluster_file}: vaultfleet:databaseRoles: {cluster.name} reads {wanted}, but no shared stack "
            "(vaultfleet:kind: shared) in stacks/ declares the database engine (vaultfleet:database)"
        )
    shared_file = _file(shared.name)
    if shared.database is None:
        raise DatabaseCredentialsError(
            f"{shared_file}: vaultfleet:database: not declared, but {cluster_file} reads {wanted} (vaultfleet:databaseRoles)"
        )
    if shared.fleet.database_mount != cluster.fleet.database_mount:
        raise DatabaseCredentialsError(
            f"{shared_file}: vaultfleet:databaseMount: the engine is mounted at '{shared.fleet.database_mount}' but "
            f"{cluster_file} reads it at '{cluster.fleet.database_mount}'; set it once, in Pulumi.yaml"
        )
    roles = {r.name: r for r in shared.database.roles}
    urls = {c.name: c.connection_url for c in shared.database.connections}
    found = []
    for path in paths:
        name = path.rsplit("/", 1)[1]
        role = roles.get(name)
        if role is None:
            raise DatabaseCredentialsError(
                f"{shared_file}: vaultfleet:database.roles: no role '{name}', which {cluster_file} reads "
                f"(vaultfleet:databaseRoles); declared: {', '.join(roles) or 'none'}"
            )
        found.append(
            DatabaseCredentials(
                mount=shared.fleet.database_mount,
                role=name,
                connection=role.connection,
                target=PostgresTarget.from_connection_url(urls[role.connection]),
                default_ttl=role.default_ttl,
                max_ttl=role.max_ttl,
            )
        )
    return found


def _file(stack: str) -> str:
    return stack_file_name(stack)
