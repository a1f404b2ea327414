"""Stack file schema: valid input parses, bad input is rejected naming file and field."""

import pytest

from vaultfleet.project.schema import ClusterStack, ConfigError, SharedStack, parse

FILE = "stacks/Pulumi.lab-a.yaml"
FLEET = {"vaultAddress": "http://127.0.0.1:18200", "mountPrefix": "k8s", "kvMount": "kv"}


def role(**overrides):
    base = {
        "name": "app",
        "serviceAccounts": ["app"],
        "namespaces": ["app"],
        "policies": ["kv-read"],
        "audience": "vault",
    }
    base.update(overrides)
    return base


def cluster_values(**overrides):
    values = {**FLEET, "cluster": {"kubeContext": "lab-a"}, "roles": [role()]}
    values.update(overrides)
    return values


def test_minimal_cluster_stack_gets_fleet_defaults():
    stack = parse(cluster_values(), "lab-a", FILE)
    assert isinstance(stack, ClusterStack)
    assert stack.mount_path == "k8s-lab-a"
    assert stack.policy_name("kv-read") == "k8s-lab-a-kv-read"
    assert stack.policies == ["kv-read", "kv-write"]
    assert stack.roles[0].ttl == 3600
    assert stack.cluster.reviewer_namespace == "kube-system"


def test_durations_accept_vault_units():
    stack = parse(cluster_values(roles=[role(ttl="15m", maxTtl="2h")]), "lab-a", FILE)
    assert (stack.roles[0].ttl, stack.roles[0].max_ttl) == (900, 7200)


def test_shared_stack():
    stack = parse({**FLEET, "kind": "shared"}, "vault", "stacks/Pulumi.vault.yaml")
    assert isinstance(stack, SharedStack)


def problems(values, stack="lab-a"):
    with pytest.raises(ConfigError) as info:
        parse(values, stack, FILE)
    return info.value.problems


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        (cluster_values(role=[]), "vaultfleet:role", "did you mean 'vaultfleet:roles'"),
        (cluster_values(roles=[role(audiences="vault")]), "vaultfleet:roles[0].audiences", "unknown field"),
        (cluster_values(roles=[role(policy=["kv-read"])]), "vaultfleet:roles[0].policy", "unknown field"),
        (cluster_values(roles=[role(ttl="-5m")]), "vaultfleet:roles[0].ttl", "not a duration"),
        (cluster_values(roles=[role(ttl="365d")]), "vaultfleet:roles[0].ttl", "between 1s"),
        (cluster_values(roles=[role(ttl="2h", maxTtl="1h")]), "vaultfleet:roles[0]", "above maxTtl"),
        (cluster_values(roles=[role(namespaces=[])]), "vaultfleet:roles[0].namespaces", "at least 1"),
        (cluster_values(roles=[role(name="App_1")]), "vaultfleet:roles[0].name", "DNS label"),
        (cluster_values(roles=[role(policies=["nope"])]), "vaultfleet", "'nope' is not among"),
        (cluster_values(roles=[role(), role()]), "vaultfleet:roles", "declared twice"),
        (cluster_values(roles="app"), "vaultfleet:roles", "valid list"),
        (cluster_values(cluster={}), "vaultfleet:cluster.kubeContext", "required"),
        (
            cluster_values(cluster={"kubeContext": "x", "apiHost": "ftp://h"}),
            "vaultfleet:cluster.apiHost",
            "not an http",
        ),
        (cluster_values(cluster={"kubeContext": "x", "caCert": "hello"}), "vaultfleet:cluster.caCert", "PEM"),
        ({**cluster_values(), "vaultAddress": "not a url"}, "vaultfleet:vaultAddress", "not an http"),
        ({k: v for k, v in cluster_values().items() if k != "vaultAddress"}, "vaultfleet:vaultAddress", "required"),
        ({**FLEET, "kind": "shared", "roles": []}, "vaultfleet:roles", "not allowed in the shared stack"),
    ],
)
def test_bad_input_names_file_and_field(values, field, fragment):
    found = problems(values)
    assert any(f == FILE and fld == field and fragment in msg for f, fld, msg in found), found


