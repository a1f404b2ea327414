"""The stack file schema: what a user may write under `vaultfleet:` in Pulumi.yaml and stacks/.

One loader serves `pulumi up` (values from the engine) and `vaultfleet validate` (values read from
the files), so both reject the same input with the same message: file, field, what is wrong.

A cluster stack file, with everything fleet-wide left to the defaults in Pulumi.yaml:

    config:
      vaultfleet:cluster:
        kubeContext: lab-a
      vaultfleet:roles:
        - name: app
          serviceAccounts: [app]
          namespaces: [app]
          policies: [kv-read]
          audience: vault

The shared stack may own a database secrets engine (PostgreSQL dynamic credentials); its
connection passwords must be Pulumi secrets (`pulumi config set --secret --path ...`):

    config:
      vaultfleet:kind: shared
      vaultfleet:database:
        connections:
          - name: app-db
            connectionUrl: postgresql://{{username}}:{{password}}@db.example:5432/app
            username: vault
            password:
              secure: v1:...
        roles:
          - name: app-readonly
            connection: app-db
            creationStatements:
              - CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
            defaultTtl: 1h
            maxTtl: 24h

A cluster stack names the database roles its `db-creds` policy may read: `vaultfleet:databaseRoles`.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Collection, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

NAMESPACE = "vaultfleet"

# DNS-1123 label: the cluster name becomes part of Vault paths and policy names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_K8S_NAME = re.compile(r"^[a-z0-9*]([-a-z0-9.*]*[a-z0-9*])?$")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL_SECONDS = 90 * 86400  # longer than any sane login token; a typo guard, not a policy


class ConfigError(ValueError):
    """Invalid configuration; `problems` holds one (file, field, message) per error."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {fld}: {msg}" for f, fld, msg in problems))


def _label(value: str) -> str:
    if not _LABEL.match(value) or len(value) > 40:
        raise ValueError("must be a lowercase DNS label (a-z, 0-9, '-'), at most 40 characters")
    return value


def _seconds(value: Any) -> int:
    """Durations as Vault writes them ('90s', '15m', '1h', '7d') or plain seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '1h' or a number of seconds")
    text = str(value).strip()
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration such as '90s', '15m', '1h' or '7d'")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0 or seconds > MAX_TTL_SECONDS:
        raise ValueError(f"must be between 1s and {MAX_TTL_SECONDS // 86400}d")
    return seconds


def _pem(value: str) -> str:
    text = value.strip()
    if not (text.startswith("-----BEGIN CERTIFICATE-----") and text.endswith("-----END CERTIFICATE-----")):
        raise ValueError("must be a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)")
    return text + "\n"


def _url(value: str) -> str:
    if not re.match(r"^https?://[^\s/:]+(:\d{1,5})?(/\S*)?$", value):
        raise ValueError(f"'{value}' is not an http(s) URL")
    return value.rstrip("/")


def _k8s_names(values: list[str]) -> list[str]:
    for v in values:
        if not _K8S_NAME.match(v):
            raise ValueError(f"'{v}' is not a Kubernetes name (or '*')")
    return values


def _postgres_url(value: str) -> str:
    # Never echo the value: a URL with a password in it is exactly what this check refuses.
    scheme, sep, rest = value.partition("://")
    if scheme not in ("postgres", "postgresql") or not sep:
        raise ValueError("must be a postgresql:// URL")
    userinfo, at, hostpart = rest.partition("@")
    if not at or userinfo != "{{username}}:{{password}}" or not hostpart:
        # Vault fills in the templates from `username` and `password`; credentials written into the
        # URL would sit in the stack file and in state in plaintext.
        raise ValueError(
            "must start postgresql://{{username}}:{{password}}@<host>:<port>/ (Vault's templating); "
            "the password belongs in `password`, a Pulumi secret"
        )
    return value


def _statements(values: list[str]) -> list[str]:
    for v in values:
        if not v.strip():
            raise ValueError("a statement is empty")
    return values


Label = Annotated[str, AfterValidator(_label)]
Seconds = Annotated[int, BeforeValidator(_seconds)]
Pem = Annotated[str, AfterValidator(_pem)]
Url = Annotated[str, AfterValidator(_url)]
K8sNames = Annotated[list[str], Field(min_length=1), AfterValidator(_k8s_names)]
PostgresUrl = Annotated[str, AfterValidator(_postgres_url)]
Statements = Annotated[list[str], AfterValidator(_statements)]


class _Model(BaseModel):
    # Unknown keys are errors: a typo such as `audiences` must not silently mean "no audience".
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True)


class ClusterSettings(_Model):
    """How to reach the cluster, from vaultfleet (kube context) and from Vault (host and CA)."""

    kube_context: str = Field(min_length=1)
    """kubeconfig context used to create the reviewer ServiceAccount."""
    api_host: Url | None = None
    """API server URL as Vault reaches it; default: the context's server."""
    ca_cert: Pem | None = None
    """PEM CA of the API server; default: the context's certificate-authority(-data)."""
    issuer: str | None = None
    """ServiceAccount token issuer; when set, Vault checks the token's `iss` claim against it."""
    reviewer_namespace: str = "kube-system"
    reviewer_service_account: str = "vault-auth"


