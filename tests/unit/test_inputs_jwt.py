"""A jwt-mode cluster's keys are inputs of both programs that read them (its own stack writes them,
the shared stack pins them): a rotated key changes both stacks' input digests, so a preview that
skips the refresh (vaultfleet/fleet/skip.py) still runs the engine for them."""

from __future__ import annotations

from tests.harness import edit_stack
from vaultfleet.fleet.inputs import inputs_fingerprint
from vaultfleet.stackfile import Project


def test_a_rotated_key_changes_the_cluster_and_the_shared_stacks_inputs(project, monkeypatch):
    edit_stack(project, "lab-a", lambda config: config["vaultfleet:cluster"].update(authMode="jwt"))
    keys = ["KEY-1"]
    monkeypatch.setattr("vaultfleet.kube.jwt_issuer", lambda stack: ("https://issuer", list(keys)))
    fleet = Project(project)
    before = {name: inputs_fingerprint(fleet.stack(name)) for name in ("lab-a", "lab-b", "vault")}
    assert before == {name: inputs_fingerprint(fleet.stack(name)) for name in before}  # stable
    keys.append("KEY-2")
    after = {name: inputs_fingerprint(fleet.stack(name)) for name in before}
    assert after["lab-a"] != before["lab-a"] and after["vault"] != before["vault"]
    assert after["lab-b"] == before["lab-b"]  # a reviewer-token cluster reads no keys


def test_unreadable_keys_match_no_earlier_digest(project, monkeypatch):
    edit_stack(project, "lab-a", lambda config: config["vaultfleet:cluster"].update(authMode="jwt"))

    def unreachable(stack):
        raise ConnectionError("lab-a's API server is down")

    monkeypatch.setattr("vaultfleet.kube.jwt_issuer", unreachable)
    stack = Project(project).stack("lab-a")
    assert inputs_fingerprint(stack) != inputs_fingerprint(stack)
