"""Components under Pulumi mocks: what each registers, with which inputs, under which parent."""

import base64
import unittest

import pulumi
from pulumi.runtime import rpc

REVIEWER_JWT = "reviewer.jwt.value"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        state = dict(args.inputs)
        if args.typ == "kubernetes:core/v1:Secret":
            # What the token controller does in a real cluster.
            state["data"] = {"token": base64.b64encode(REVIEWER_JWT.encode()).decode()}
        if args.typ == "vault:index/authBackend:AuthBackend":
            state["accessor"] = f"auth_kubernetes_{args.name}"
        return [f"{args.name}_id", state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}

    def of_type(self, typ):
        return [r for r in self.resources if r.typ == typ]


class ComponentTest(unittest.TestCase):
    def setUp(self):
        self.mocks = Mocks()
        pulumi.runtime.set_mocks(self.mocks, preview=False)


def cluster_args():
    from components import ClusterOnboardingArgs, RoleSpec

    return ClusterOnboardingArgs(
        cluster="lab-a",
        mount_path="k8s-lab-a",
        kubernetes_host="https://127.0.0.1:16443",
        kubernetes_ca_cert="-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        policies={"k8s-lab-a-kv-read": 'path "kv/data/clusters/lab-a/*" { capabilities = ["read"] }'},
        roles=[RoleSpec("app", ["app"], ["app"], ["k8s-lab-a-kv-read"], 3600, 7200, "vault")],
    )


class TestReviewerIdentity(ComponentTest):
    @pulumi.runtime.test
    def test_service_account_binding_and_token_secret(self):
        from components import ReviewerIdentity, ReviewerIdentityArgs

        reviewer = ReviewerIdentity("r", ReviewerIdentityArgs(namespace="kube-system"))

        def check(args):
            token, sa_name = args
            (binding,) = self.mocks.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
            self.assertEqual(binding.inputs["roleRef"]["name"], "system:auth-delegator", binding.name)
            self.assertEqual(binding.inputs["subjects"][0]["name"], "vault-auth")
            (secret,) = self.mocks.of_type("kubernetes:core/v1:Secret")
            self.assertEqual(secret.inputs["type"], "kubernetes.io/service-account-token")
            annotations = secret.inputs["metadata"]["annotations"]
            self.assertEqual(annotations["kubernetes.io/service-account.name"], "vault-auth")
            self.assertEqual(annotations["pulumi.com/waitFor"], "jsonpath={.data.token}")
            self.assertEqual(token, REVIEWER_JWT)
            self.assertEqual(sa_name, "vault-auth")

        return pulumi.Output.all(reviewer.token, reviewer.service_account_name).apply(check)

    @pulumi.runtime.test
    def test_token_output_is_secret(self):
        from components import ReviewerIdentity, ReviewerIdentityArgs

        reviewer = ReviewerIdentity("r", ReviewerIdentityArgs(namespace="kube-system"))
        return pulumi.Output.from_input(reviewer.token.is_secret()).apply(self.assertTrue)


class TestClusterOnboarding(ComponentTest):
    def test_mount_config_policies_roles(self):
        from components import ClusterOnboarding

        @pulumi.runtime.test
        def program():
            cluster = ClusterOnboarding("lab-a", cluster_args())

            def check_outputs(args):
                mount_path, accessor, policy_names, role_names = args
                self.assertEqual(mount_path, "k8s-lab-a")
                self.assertTrue(accessor.startswith("auth_kubernetes_"))
                self.assertEqual(policy_names, ["k8s-lab-a-kv-read"])
                self.assertEqual(role_names, ["app"])

            return pulumi.Output.all(
                cluster.mount_path, cluster.mount_accessor, cluster.policy_names, cluster.role_names
            ).apply(check_outputs)

        # The test decorator returns once every registration has finished: check them all.
        program()
        (backend,) = self.mocks.of_type("vault:index/authBackend:AuthBackend")
        self.assertEqual(backend.inputs["type"], "kubernetes", backend.name)
        (config,) = self.mocks.of_type("vault:kubernetes/authBackendConfig:AuthBackendConfig")
        self.assertEqual(config.inputs["backend"], "k8s-lab-a")
        self.assertEqual(config.inputs["kubernetesHost"], "https://127.0.0.1:16443")
        # The reviewer JWT reaches the provider marked secret (encrypted in state).
        jwt = config.inputs["tokenReviewerJwt"]
        self.assertEqual(jwt[rpc._special_sig_key], rpc._special_secret_sig)
        self.assertEqual(jwt["value"], REVIEWER_JWT)
        self.assertTrue(config.inputs["disableIssValidation"])
        (role,) = self.mocks.of_type("vault:kubernetes/authBackendRole:AuthBackendRole")
        self.assertEqual(role.inputs["boundServiceAccountNames"], ["app"], role.name)
        self.assertEqual(role.inputs["boundServiceAccountNamespaces"], ["app"])
        self.assertEqual(role.inputs["tokenPolicies"], ["k8s-lab-a-kv-read"])
        self.assertEqual((role.inputs["tokenTtl"], role.inputs["tokenMaxTtl"]), (3600, 7200))
        self.assertEqual(role.inputs["audience"], "vault")
        (policy,) = self.mocks.of_type("vault:index/policy:Policy")
        self.assertIn("clusters/lab-a", policy.inputs["policy"])
        # Every child hangs under the component, so one alias covers a rename.
        components = {r.name for r in self.mocks.resources if r.typ.startswith("vaultfleet:")}
        self.assertIn("lab-a-reviewer", components)
        self.assertIn("lab-a-auth", components)


class TestSharedVault(ComponentTest):
    @pulumi.runtime.test
    def test_kv_v2_and_provisioner_policy(self):
        from components import SharedVault, SharedVaultArgs

        shared = SharedVault("fleet", SharedVaultArgs(kv_mount="kv", provisioner_policy='path "a" {}'))

        def check(args):
            (mount,) = self.mocks.of_type("vault:index/mount:Mount")
            self.assertEqual(mount.inputs["type"], "kv")
            self.assertEqual(mount.inputs["options"], {"version": "2"})
            (policy,) = self.mocks.of_type("vault:index/policy:Policy")
            self.assertEqual(policy.inputs["name"], "vaultfleet-provisioner")

        return pulumi.Output.all(shared.kv_mount, shared.provisioner_policy).apply(check)


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
            shared = SharedVault(
                "fleet", SharedVaultArgs(kv_mount="kv", provisioner_policy='path "a" {}', database=database_args())
            )
            return shared.database.mount_path.apply(lambda path: self.assertEqual(path, "database"))

        program()
        components = {r.name: r for r in self.mocks.resources if r.typ == "vaultfleet:vault:DatabaseEngine"}
        self.assertEqual(set(components), {"fleet-database"})
        mounts = sorted(m.inputs["type"] for m in self.mocks.of_type("vault:index/mount:Mount"))
        self.assertEqual(mounts, ["database", "kv"])

    @pulumi.runtime.test
    def test_no_database_declared_no_engine(self):
        from components import SharedVault, SharedVaultArgs

        shared = SharedVault("fleet", SharedVaultArgs(kv_mount="kv", provisioner_policy='path "a" {}'))
        self.assertIsNone(shared.database)
        return shared.kv_mount.apply(
            lambda _: self.assertEqual(
                [m.inputs["type"] for m in self.mocks.of_type("vault:index/mount:Mount")], ["kv"]
            )
        )


class TestProgramDatabaseArgs(ComponentTest):
    @pulumi.runtime.test
    def test_stack_file_to_engine_args_password_secret(self):
        from vaultfleet import program
        from vaultfleet.project import schema

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
        args = program.shared_args(stack).database
        self.assertEqual(args.mount_path, "pg")
        self.assertEqual([c.allowed_roles for c in args.connections], [["app-readonly"], []])
        (role,) = args.roles
        self.assertEqual((role.connection, role.default_ttl_seconds, role.max_ttl_seconds), ("app-db", 900, 3600))
        password = args.connections[0].password
        self.assertIsInstance(password, pulumi.Output)
        return pulumi.Output.all(password.is_secret(), password).apply(
            lambda a: self.assertEqual(a, [True, DB_PASSWORD])
        )


class TestNamespaceScopedPolicy(ComponentTest):
    def test_policy_body_gets_the_mount_accessor_once_the_mount_exists(self):
        from components import ClusterOnboarding
        from vaultfleet.project.policy import MOUNT_ACCESSOR_PLACEHOLDER

        templated = (
            'path "kv/data/clusters/lab-a/namespaces/{{identity.entity.aliases.'
            + MOUNT_ACCESSOR_PLACEHOLDER
            + '.metadata.service_account_namespace}}/*" { capabilities = ["read"] }'
        )
        args = cluster_args()
        args.policies = {**args.policies, "k8s-lab-a-kv-namespace": templated}

        @pulumi.runtime.test
        def program():
            return ClusterOnboarding("lab-a", args).policy_names

        program()
        bodies = {p.inputs["name"]: p.inputs["policy"] for p in self.mocks.of_type("vault:index/policy:Policy")}
        # The mock's accessor for the backend registered as "lab-a-auth-backend".
        self.assertIn(
            "aliases.auth_kubernetes_lab-a-auth-backend.metadata.service_account_namespace",
            bodies["k8s-lab-a-kv-namespace"],
        )
        self.assertNotIn("${", bodies["k8s-lab-a-kv-namespace"])
        # A body without the placeholder goes through unchanged.
        self.assertEqual(bodies["k8s-lab-a-kv-read"], args.policies["k8s-lab-a-kv-read"])


class TestConsumerObjects(ComponentTest):
    def test_objects_become_custom_resources(self):
        from components import ClusterOnboarding

        auth = {
            "apiVersion": "secrets.hashicorp.com/v1beta1",
            "kind": "VaultAuth",
            "metadata": {"name": "vaultfleet-app", "namespace": "app"},
            "spec": {
                "method": "kubernetes",
                "mount": "k8s-lab-a",
                "kubernetes": {"role": "app", "serviceAccount": "app"},
            },
        }
        args = cluster_args()
        args.consumer_objects = [auth]

        @pulumi.runtime.test
        def program():
            return ClusterOnboarding("lab-a", args).role_names

        program()
        (created,) = self.mocks.of_type("kubernetes:secrets.hashicorp.com/v1beta1:VaultAuth")
        self.assertEqual(created.inputs["spec"], auth["spec"], created.name)
        self.assertEqual(created.inputs["metadata"], auth["metadata"])
        (component,) = [r for r in self.mocks.resources if r.typ == "vaultfleet:cluster:ConsumerObjects"]
        self.assertEqual(component.name, "lab-a-consumers")

    def test_no_consumer_objects_no_component(self):
        from components import ClusterOnboarding

        @pulumi.runtime.test
        def program():
            return ClusterOnboarding("lab-a", cluster_args()).role_names

        program()
        self.assertFalse([r for r in self.mocks.resources if r.typ == "vaultfleet:cluster:ConsumerObjects"])