class Role(_Model):
    """A Vault role at the cluster's mount: these ServiceAccounts x namespaces get these policies."""

    name: Label
    service_accounts: K8sNames
    namespaces: K8sNames
    policies: list[Label] = Field(min_length=1)
    """Policy template names (files in policies/); each becomes the policy <mount path>-<name>."""
    ttl: Seconds = 3600
    max_ttl: Seconds | None = None
    audience: str | None = None
    consumers: list[Literal["eso", "vso"]] = Field(default_factory=list)
    """Objects `up` creates in each bound namespace for the role's first ServiceAccount:
    eso (external-secrets SecretStore), vso (Vault Secrets Operator VaultConnection + VaultAuth)."""

    @model_validator(mode="after")
    def _ttl_within_max(self) -> "Role":
        if self.max_ttl is not None and self.ttl > self.max_ttl:
            raise ValueError(f"ttl ({self.ttl}s) is above maxTtl ({self.max_ttl}s)")
        return self

    @model_validator(mode="after")
    def _consumers_need_names(self) -> "Role":
        if self.consumers:
            if len(set(self.consumers)) < len(self.consumers):
                raise ValueError("consumers: each kind once")
            for field, names in (("namespaces", self.namespaces), ("serviceAccounts", self.service_accounts)):
                if all(n == "*" for n in names):
                    raise ValueError(f"consumers: objects go to named {field}, and this role binds only '*'")
        return self


class Fleet(_Model):
    """Fleet-wide settings, normally set once in Pulumi.yaml."""

    vault_address: Url
    mount_prefix: Label = "k8s"
    kv_mount: Label = "kv"
    database_mount: Label = "database"
    """Path of the database secrets engine: the shared stack mounts it, cluster policies point at it."""


class ClusterStack(_Model):
    """A cluster stack: one Kubernetes cluster onboarded to the fleet's Vault."""

    kind: Literal["cluster"] = "cluster"
    name: Label
    fleet: Fleet
    cluster: ClusterSettings
    policies: list[Label] = Field(default_factory=lambda: ["kv-read", "kv-write"])
    """Templates from policies/ rendered for this cluster."""
    roles: list[Role] = Field(default_factory=list)
    database_roles: list[Label] = Field(default_factory=list)
    """Database roles (of the shared stack's engine) whose credentials this cluster's `db-creds`
    policy may read; no others, so a cluster never reads credentials it did not declare."""

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[Role]) -> list[Role]:
        _unique("role", [r.name for r in roles])
        return roles

    @field_validator("database_roles")
    @classmethod
    def _unique_database_roles(cls, names: list[str]) -> list[str]:
        _unique("database role", names)
        return names

    @model_validator(mode="after")
    def _roles_name_rendered_policies(self) -> "ClusterStack":
        for i, role in enumerate(self.roles):
            for p in role.policies:
                if p not in self.policies:
                    raise ValueError(
                        f"roles[{i}].policies: '{p}' is not among this cluster's policies {self.policies}"
                    )
        return self

    @property
    def mount_path(self) -> str:
        return f"{self.fleet.mount_prefix}-{self.name}"

    def policy_name(self, template: str) -> str:
        # Prefixed like the mount, so the provisioner policy can be scoped to `k8s-*` names.
        return f"{self.mount_path}-{template}"


