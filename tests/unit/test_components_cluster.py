"""Per-cluster components under Pulumi mocks: the cluster stack's (reviewer identity, mount config,
roles, consumer objects; no mount, no policy) and the shared stack's for each cluster (mount,
policy bodies with the accessor filled in, applier policy); what each registers, with which inputs,
under which parent."""

import pulumi
from pulumi.runtime import rpc

from tests.harness import REVIEWER_JWT, ComponentTest


def cluster_args():
    from components import ClusterOnboardingArgs, RoleSpec

    return ClusterOnboardingArgs(
        cluster="lab-a",
        mount_path="k8s-lab-a",
        kubernetes_host="https://127.0.0.1:16443",
        kubernetes_ca_cert="-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        policy_names=["k8s-lab-a-kv-read"],
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
    def test_mount_config_and_roles_and_neither_mount_nor_policy(self):
        from components import ClusterOnboarding

        @pulumi.runtime.test
        def program():
            cluster = ClusterOnboarding("lab-a", cluster_args())

            def check_outputs(args):
                mount_path, policy_names, role_names = args
                self.assertEqual(mount_path, "k8s-lab-a")
                self.assertEqual(policy_names, ["k8s-lab-a-kv-read"])
                self.assertEqual(role_names, ["app"])

            return pulumi.Output.all(cluster.mount_path, cluster.policy_names, cluster.role_names).apply(check_outputs)

        # The test decorator returns once every registration has finished: check them all.
        program()
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
        self.assertEqual(role.inputs["tokenType"], "service")  # explicit: the applier policy pins it
        # The cluster's applier may not enable auth methods or write policy bodies: the privileged
        # shared stack makes the mount and the policies.
        self.assertEqual(self.mocks.of_type("vault:index/authBackend:AuthBackend"), [])
        self.assertEqual(self.mocks.of_type("vault:index/policy:Policy"), [])
        # Every child hangs under the component, so one alias covers a rename.
        components = {r.name for r in self.mocks.resources if r.typ.startswith("vaultfleet:")}
        self.assertIn("lab-a-reviewer", components)
        self.assertIn("lab-a-auth", components)


class TestClusterAccess(ComponentTest):
    def test_mount_policies_with_the_accessor_and_the_applier_policy(self):
        from components import ClusterAccess, ClusterAccessArgs
        from vaultfleet.render.policy import MOUNT_ACCESSOR_PLACEHOLDER

        templated = (
            'path "kv/data/clusters/lab-a/namespaces/{{identity.entity.aliases.'
            + MOUNT_ACCESSOR_PLACEHOLDER
            + '.metadata.service_account_namespace}}/*" { capabilities = ["read"] }'
        )
        plain = 'path "kv/data/clusters/lab-a/*" { capabilities = ["read"] }'
        args = ClusterAccessArgs(
            cluster="lab-a",
            mount_path="k8s-lab-a",
            policies={"k8s-lab-a-kv-read": plain, "k8s-lab-a-kv-namespace": templated},
            applier_policy_name="vaultfleet-apply-lab-a",
            applier_policy='path "auth/k8s-lab-a/config" { capabilities = ["read"] }',
            accessor_placeholder=MOUNT_ACCESSOR_PLACEHOLDER,
            max_ttl_seconds=14400,
        )

        @pulumi.runtime.test
        def program():
            return ClusterAccess("fleet-cluster-lab-a", args).policy_names

        program()
        (backend,) = self.mocks.of_type("vault:index/authBackend:AuthBackend")
        self.assertEqual((backend.inputs["type"], backend.inputs["path"]), ("kubernetes", "k8s-lab-a"))
        # The mount's max TTL caps the role TTLs the applier may still choose.
        self.assertEqual(backend.inputs["tune"]["maxLeaseTtl"], "14400s")
        bodies = {p.inputs["name"]: p.inputs["policy"] for p in self.mocks.of_type("vault:index/policy:Policy")}
        # The mock's accessor for the backend registered as "fleet-cluster-lab-a-auth-backend".
        self.assertIn(
            "aliases.auth_kubernetes_fleet-cluster-lab-a-auth-backend.metadata.service_account_namespace",
            bodies["k8s-lab-a-kv-namespace"],
        )
        self.assertNotIn("${", bodies["k8s-lab-a-kv-namespace"])
        # A body without the placeholder goes through unchanged.
        self.assertEqual(bodies["k8s-lab-a-kv-read"], plain)
        self.assertEqual(bodies["vaultfleet-apply-lab-a"], args.applier_policy)


class TestConsumerObjects(ComponentTest):
    def test_objects_become_custom_resources(self):
        from components import ClusterOnboarding, CustomObject

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
        args.consumer_objects = [CustomObject.from_manifest(auth)]

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
