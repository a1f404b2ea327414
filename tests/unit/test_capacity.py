"""`validate` of the whole fleet warns when its auth mounts near what one Vault's auth mount table
holds (vaultfleet/validate.py, AUTH_MOUNT_LIMIT); a named subset of stacks is not counted."""

from __future__ import annotations

from vaultfleet import validate as validate_mod
from vaultfleet.stackfile import Project


def capacity(project, names=None):
    findings = validate_mod.validate(Project(project), names)[0]
    return [f for f in findings if f.field == "vaultfleet:vaultAddress" and "auth mounts" in f.message]


def test_a_fleet_past_the_share_is_warned_with_its_count(project, monkeypatch):
    clusters = len(list((project / "stacks").glob("Pulumi.lab-*.yaml")))
    assert not capacity(project)  # control: the lab's fleet is far from it
    # The same count against a table that holds only a few more mounts than the fleet has.
    monkeypatch.setattr(validate_mod, "AUTH_MOUNT_LIMIT", clusters + 1)  # half of it: below the fleet
    [warning] = capacity(project)
    assert warning.severity == "warning" and warning.file == "Pulumi.yaml"
    # A mount per cluster (the lab's shared stack has no pipeline, whose jwt mount would count too).
    assert f"the fleet has {clusters} auth mounts on this Vault" in warning.message
    assert "max_entry_size" in warning.message
    monkeypatch.setattr(validate_mod, "AUTH_MOUNT_LIMIT", 1)
    assert capacity(project)
    assert not capacity(project, ["lab-a"])  # a subset says nothing of the fleet
