"""Files the lab writes in its own directories: a link planted there is replaced, never written
through; private directories; the lab passphrase file and the salts in the tracked lab stack files.
The tests that need a second user (chown) run as root only, the others as anyone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from tests.harness import root_only, unchanged
from vaultfleet.lab import files
from vaultfleet.lab.record import LAB_PASSPHRASE, LabError, LabState, passphrase_file, write_passphrase_file

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("plant", [os.symlink, os.link], ids=["symlink", "hard link"])
def test_write_private_replaces_a_planted_link_and_leaves_its_target(tmp_path, victim, plant):
    plant(victim, tmp_path / "vault-token")
    files.write_private(tmp_path / "vault-token", "s.token")
    st = (tmp_path / "vault-token").lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert (tmp_path / "vault-token").read_text() == "s.token"
    assert unchanged(victim)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_logs_refuse_a_planted_link(tmp_path, victim):
    (tmp_path / "vault.log").symlink_to(victim)
    with pytest.raises(OSError):
        files.open_append(tmp_path / "vault.log")
    assert unchanged(victim)


def test_private_dir_is_created_0700_and_tightened_when_it_exists(tmp_path):
    files.private_dir(tmp_path / "new" / "lab")
    assert stat.S_IMODE((tmp_path / "new" / "lab").stat().st_mode) == 0o700
    (tmp_path / "open").mkdir(mode=0o755)
    files.private_dir(tmp_path / "open")
    assert stat.S_IMODE((tmp_path / "open").stat().st_mode) == 0o700


def test_private_dir_refuses_a_symbolic_link(tmp_path, victim):
    (tmp_path / "lab").symlink_to(victim.parent)
    mode = victim.parent.stat().st_mode
    with pytest.raises(LabError, match="symbolic link"):
        files.private_dir(tmp_path / "lab")
    assert victim.parent.stat().st_mode == mode


@root_only
def test_private_dir_refuses_another_users_directory(tmp_path):
    (tmp_path / "lab").mkdir(mode=0o755)
    os.chown(tmp_path / "lab", 4242, 4243)
    with pytest.raises(LabError, match="owned by uid 4242"):
        files.private_dir(tmp_path / "lab")
    assert stat.S_IMODE((tmp_path / "lab").stat().st_mode) == 0o755


def test_passphrase_is_the_public_lab_constant_written_into_a_private_directory(tmp_path, monkeypatch, victim):
    monkeypatch.setenv("VAULTFLEET_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "config").mkdir(mode=0o755)
    (tmp_path / "config" / "lab-passphrase").symlink_to(victim)  # or a random one from an older lab
    path = write_passphrase_file()
    assert path == passphrase_file() == tmp_path / "config" / "lab-passphrase"
    assert path.read_text() == LAB_PASSPHRASE == "vaultfleet-lab: not a secret, lab only"
    assert stat.S_IMODE(path.lstat().st_mode) == 0o600 and not path.is_symlink()
    assert stat.S_IMODE((tmp_path / "config").stat().st_mode) == 0o700
    assert unchanged(victim)
    state = LabState(
        directory=tmp_path / "lab", vault_addr="http://127.0.0.1:18200", vault_server="openbao", clusters=[]
    )
    assert state.env()["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(path)  # handed to Pulumi as a file, as before


def test_the_tracked_lab_stack_files_carry_the_salt_of_the_lab_passphrase():
    # Generated once with LAB_PASSPHRASE (docs/lab.md); tests/lab/test_checkout_clean.py checks that
    # `pulumi stack init` accepts them as they are.
    salts = {}
    for stack in ("lab-a", "lab-b", "vault"):
        text = (REPO / "stacks" / f"Pulumi.{stack}.yaml").read_text()
        salts[stack] = yaml.safe_load(text)["encryptionsalt"]
        assert salts[stack].startswith("v1:"), stack
    assert len(set(salts.values())) == 3
