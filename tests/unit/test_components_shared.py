"""Shared-stack components under Pulumi mocks: the KV mount and previewer policy, the database engine
(its connection password marked secret), and the args the program builds from the stack file."""

import pulumi
from pulumi.runtime import rpc

from tests.harness import ComponentTest


class TestSharedVault(ComponentTest):
    @pulumi.runtime.test
    def test_kv_v2_and_previewer_policy(self):
        from components import SharedVault, SharedVaultArgs

        shared = SharedVault("fleet", SharedVaultArgs(kv_mount="kv", previewer_policy='path "a" {}'))

        def check(args):
            (mount,) = self.mocks.of_type("vault:index/mount:Mount")
            self.assertEqual(mount.inputs["type"], "kv")
            self.assertEqual(mount.inputs["options"], {"version": "2"})
            (policy,) = self.mocks.of_type("vault:index/policy:Policy")
            self.assertEqual(policy.inputs["name"], "vaultfleet-previewer")

        return pulumi.Output.all(shared.kv_mount).apply(check)


DB_PASSWORD = "db-admin-password-value"
CREATE = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]


def database_args():
    from components import DatabaseEngineArgs, DatabaseRoleSpec, PostgresConnectionSpec

    return DatabaseEngineArgs(
        mount_path="database",
        connections=[
            PostgresConnectionSpec(
                name="app-db",
                connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:18432/postgres",
                username="vault",
                password=DB_PASSWORD,  # plain on purpose: the component must make it secret itself
                allowed_roles=["app-readonly"],
            )
        ],
        roles=[DatabaseRoleSpec("app-readonly", "app-db", CREATE, 3600, 86400, ['DROP ROLE "{{name}}";'])],
    )


def unwrap_secret(value):
    """The plain value of a secret input as the mocks see it; fails when it is not marked secret."""
    assert isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig, value
    return value["value"]


class TestDatabaseEngine(ComponentTest):
    def test_mount_connection_and_role(self):
        from components import DatabaseEngine

        @pulumi.runtime.test
        def program():
            engine = DatabaseEngine("fleet-database", database_args())

            def check_outputs(args):
                self.assertEqual(args, ["database", ["app-db"], ["app-readonly"]])

            return pulumi.Output.all(engine.mount_path, engine.connection_names, engine.role_names).apply(check_outputs)

        program()
        (mount,) = self.mocks.of_type("vault:index/mount:Mount")
        self.assertEqual((mount.inputs["type"], mount.inputs["path"]), ("database", "database"), mount.name)
        (conn,) = self.mocks.of_type("vault:database/secretBackendConnection:SecretBackendConnection")
        self.assertEqual(conn.name, "fleet-database-connection-app-db")
        self.assertEqual(conn.inputs["backend"], "database")
        self.assertEqual(conn.inputs["name"], "app-db")
        self.assertEqual(conn.inputs["allowedRoles"], ["app-readonly"])
        self.assertTrue(conn.inputs["verifyConnection"])
        # The password reaches the provider marked secret (encrypted in state, masked in logs); the
        # SDK marks the whole postgresql block that holds it.
        postgresql = unwrap_secret(conn.inputs["postgresql"])
        self.assertEqual(postgresql["password"], DB_PASSWORD)
        self.assertEqual(postgresql["username"], "vault")
        self.assertIn("{{username}}:{{password}}@", postgresql["connectionUrl"])
        (role,) = self.mocks.of_type("vault:database/secretBackendRole:SecretBackendRole")
        self.assertEqual(role.name, "fleet-database-role-app-readonly")
        self.assertEqual(
            (role.inputs["name"], role.inputs["dbName"], role.inputs["backend"]), ("app-readonly", "app-db", "database")
        )
        self.assertEqual(role.inputs["creationStatements"], CREATE)
        self.assertEqual(role.inputs["revocationStatements"], ['DROP ROLE "{{name}}";'])
        self.assertEqual((role.inputs["defaultTtl"], role.inputs["maxTtl"]), (3600, 86400))
        # The password is nowhere else: not in a name, not in another input.
        others = [r for r in self.mocks.resources if r is not conn]
        self.assertFalse([r.name for r in others if DB_PASSWORD in repr(r.inputs)])

    @pulumi.runtime.test
    def test_password_never_in_the_args_repr(self):
        self.assertNotIn(DB_PASSWORD, repr(database_args()))


class TestSharedVaultWithDatabase(ComponentTest):
    def test_database_engine_is_a_child_of_the_shared_stack(self):
        from components import SharedVault, SharedVaultArgs

        @pulumi.runtime.test
        def program():
            shared = SharedVault("fleet", SharedVaultArgs(kv_mount="kv", database=database_args()))
            return shared.database.mount_path.apply(lambda path: self.assertEqual(path, "database"))

        program()
        components = {r.name: r for r in self.mocks.resources if r.typ == "vaultfleet:vault:DatabaseEngine"}
        self.assertEqual(set(components), {"fleet-database"})
        mounts = sorted(m.inputs["type"] for m in self.mocks.of_type("vault:index/mount:Mount"))
        self.assertEqual(mounts, ["database", "kv"])

    @pulumi.runtime.test
    def test_no_database_declared_no_engine(self):
        from components import SharedVault, SharedVaultArgs

        shared = SharedVault("fleet", SharedVaultArgs(kv_mount="kv"))
        self.assertIsNone(shared.database)
        return shared.kv_mount.apply(
            lambda _: self.assertEqual(
                [m.inputs["type"] for m in self.mocks.of_type("vault:index/mount:Mount")], ["kv"]
            )
        )


class TestProgramDatabaseArgs(ComponentTest):
    @pulumi.runtime.test
    def test_stack_file_to_engine_args_password_secret(self):
        from vaultfleet.program import args as program
        from vaultfleet.stackfile import schema

        values = {
            "vaultAddress": "http://127.0.0.1:18200",
            "kind": "shared",
            "databaseMount": "pg",
            "database": {
                "connections": [
                    {
                        "name": "app-db",
                        "connectionUrl": "postgresql://{{username}}:{{password}}@h:5432/app",
                        "username": "vault",
                        "password": DB_PASSWORD,
                    },
                    {
                        "name": "unused-db",
                        "connectionUrl": "postgresql://{{username}}:{{password}}@h:5432/x",
                        "username": "vault",
                        "password": DB_PASSWORD,
                    },
                ],
                "roles": [
                    {
                        "name": "app-readonly",
                        "connection": "app-db",
                        "creationStatements": CREATE,
                        "defaultTtl": "15m",
                        "maxTtl": "1h",
                    }
                ],
            },
        }
        stack = schema.parse(values, "vault", "stacks/Pulumi.vault.yaml", secret_keys={"database"})
        args = program.database_args(stack)
        self.assertEqual(args.mount_path, "pg")
        self.assertEqual([c.allowed_roles for c in args.connections], [["app-readonly"], []])
        (role,) = args.roles
        self.assertEqual((role.connection, role.default_ttl_seconds, role.max_ttl_seconds), ("app-db", 900, 3600))
        password = args.connections[0].password
        self.assertIsInstance(password, pulumi.Output)
        return pulumi.Output.all(password.is_secret(), password).apply(
            lambda a: self.assertEqual(a, [True, DB_PASSWORD])
        )
