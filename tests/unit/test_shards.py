"""A fleet spread over CI runners: deterministic shards of the cluster stacks, the shared stack in
none of them, and the job matrix `vaultfleet matrix` prints."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from vaultfleet.cli import app
from vaultfleet.fleet.shards import Shard, matrix

runner = CliRunner()
CLUSTERS = [f"c{i:03d}" for i in range(1, 101)]


@pytest.mark.parametrize("count", [1, 3, 4, 7, 100, 256])
def test_every_cluster_stack_is_in_exactly_one_shard_and_shards_are_balanced(count):
    shards = [Shard(i, count).of(list(reversed(CLUSTERS))) for i in range(1, count + 1)]
    flat = [name for shard in shards for name in shard]
    assert sorted(flat) == CLUSTERS and len(flat) == len(set(flat))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    # Deterministic: the input's order does not matter, only the selection.
    assert shards == [Shard(i, count).of(CLUSTERS) for i in range(1, count + 1)]


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "a/b", "1/257", "-1/2", "1/2/3", "", " 2 / 4"])
def test_a_shard_that_is_not_i_of_n_is_refused(text):
    with pytest.raises(ValueError, match="must be I/N"):
        Shard.parse(text)


def test_the_matrix_has_the_shared_stack_once_and_only_non_empty_shards():
    built = matrix(["vault"], ["lab-b", "lab-a", "lab-c"], 4)
    assert built == {
        "shared": ["vault"],
        "include": [
            {"shard": "1/4", "stacks": "lab-a"},
            {"shard": "2/4", "stacks": "lab-b"},
            {"shard": "3/4", "stacks": "lab-c"},
        ],
    }


@pytest.fixture()
def fleet(project):
    """Ten cluster stacks beside the shared one (copies of lab-a's file)."""
    for i in range(10):
        shutil.copy(project / "stacks/Pulumi.lab-a.yaml", project / f"stacks/Pulumi.x{i}.yaml")
    return project


def test_matrix_command_prints_the_shared_stack_and_the_shards(fleet):
    result = runner.invoke(app, ["matrix", "--all", "--shards", "3"])
    assert result.exit_code == 0, result.output
    built = json.loads(result.stdout)
    assert built["shared"] == ["vault"]
    stacks = [s for entry in built["include"] for s in entry["stacks"].split()]
    assert sorted(stacks) == sorted(["lab-a", "lab-b", *(f"x{i}" for i in range(10))])
    assert [e["shard"] for e in built["include"]] == ["1/3", "2/3", "3/3"]


def test_a_sharded_run_takes_its_shard_and_leaves_the_shared_stack_out(fleet, monkeypatch):
    # No Vault here: each selected stack fails "not run" at once, which is enough to see the selection.
    monkeypatch.setenv("VAULT_TOKEN", "unused")
    built = json.loads(runner.invoke(app, ["matrix", "--all", "--shards", "3"]).stdout)
    for entry in built["include"]:
        result = runner.invoke(app, ["preview", "--all", "--shard", entry["shard"], "--format", "json"])
        assert sorted(r["stack"] for r in json.loads(result.stdout)) == sorted(entry["stacks"].split())
        assert "the shared stack vault is in no shard" in result.output


def test_matrix_needs_a_selection_and_shard_must_be_i_of_n(fleet):
    assert runner.invoke(app, ["matrix"]).exit_code == 2
    result = runner.invoke(app, ["up", "--all", "--shard", "4/3"])
    assert result.exit_code == 2 and "must be I/N" in result.output