def test_invalid_stack_name():
    assert problems(cluster_values(), stack="Lab_A")[0][1] == "vaultfleet:name"


# --- database secrets engine (shared stack) and databaseRoles (cluster stacks) -------------------

SHARED_FILE = "stacks/Pulumi.vault.yaml"
PG_URL = "postgresql://{{username}}:{{password}}@127.0.0.1:18432/postgres?sslmode=disable"
CREATE = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]
PASSWORD = "correct-horse-battery-staple"


def connection(**overrides):
    base = {"name": "app-db", "connectionUrl": PG_URL, "username": "vault", "password": PASSWORD}
    base.update(overrides)
    return base


def db_role(**overrides):
    base = {"name": "app-readonly", "connection": "app-db", "creationStatements": CREATE}
    base.update(overrides)
    return base


def shared_values(database=None, **overrides):
    database = database if database is not None else {"connections": [connection()], "roles": [db_role()]}
    return {**FLEET, "kind": "shared", "database": database, **overrides}


def parse_shared(values, secret_keys=("database",)):
    """As from the engine: the password set with --secret makes `vaultfleet:database` a secret key."""
    return parse(values, "vault", SHARED_FILE, secret_keys)


def test_database_engine_parses_with_defaults():
    stack = parse_shared(shared_values())
    assert stack.fleet.database_mount == "database"
    (conn,) = stack.database.connections
    assert conn.password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(stack)  # pydantic SecretStr: never in a repr or traceback
    (role,) = stack.database.roles
    assert (role.default_ttl, role.max_ttl, role.revocation_statements) == (3600, 86400, [])
    assert stack.database.allowed_roles("app-db") == ["app-readonly"]


def test_connection_allows_exactly_the_roles_naming_it():
    database = {
        "connections": [connection(), connection(name="reports-db")],
        "roles": [db_role(), db_role(name="reporting", connection="reports-db"), db_role(name="app-rw")],
    }
    stack = parse_shared(shared_values(database))
    assert stack.database.allowed_roles("app-db") == ["app-readonly", "app-rw"]
    assert stack.database.allowed_roles("reports-db") == ["reporting"]


def test_shared_stack_without_database_has_none():
    assert parse_shared({**FLEET, "kind": "shared"}).database is None


def test_password_as_written_in_a_stack_file_is_accepted_encrypted():
    """`vaultfleet validate` reads the file itself: a `secure:` value is the ciphertext."""
    stack = parse(shared_values({"connections": [connection(password={"secure": "v1:abc"})]}), "vault", SHARED_FILE)
    assert stack.database.connections[0].password.get_secret_value() == "(encrypted in the stack file)"


@pytest.mark.parametrize("password", [PASSWORD, 12345])
def test_plaintext_password_is_refused_naming_file_and_field(password):
    values = shared_values({"connections": [connection(password=password)]})
    with pytest.raises(ConfigError) as info:
        parse(values, "vault", SHARED_FILE, secret_keys=())
    ((file, field, message),) = info.value.problems
    assert (file, field) == (SHARED_FILE, "vaultfleet:database.connections[0].password")
    assert "must be a Pulumi secret" in message and "--secret --path" in message
    assert str(password) not in message


