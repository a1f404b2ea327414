"""`lab up` and `lab down` take only a missing or empty directory or one that holds a lab record: any
other is refused before anything starts, and nothing in it is deleted; links in a lab are not followed.
The tests that need a second user (chown) run as root only, the others as anyone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.harness import root_only, unchanged
from vaultfleet.lab import lab
from vaultfleet.lab.record import LabError, LabState, check_lab_dir


def _not_a_lab(tmp_path: Path) -> Path:
    """Someone's directory, as $VAULTFLEET_LAB_DIR=$HOME would name it."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("key")
    (home / "notes.txt").write_text("notes")
    return home


def _contents(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): p.read_text() for p in sorted(directory.rglob("*")) if p.is_file()}


def _lab_record(directory: Path) -> None:
    LabState(directory=directory, vault_addr="http://127.0.0.1:18200", vault_server="openbao", clusters=[]).save()


def test_check_lab_dir_takes_a_missing_or_empty_directory_and_clears_only_a_lab(tmp_path):
    assert check_lab_dir(tmp_path / "missing") is False
    (tmp_path / "empty").mkdir()
    assert check_lab_dir(tmp_path / "empty") is False
    (tmp_path / "lab").mkdir()
    _lab_record(tmp_path / "lab")
    assert check_lab_dir(tmp_path / "lab") is True


def test_check_lab_dir_refuses_a_non_empty_directory_without_lab_json_and_deletes_nothing(tmp_path):
    home = _not_a_lab(tmp_path)
    before = _contents(home)
    with pytest.raises(LabError, match=f"{home} is not a lab directory: it is not empty and holds no lab record"):
        check_lab_dir(home)
    assert _contents(home) == before


@pytest.mark.parametrize(
    "record",
    [
        lambda d: (d / "lab.json").write_text(json.dumps({"name": "another tool's lab.json"})),
        lambda d: (d / "lab.json").symlink_to(d / "notes.txt"),
        lambda d: (d / "lab.json").mkdir(),
    ],
    ids=["not a lab record", "a link", "a directory"],
)
def test_check_lab_dir_refuses_a_lab_json_that_is_not_a_lab_record(tmp_path, record):
    home = _not_a_lab(tmp_path)
    record(home)
    with pytest.raises(LabError, match="not a lab directory"):
        check_lab_dir(home)


def test_check_lab_dir_refuses_a_symbolic_link_even_to_a_lab(tmp_path):
    (tmp_path / "real").mkdir()
    _lab_record(tmp_path / "real")
    (tmp_path / "lab").symlink_to(tmp_path / "real")
    with pytest.raises(LabError, match="is a symbolic link"):
        check_lab_dir(tmp_path / "lab")
    with pytest.raises(LabError, match="is a symbolic link"):
        lab.down(tmp_path / "lab", echo=None)
    assert (tmp_path / "real" / "lab.json").exists()


@root_only
def test_check_lab_dir_refuses_another_users_directory(tmp_path):
    (tmp_path / "lab").mkdir()
    os.chown(tmp_path / "lab", 4242, 4243)
    with pytest.raises(LabError, match="belongs to uid 4242"):
        check_lab_dir(tmp_path / "lab")


def test_lab_up_refuses_a_directory_that_is_not_a_lab_before_anything_else(tmp_path, monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("lab up went past the directory check")

    # Nothing may be looked up, let alone started, should the check ever let the directory through.
    monkeypatch.setattr(lab.vault, "find_server", started)
    monkeypatch.setattr(lab.processes, "start", started)
    home = _not_a_lab(tmp_path)
    before = _contents(home)
    with pytest.raises(LabError, match=f"{home} is not a lab directory"):
        lab.up(1, directory=home, echo=None)
    assert _contents(home) == before


def test_lab_down_refuses_a_directory_that_is_not_a_lab_and_deletes_nothing(tmp_path):
    home = _not_a_lab(tmp_path)
    before = _contents(home)
    with pytest.raises(LabError, match=f"{home} is not a lab directory"):
        lab.down(home, echo=None)
    assert _contents(home) == before


def test_lab_down_leaves_a_missing_or_empty_directory_as_it_is(tmp_path):
    assert lab.down(tmp_path / "missing", echo=None) == []
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    assert lab.down(tmp_path / "empty", echo=None) == []
    assert (tmp_path / "empty").is_dir()


def test_lab_down_removes_a_lab_directory_without_following_links_in_it(tmp_path, victim):
    directory = tmp_path / "lab"
    (directory / "logs").mkdir(parents=True)
    _lab_record(directory)
    (directory / "logs" / "vault.log").symlink_to(victim)
    (directory / "etcd").symlink_to(victim.parent)
    assert lab.down(directory, echo=None) == []
    assert not directory.exists()
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"] and unchanged(victim)
