"""The shared stack's pipeline identities without servers: what `vaultfleet:pipeline` accepts, the
previewer policy it renders, and the jwt mount and roles the component registers."""

from __future__ import annotations

import pulumi
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.harness import ComponentTest
from vaultfleet.render.policy import parse_rules, render_previewer
from vaultfleet.stackfile import schema

PIPELINE = {
    "issuer": "https://token.actions.githubusercontent.com",
    "audience": "https://github.com/acme",
    "previewer": {"repository": "acme/fleet"},
    "applier": {"repository": "acme/fleet", "ref": "refs/heads/main", "environment": "fleet"},
}


def shared(**pipeline):
    values = {"kind": "shared", "vaultAddress": "https://vault.example:8200", "pipeline": {**PIPELINE, **pipeline}}
    return schema.parse(values, "vault", "stacks/Pulumi.vault.yaml")


def test_the_documented_github_example_is_accepted():
    settings = shared().pipeline
    assert (settings.mount, settings.ttl, settings.public_keys) == ("ci", 900, [])


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"previewer": {}}, "vaultfleet:pipeline.previewer", "at least one claim"),
        ({"applier": {"repository": "acme/fleet"}}, "vaultfleet:pipeline", "more than the previewer"),
        ({"applier": {"ref": "refs/heads/main", "environment": "x"}}, "vaultfleet:pipeline", "previewer's claims"),
        ({"previewer": {"repository": "acme/*"}}, "vaultfleet:pipeline.previewer", "no globs"),
        ({"applier": {**PIPELINE["applier"], "ref": " "}}, "vaultfleet:pipeline.applier", "exact, non-empty"),
        ({"issuer": "token.actions.githubusercontent.com"}, "vaultfleet:pipeline.issuer", "URL"),
        ({"audience": " "}, "vaultfleet:pipeline.audience", ""),
        ({"publicKeys": ["not a key"]}, "vaultfleet:pipeline.publicKeys[0]", "PEM public key"),
        ({"mount": "CI"}, "vaultfleet:pipeline.mount", "DNS label"),
        ({"roles": []}, "vaultfleet:pipeline.roles", "unknown field"),
    ],
)
def test_a_pipeline_that_would_hand_out_more_than_it_says_is_refused(change, field, fragment):
    with pytest.raises(schema.ConfigError) as info:
        shared(**change)
    ((source, got_field, message),) = info.value.problems
    assert (source, got_field) == ("stacks/Pulumi.vault.yaml", field)
    assert fragment in message


def test_a_pem_public_key_is_accepted():
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert shared(publicKeys=[pem]).pipeline.public_keys == [pem.strip()]


def test_only_the_shared_stack_declares_a_pipeline():
    values = {"vaultAddress": "https://v:8200", "cluster": {"kubeContext": "x"}, "pipeline": PIPELINE}
    with pytest.raises(schema.ConfigError, match="only the shared stack"):
        schema.parse(values, "x", "stacks/Pulumi.x.yaml")


def test_the_previewer_policy_grants_reads_only():
    rules = parse_rules(render_previewer(shared()), "vaultfleet-previewer")
    assert rules and all(set(r.capabilities) <= {"read", "list"} for r in rules)
    paths = {r.path for r in rules}
    assert "auth/ci/role/*" in paths and "auth/k8s-*" in paths
    assert not any(p.startswith(("kv/", "sys/policy/*", "database/creds")) for p in paths)


def pin_endpoints(project_root) -> None:
    """apiHost and caCert in both cluster stack files: the shared stack then needs no kubeconfig."""
    from tests.bad_inputs import certificate_pem
    from tests.harness import edit_stack

    for cluster in ("lab-a", "lab-b"):
        endpoint = {"apiHost": f"https://{cluster}.example:6443", "caCert": certificate_pem()}
        edit_stack(project_root, cluster, lambda c, e=endpoint: c["vaultfleet:cluster"].update(e))