def test_decode_secret_keys_keeps_the_vaultfleet_namespace_only():
    from vaultfleet.project.schema import decode_secret_keys

    assert decode_secret_keys(["vaultfleet:database", "vault:token", "other:database"]) == {"database"}


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        (shared_values({"connections": []}), "vaultfleet:database.connections", "at least 1"),
        (
            shared_values({"connections": [connection(allowedRoles=["*"])]}),
            "vaultfleet:database.connections[0].allowedRoles",
            "unknown field",
        ),
        (
            shared_values({"connections": [connection(connectionURL=PG_URL)]}),
            "vaultfleet:database.connections[0].connectionURL",
            "unknown field",
        ),
        (shared_values({"connection": []}), "vaultfleet:database.connection", "unknown field"),
        (
            shared_values({"connections": [connection(connectionUrl="mysql://{{username}}:{{password}}@h/db")]}),
            "vaultfleet:database.connections[0].connectionUrl",
            "postgresql://",
        ),
        (
            shared_values({"connections": [connection(connectionUrl="postgresql://vault:hunter2@h:5432/db")]}),
            "vaultfleet:database.connections[0].connectionUrl",
            "{{username}}:{{password}}",
        ),
        (
            shared_values({"connections": [connection(connectionUrl="postgresql://h:5432/db")]}),
            "vaultfleet:database.connections[0].connectionUrl",
            "Vault's templating",
        ),
        (
            shared_values({"connections": [connection(username="")]}),
            "vaultfleet:database.connections[0].username",
            "at least 1",
        ),
        (
            shared_values({"connections": [connection(password="")]}),
            "vaultfleet:database.connections[0].password",
            "must not be empty",
        ),
        (
            shared_values({"connections": [connection(name="App_DB")]}),
            "vaultfleet:database.connections[0].name",
            "DNS label",
        ),
        (
            shared_values({"connections": [connection(), connection()]}),
            "vaultfleet:database.connections",
            "declared twice",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(), db_role()]}),
            "vaultfleet:database.roles",
            "declared twice",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(connection="other")]}),
            "vaultfleet:database",
            "roles[0].connection: 'other' is not among",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(creationStatements=[])]}),
            "vaultfleet:database.roles[0].creationStatements",
            "at least 1",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(creationStatements=["CREATE ROLE x;"])]}),
            "vaultfleet:database.roles[0].creationStatements",
            "{{name}} and {{password}}",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(creationStatements="CREATE ROLE")]}),
            "vaultfleet:database.roles[0].creationStatements",
            "valid list",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(revocationStatements=[" "])]}),
            "vaultfleet:database.roles[0].revocationStatements",
            "statement is empty",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(defaultTtl="2d", maxTtl="1d")]}),
            "vaultfleet:database.roles[0]",
            "above maxTtl",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(defaultTtl="soon")]}),
            "vaultfleet:database.roles[0].defaultTtl",
            "not a duration",
        ),
        (
            shared_values({"connections": [connection()], "roles": [db_role(default_ttl="1h")]}),
            "vaultfleet:database.roles[0].default_ttl",
            "unknown field",
        ),
        (shared_values("postgres"), "vaultfleet:database", "valid dictionary"),
        (shared_values(databaseMount="Database"), "vaultfleet:databaseMount", "DNS label"),
    ],
)
def test_bad_database_input_names_file_and_field(values, field, fragment):
    with pytest.raises(ConfigError) as info:
        parse_shared(values)
    found = info.value.problems
    assert any(f == SHARED_FILE and fld == field and fragment in msg for f, fld, msg in found), found
    assert not any(PASSWORD in msg or "hunter2" in msg for _, _, msg in found)


def test_cluster_stack_names_its_database_roles():
    stack = parse(cluster_values(databaseRoles=["app-readonly"], policies=["kv-read", "db-creds"]), "lab-a", FILE)
    assert stack.database_roles == ["app-readonly"]
    assert parse(cluster_values(), "lab-a", FILE).database_roles == []


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        (cluster_values(databaseRoles="app-readonly"), "vaultfleet:databaseRoles", "valid list"),
        (cluster_values(databaseRoles=["App"]), "vaultfleet:databaseRoles[0]", "DNS label"),
        (cluster_values(databaseRoles=["a", "a"]), "vaultfleet:databaseRoles", "declared twice"),
        (cluster_values(databaseRole=["a"]), "vaultfleet:databaseRole", "did you mean 'vaultfleet:databaseRoles'"),
        (cluster_values(database={"connections": []}), "vaultfleet:database", "only the shared stack"),
    ],
)
def test_bad_cluster_database_input_names_file_and_field(values, field, fragment):
    found = problems(values)
    assert any(f == FILE and fld == field and fragment in msg for f, fld, msg in found), found