# What a stack file holds for a password set with `pulumi config set --secret`: only `vaultfleet
# validate` sees this form (the engine hands the program the decrypted value). It stands in for the
# password in what validate parses, which never reaches a resource.
ENCRYPTED_IN_STACK_FILE = "(encrypted in the stack file)"


class PostgresConnection(_Model):
    """`vault write <mount>/config/<name> plugin_name=postgresql-database-plugin ...`."""

    name: Label
    """Connection name; roles name it in `connection`."""
    connection_url: PostgresUrl
    """postgresql://{{username}}:{{password}}@host:port/db?sslmode=...; Vault fills in the templates."""
    username: str = Field(min_length=1)
    """PostgreSQL user Vault connects as; it creates and drops the roles' users (CREATEROLE)."""
    password: SecretStr
    """That user's password; must be a Pulumi secret (checked in `parse`)."""

    @field_validator("password")
    @classmethod
    def _password_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value


class DatabaseRole(_Model):
    """`vault write <mount>/roles/<name> db_name=<connection> creation_statements=... ttl=...`."""

    name: Label
    """Role name; credentials are read at <mount>/creds/<name>."""
    connection: Label
    """The connection (by name) the role creates its users through."""
    creation_statements: Statements = Field(min_length=1)
    """SQL run to create a user: {{name}}, {{password}} and {{expiration}} are Vault's templates."""
    revocation_statements: Statements = Field(default_factory=list)
    """SQL run when the lease ends; empty: the plugin's default (revoke privileges, drop the user)."""
    default_ttl: Seconds = 3600
    max_ttl: Seconds = 86400

    @field_validator("creation_statements")
    @classmethod
    def _statements_use_name_and_password(cls, statements: list[str]) -> list[str]:
        text = " ".join(statements)
        missing = [t for t in ("{{name}}", "{{password}}") if t not in text]
        if missing:
            raise ValueError(f"must use {' and '.join(missing)}: Vault fills in the user it hands out")
        return statements

    @model_validator(mode="after")
    def _ttl_within_max(self) -> "DatabaseRole":
        if self.default_ttl > self.max_ttl:
            raise ValueError(f"defaultTtl ({self.default_ttl}s) is above maxTtl ({self.max_ttl}s)")
        return self


class DatabaseEngine(_Model):
    """The database secrets engine of the fleet: PostgreSQL connections and the roles using them.

    A connection allows exactly the roles that name it (never `*`).
    """

    connections: list[PostgresConnection] = Field(min_length=1)
    roles: list[DatabaseRole] = Field(default_factory=list)

    @field_validator("connections")
    @classmethod
    def _unique_connections(cls, connections: list[PostgresConnection]) -> list[PostgresConnection]:
        _unique("connection", [c.name for c in connections])
        return connections

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[DatabaseRole]) -> list[DatabaseRole]:
        _unique("role", [r.name for r in roles])
        return roles

    @model_validator(mode="after")
    def _roles_name_declared_connections(self) -> "DatabaseEngine":
        names = [c.name for c in self.connections]
        for i, role in enumerate(self.roles):
            if role.connection not in names:
                raise ValueError(f"roles[{i}].connection: '{role.connection}' is not among the connections {names}")
        return self

    def allowed_roles(self, connection: str) -> list[str]:
        return [r.name for r in self.roles if r.connection == connection]


class SharedStack(_Model):
    """The shared stack: Vault objects the whole fleet uses (KV v2 mount, provisioner policy,
    optionally the database secrets engine)."""

    kind: Literal["shared"]
    name: Label
    fleet: Fleet
    database: DatabaseEngine | None = None


# Keys a stack file may set under `vaultfleet:` (camelCase, as written in the files).
_FLEET_KEYS = {"vaultAddress", "mountPrefix", "kvMount", "databaseMount"}
_CLUSTER_KEYS = {"cluster", "roles", "policies", "databaseRoles"}
_SHARED_KEYS = {"database"}
_KNOWN_KEYS = _FLEET_KEYS | _CLUSTER_KEYS | _SHARED_KEYS | {"kind"}


def _unique(what: str, names: list[str]) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} '{name}' is declared twice")
        seen.add(name)