class TestPipelineIdentities(ComponentTest):
    @pulumi.runtime.test
    def test_jwt_mount_with_exact_claims_per_identity(self):
        import tempfile
        from pathlib import Path

        from tests.harness import copy_project_files
        from vaultfleet.program import args as program
        from vaultfleet.stackfile import Project

        root = copy_project_files(Path(tempfile.mkdtemp()))
        pin_endpoints(root)
        args = program.shared_args(shared(), Project(root))

        from components import SharedVault

        vault = SharedVault("fleet", args)

        def check(_):
            (backend,) = self.mocks.of_type("vault:jwt/authBackend:AuthBackend")
            self.assertEqual(backend.inputs["path"], "ci")
            self.assertEqual(backend.inputs["boundIssuer"], PIPELINE["issuer"])
            self.assertEqual(backend.inputs["oidcDiscoveryUrl"], PIPELINE["issuer"])
            roles = {
                r.inputs["roleName"]: r.inputs for r in self.mocks.of_type("vault:jwt/authBackendRole:AuthBackendRole")
            }
            self.assertEqual(roles["previewer"]["tokenPolicies"], ["vaultfleet-previewer"])
            # The applier holds each cluster's applier policy, nothing fleet-wide.
            self.assertEqual(roles["applier"]["tokenPolicies"], ["vaultfleet-apply-lab-a", "vaultfleet-apply-lab-b"])
            self.assertEqual(roles["applier"]["boundClaims"], PIPELINE["applier"])
            for role in roles.values():
                self.assertEqual(role["boundClaimsType"], "string")
                self.assertEqual(role["boundAudiences"], [PIPELINE["audience"]])
                self.assertEqual(role["tokenMaxTtl"], 900)
            names = sorted(p.inputs["name"] for p in self.mocks.of_type("vault:index/policy:Policy"))
            fleet = [n for n in names if n.startswith("vaultfleet-")]
            self.assertEqual(fleet, ["vaultfleet-apply-lab-a", "vaultfleet-apply-lab-b", "vaultfleet-previewer"])
            self.assertIn("k8s-lab-a-kv-read", names)  # the clusters' policy bodies, written here too

        return vault.pipeline.role_names.apply(check)


def _pipeline_access_rows(project) -> list[dict]:
    """`vaultfleet access vault --format json` with the shared stack declaring PIPELINE."""
    import json

    from typer.testing import CliRunner

    from tests.harness import edit_stack
    from vaultfleet.cli import app

    pin_endpoints(project)
    edit_stack(project, "vault", lambda c: c.update({"vaultfleet:pipeline": PIPELINE}))
    return json.loads(CliRunner().invoke(app, ["access", "vault", "--format", "json"]).stdout)


def test_access_shows_each_pipeline_identitys_grants(project):
    rows = _pipeline_access_rows(project)
    previewer = [r for r in rows if r["role"] == "previewer"]
    assert previewer and all(set(r["capabilities"]) <= {"read", "list"} for r in previewer)
    assert {r["service_account"] for r in previewer} == {"repository=acme/fleet"}
    applier = [r for r in rows if r["role"] == "applier"]
    assert {r["policy"] for r in applier} == {"vaultfleet-apply-lab-a", "vaultfleet-apply-lab-b"}
    # What the applier may write: each cluster's mount config and its declared roles, nothing else.
    writable = {r["path"] for r in applier if {"create", "update"} & set(r["capabilities"])}
    assert writable == {
        "auth/k8s-lab-a/config",
        "auth/k8s-lab-a/role/app",
        "auth/k8s-lab-a/role/deployer",
        "auth/k8s-lab-b/config",
        "auth/k8s-lab-b/role/app",
        "auth/k8s-lab-b/role/deployer",
    }, writable
    assert {r["service_account"] for r in applier} == {"environment=fleet,ref=refs/heads/main,repository=acme/fleet"}


def test_access_renders_the_previewer_as_the_program_does_with_each_clusters_mount(project):
    # Found by an attack review: access rendered the previewer without the clusters' mounts and
    # state keys, so a mount outside the prefix gave the previewer reads the review did not show.
    from tests.harness import edit_stack

    edit_stack(project, "lab-b", lambda c: c["vaultfleet:cluster"].update(mountPath="kubernetes"))
    rows = _pipeline_access_rows(project)
    previewer_paths = {r["path"] for r in rows if r["role"] == "previewer"}
    assert any(p.startswith("auth/kubernetes/") for p in previewer_paths), sorted(previewer_paths)