def test_shared_stack_refuses_database_roles():
    with pytest.raises(ConfigError) as info:
        parse_shared({**shared_values(), "databaseRoles": ["a"]})
    assert info.value.problems == [(SHARED_FILE, "vaultfleet:databaseRoles", "not allowed in the shared stack")]


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"consumers": ["vso", "injector"]}, "vaultfleet:roles[0].consumers[1]", "'eso' or 'vso'"),
        ({"consumers": ["vso", "vso"]}, "vaultfleet:roles[0]", "each kind once"),
        ({"consumers": ["eso"], "namespaces": ["*"]}, "vaultfleet:roles[0]", "named namespaces"),
        ({"consumers": ["eso"], "serviceAccounts": ["*"]}, "vaultfleet:roles[0]", "named serviceAccounts"),
    ],
)
def test_role_consumers_are_checked(overrides, field, fragment):
    with pytest.raises(ConfigError) as info:
        parse(cluster_values(roles=[role(**overrides)]), "lab-a", FILE)
    ((file, fld, message),) = info.value.problems
    assert (file, fld) == (FILE, field) and fragment in message, info.value.problems


# --- values checked against what Kubernetes, Vault and PostgreSQL accept (issue 13) ---------------


def cluster(**settings):
    return cluster_values(cluster={"kubeContext": "lab-a", **settings})


def accepted(values, stack="lab-a"):
    return parse(values, stack, FILE)


def refused(values, field, fragment, stack="lab-a"):
    found = problems(values, stack)
    assert any(f == FILE and fld == field and fragment in msg for f, fld, msg in found), found


def test_namespace_names_are_dns_labels_of_at_most_63():
    assert accepted(cluster_values(roles=[role(namespaces=["n" * 63])])).roles[0].namespaces == ["n" * 63]
    refused(cluster_values(roles=[role(namespaces=["n" * 64])]), "vaultfleet:roles[0].namespaces", "at most 63")
    refused(cluster_values(roles=[role(namespaces=["team.a"])]), "vaultfleet:roles[0].namespaces", "DNS-1123 label")
    refused(cluster_values(roles=[role(namespaces=["-app"])]), "vaultfleet:roles[0].namespaces", "DNS-1123 label")
    assert accepted(cluster(reviewerNamespace="n" * 63)).cluster.reviewer_namespace == "n" * 63
    refused(cluster(reviewerNamespace="n" * 64), "vaultfleet:cluster.reviewerNamespace", "at most 63")
    refused(cluster(reviewerNamespace="Kube_System"), "vaultfleet:cluster.reviewerNamespace", "namespace name")


def test_service_account_names_are_dns_subdomains_of_at_most_253():
    dotted = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253 characters
    assert len(dotted) == 253
    assert accepted(cluster_values(roles=[role(serviceAccounts=[dotted])])).roles[0].service_accounts == [dotted]
    for bad in ("a" * 254, "a..b", "a.", ".a", "App", "a_b"):
        refused(cluster_values(roles=[role(serviceAccounts=[bad])]), "vaultfleet:roles[0].serviceAccounts", "subdomain")


def test_reviewer_account_leaves_room_for_its_token_secret():
    # The token Secret is `<account>-token`, a DNS-1123 subdomain too: 247 + 6 = 253.
    assert accepted(cluster(reviewerServiceAccount="a" * 247)).cluster.reviewer_service_account == "a" * 247
    refused(cluster(reviewerServiceAccount="a" * 248), "vaultfleet:cluster.reviewerServiceAccount", "at most 247")
    refused(cluster(reviewerServiceAccount="vault..auth"), "vaultfleet:cluster.reviewerServiceAccount", "subdomain")