def parse(
    values: dict[str, Any], stack: str, source: str, secret_keys: Collection[str] = ()
) -> ClusterStack | SharedStack:
    """Validate the `vaultfleet:` values of one stack (keys without the namespace).

    `source` names the file the errors point at (the stack file). `secret_keys` are the keys the
    engine holds as secrets (`decode_secret_keys`); a password must be one of those, or be written
    as `secure:` ciphertext when the values come straight from a stack file. Raises ConfigError.
    """
    problems: list[tuple[str, str, str]] = []
    for key in values:
        if key not in _KNOWN_KEYS:
            hint = difflib.get_close_matches(key, sorted(_KNOWN_KEYS), n=1)
            problems.append(
                (source, f"{NAMESPACE}:{key}", "unknown key" + (f" (did you mean '{NAMESPACE}:{hint[0]}'?)" if hint else ""))
            )
    if problems:
        raise ConfigError(problems)

    document = {
        "kind": values.get("kind", "cluster"),
        "name": stack,
        "fleet": {k: values[k] for k in _FLEET_KEYS if k in values},
    }
    if document["kind"] == "shared":
        extra = sorted(k for k in _CLUSTER_KEYS if k in values)
        if extra:
            raise ConfigError([(source, f"{NAMESPACE}:{k}", "not allowed in the shared stack") for k in extra])
        if "database" in values:
            document["database"] = _database_passwords(values["database"], "database" in secret_keys, source)
        model: type[ClusterStack | SharedStack] = SharedStack
    else:
        extra = sorted(k for k in _SHARED_KEYS if k in values)
        if extra:
            raise ConfigError(
                [(source, f"{NAMESPACE}:{k}", "only the shared stack (vaultfleet:kind: shared) may declare it") for k in extra]
            )
        document.update({k: values[k] for k in _CLUSTER_KEYS if k in values})
        model = ClusterStack
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ConfigError([(source, _field_name(e["loc"]), _message(e)) for e in exc.errors()]) from None


def _database_passwords(database: Any, held_secret: bool, source: str) -> Any:
    """Refuse a connection password that is not a Pulumi secret, before anything else is checked.

    From the engine, a password is plaintext and `held_secret` says whether the engine holds the
    `vaultfleet:database` value as a secret (it does when any field in it was set with --secret).
    From a stack file (`vaultfleet validate`), the password itself must be `secure:` ciphertext.
    """
    if not isinstance(database, dict) or not isinstance(database.get("connections"), list):
        return database  # the schema names what is wrong with the shape
    problems = []
    connections = []
    for i, connection in enumerate(database["connections"]):
        if isinstance(connection, dict) and "password" in connection:
            password = connection["password"]
            if isinstance(password, dict) and set(password) == {"secure"}:
                connection = {**connection, "password": ENCRYPTED_IN_STACK_FILE}
            elif not held_secret:
                problems.append(
                    (
                        source,
                        f"{NAMESPACE}:database.connections[{i}].password",
                        "must be a Pulumi secret, not plaintext: "
                        f"pulumi config set --secret --path '{NAMESPACE}:database.connections[{i}].password' <value>",
                    )
                )
        connections.append(connection)
    if problems:
        raise ConfigError(problems)
    return {**database, "connections": connections}


def _field_name(loc: tuple) -> str:
    """('roles', 0, 'maxTtl') -> 'vaultfleet:roles[0].maxTtl'; fleet keys sit at the top level."""
    parts = [p for p in loc if p not in ("fleet",) and not str(p).startswith(("function-", "constrained-"))]
    if not parts:
        return f"{NAMESPACE}"
    text = f"{NAMESPACE}:{parts[0]}"
    for p in parts[1:]:
        text += f"[{p}]" if isinstance(p, int) else f".{p}"
    return text


def _message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    msg = error["msg"]
    return msg.removeprefix("Value error, ")


def decode_engine_config(raw: dict[str, str]) -> dict[str, Any]:
    """The engine passes config as 'namespace:key' -> string (objects and lists as JSON)."""
    values: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    for key, text in raw.items():
        if not key.startswith(prefix):
            continue
        try:
            values[key[len(prefix):]] = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            values[key[len(prefix):]] = text
    return values


def decode_secret_keys(keys: list[str]) -> frozenset[str]:
    """The engine's secret config keys ('namespace:key'), as keys of the `vaultfleet:` namespace."""
    prefix = f"{NAMESPACE}:"
    return frozenset(k[len(prefix):] for k in keys if k.startswith(prefix))


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / "stacks" / f"Pulumi.{stack}.yaml"