@pytest.mark.parametrize("field", ["serviceAccounts", "namespaces"])
def test_star_means_any_only_alone(field):
    assert getattr(accepted(cluster_values(roles=[role(**{field: ["*"]})])).roles[0], _snake(field)) == ["*"]
    where = f"vaultfleet:roles[0].{field}"
    refused(cluster_values(roles=[role(**{field: ["*", "app"]})]), where, "stands alone")
    for pattern in ("app-*", "*-app", "a*b", "**"):
        refused(cluster_values(roles=[role(**{field: [pattern]})]), where, "only alone")


def _snake(name):
    return {"serviceAccounts": "service_accounts", "namespaces": "namespaces"}[name]


def test_kube_context_is_any_name_without_control_characters():
    for name in ("arn:aws:eks:eu-west-1:123456789012:cluster/prod", "gke_proj_europe-west1_prod", "my context"):
        assert accepted(cluster_values(cluster={"kubeContext": name})).cluster.kube_context == name
    for bad in ("lab\ta", "lab-a\n", "lab\x00a", " lab-a", "lab-a "):
        refused(cluster_values(cluster={"kubeContext": bad}), "vaultfleet:cluster.kubeContext", "")


@pytest.mark.parametrize(
    "issuer",
    [
        "https://kubernetes.default.svc.cluster.local",
        "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        "https://eastus.oic.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/11111111/",
        "https://127.0.0.1:6443",
        "http://kubernetes.default.svc",
        "kubernetes/serviceaccount",
    ],
)
def test_issuer_accepts_urls_and_the_legacy_issuer_exactly_as_written(issuer):
    assert accepted(cluster(issuer=issuer)).cluster.issuer == issuer  # a trailing slash is kept


@pytest.mark.parametrize(
    ("issuer", "fragment"),
    [
        ("kubernetes.default.svc.cluster.local", "not an issuer URL"),
        ("api", "not an issuer URL"),
        ("https://", "not an issuer URL"),
        ("urn:kubernetes", "not an issuer URL"),
        ("https://kubernetes.default.svc cluster", "spaces"),
        ("https://issuer.example/?a=1", "no query or fragment"),
        ("", "must not be empty"),
    ],
)
def test_issuer_refuses_what_no_token_would_carry(issuer, fragment):
    refused(cluster(issuer=issuer), "vaultfleet:cluster.issuer", fragment)


def test_audience_must_be_a_real_claim_value():
    assert accepted(cluster_values(roles=[role(audience="https://vault.example.com")])).roles[0].audience
    assert accepted(cluster_values(roles=[role(audience=None)])).roles[0].audience is None
    for bad in ("", " ", "my vault", "vault\n"):
        refused(cluster_values(roles=[role(audience=bad)]), "vaultfleet:roles[0].audience", "non-empty audience")


# Transport: plain http only to loopback, unless vaultfleet:allowInsecureHttp opts in.

LOOPBACK = ["http://127.0.0.1:18200", "http://127.5.6.7:8200", "http://localhost:8200", "http://[::1]:8200"]
REMOTE = ["http://vault.example.com:8200", "http://10.0.0.5:8200", "http://[2001:db8::1]:8200", "http://128.0.0.1"]


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_http_is_accepted(address):
    assert accepted({**cluster_values(), "vaultAddress": address}).fleet.vault_address == address
    assert accepted(cluster(apiHost=address.replace("8200", "6443"))).cluster.api_host


@pytest.mark.parametrize("address", REMOTE)
def test_http_to_a_remote_host_is_refused_unless_allowed(address):
    refused({**cluster_values(), "vaultAddress": address}, "vaultfleet:vaultAddress", "allowInsecureHttp")
    refused(cluster(apiHost=address), "vaultfleet:cluster.apiHost", "allowInsecureHttp")

    for flag in (True, "true"):  # from a stack file, or from the engine (config values as strings)
        stack = accepted({**cluster(apiHost=address), "vaultAddress": address, "allowInsecureHttp": flag})
        assert (stack.fleet.vault_address, stack.cluster.api_host) == (address, address)
        assert stack.fleet.allow_insecure_http is True


def test_allow_insecure_http_false_allows_nothing_and_must_be_a_boolean():
    refused(
        {**cluster_values(), "vaultAddress": REMOTE[0], "allowInsecureHttp": False},
        "vaultfleet:vaultAddress",
        "allowInsecureHttp",
    )
    for bad in ("yes", 1, "True", ["true"]):
        refused({**cluster_values(), "allowInsecureHttp": bad}, "vaultfleet:allowInsecureHttp", "true or false")
    # An invalid opt-in allows nothing: the address is refused too.
    refused({**cluster_values(), "vaultAddress": REMOTE[0], "allowInsecureHttp": "yes"}, "vaultfleet:vaultAddress", "")


def test_shared_stack_checks_the_vault_address_alike():
    with pytest.raises(ConfigError) as info:
        parse({**FLEET, "kind": "shared", "vaultAddress": REMOTE[0]}, "vault", SHARED_FILE)
    assert info.value.problems[0][:2] == (SHARED_FILE, "vaultfleet:vaultAddress")
    stack = parse({**FLEET, "kind": "shared", "vaultAddress": REMOTE[0], "allowInsecureHttp": True}, "vault", "f")
    assert stack.fleet.vault_address == REMOTE[0]


def test_https_urls_with_paths_ports_and_ipv6_are_accepted():
    for address in (
        "https://vault.example.com",
        "https://vault.example.com:8200/",
        "https://rancher.example.com/k8s/clusters/c-m-abc12",
        "https://[2001:db8::1]:6443",
        "https://10.20.0.1:65535",
    ):
        assert accepted(cluster(apiHost=address)).cluster.api_host == address.rstrip("/")


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("https://10.0.0.1:0", "between 1 and 65535"),
        ("https://10.0.0.1:65536", "between 1 and 65535"),
        ("https://10.0.0.256", "not an IPv4 address"),
        ("https://[::zz]:6443", "not an IPv6 address"),
        ("https://-api.example.com", "not a host name"),
        ("https://a..b", "not a host name"),
        ("https://:6443", "not a host name"),
        ("https://ops:pw@api.example.com", "credentials"),
        ("https://api.example.com/#x", "query or fragment"),
        ("https://api.example.com /x", "spaces"),
    ],
)
def test_bad_urls_say_what_is_wrong(address, fragment):
    refused(cluster(apiHost=address), "vaultfleet:cluster.apiHost", fragment)


# caCert: a PEM that parses as X.509, only certificates, not all expired.


def test_ca_cert_parses_as_x509():
    from tests.bad_inputs import certificate_pem

    pem = certificate_pem()
    assert accepted(cluster(caCert=pem)).cluster.ca_cert == pem
    bundle = pem + certificate_pem(expired=True)  # a bundle with one valid certificate is usable
    assert accepted(cluster(caCert=bundle)).cluster.ca_cert == bundle
    refused(
        cluster(caCert="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        "vaultfleet:cluster.caCert",
        "X.509",
    )
    refused(cluster(caCert=certificate_pem(expired=True)), "vaultfleet:cluster.caCert", "expired on")
    key = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"
    refused(cluster(caCert=pem + key), "vaultfleet:cluster.caCert", "EC PRIVATE KEY block")


# Names Vault derives from the fleet keys.


def test_mounts_vault_reserves_or_that_collide_are_refused():
    for reserved in ("sys", "auth", "identity", "cubbyhole", "audit"):
        refused({**cluster_values(), "kvMount": reserved}, "vaultfleet:kvMount", "reserves")
        refused({**cluster_values(), "databaseMount": reserved}, "vaultfleet:databaseMount", "reserves")
    refused(
        {**cluster_values(), "kvMount": "secrets", "databaseMount": "secrets"}, "vaultfleet:databaseMount", "kvMount"
    )
    assert accepted({**cluster_values(), "kvMount": "secrets"}).fleet.kv_mount == "secrets"


def test_longest_names_stay_vault_and_kubernetes_names():
    # Vault sets no length limit on mount paths or policy names; 40-character labels keep them at
    # 81 and 122 characters, lowercase (Vault lowercases policy names) and without '/'.
    prefix, name, template = "p" * 40, "c" * 40, "kv-read"
    stack = parse({**cluster_values(), "mountPrefix": prefix}, name, FILE)
    assert len(stack.mount_path) == 81 and len(stack.policy_name("t" * 40)) == 122
    assert stack.policy_name(template) == stack.policy_name(template).lower()
    refused({**cluster_values(), "mountPrefix": "p" * 41}, "vaultfleet:mountPrefix", "at most 40")


def test_policy_templates_are_listed_once():
    refused(cluster_values(policies=["kv-read", "kv-write", "kv-read"]), "vaultfleet:policies", "declared twice")


def test_database_role_names_fit_the_injector_annotation():
    # `agent-inject-template-db-<role>` is an annotation name: at most 63 characters.
    assert accepted(cluster_values(databaseRoles=["r" * 38])).database_roles == ["r" * 38]
    refused(cluster_values(databaseRoles=["r" * 39]), "vaultfleet:databaseRoles[0]", "at most 38")
    stack = parse_shared(shared_values({"connections": [connection()], "roles": [db_role(name="r" * 38)]}))
    assert stack.database.roles[0].name == "r" * 38
    with pytest.raises(ConfigError) as info:
        parse_shared(shared_values({"connections": [connection()], "roles": [db_role(name="r" * 39)]}))
    assert info.value.problems[0][1] == "vaultfleet:database.roles[0].name"


@pytest.mark.parametrize(
    "url",
    [
        PG_URL,
        "postgresql://{{username}}:{{password}}@db.internal/app",
        "postgres://{{username}}:{{password}}@db.internal:5432",
        "postgresql://{{username}}:{{password}}@[2001:db8::5]:5432/app?sslmode=verify-full",
        "postgresql://{{username}}:{{password}}@db1:5432,db2:5433/app?sslmode=require&connect_timeout=5",
    ],
)
def test_connection_urls_with_sane_hosts_are_accepted(url):
    assert parse_shared(shared_values({"connections": [connection(connectionUrl=url)]})).database


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql://{{username}}:{{password}}@db.internal:0/app", "between 1 and 65535"),
        ("postgresql://{{username}}:{{password}}@db.internal:65536/app", "between 1 and 65535"),
        ("postgresql://{{username}}:{{password}}@db.internal:pg/app", "host:port"),
        ("postgresql://{{username}}:{{password}}@/app", "names no host"),
        ("postgresql://{{username}}:{{password}}@db1:5432,/app", "not a host name"),
        ("postgresql://{{username}}:{{password}}@db internal/app", "spaces"),
        ("postgresql://{{username}}:{{password}}@db.internal/app?sslmode=on", "sslmode 'on'"),
    ],
)
def test_connection_urls_with_bad_hosts_are_refused(url, fragment):
    with pytest.raises(ConfigError) as info:
        parse_shared(shared_values({"connections": [connection(connectionUrl=url)]}))
    ((file, field, message),) = info.value.problems
    assert (file, field) == (SHARED_FILE, "vaultfleet:database.connections[0].connectionUrl")
    assert fragment in message, message


def test_connection_username_is_a_postgres_role_name():
    for name in ("vault", "vaultfleet_admin", "u" * 63, "vault@corp"):
        assert parse_shared(shared_values({"connections": [connection(username=name)]})).database
    for bad, fragment in (("u" * 64, "63 bytes"), ("é" * 32, "63 bytes"), ("vault admin", "spaces"), ("v\n", "spaces")):
        with pytest.raises(ConfigError) as info:
            parse_shared(shared_values({"connections": [connection(username=bad)]}))
        ((_, field, message),) = info.value.problems
        assert field == "vaultfleet:database.connections[0].username" and fragment in message, message
