"""The lab's file operations, without starting anything: links planted where the lab writes or
deletes are never followed, and `lab up`/`lab down` delete only a directory that holds a lab record.

A root lab writes into a directory the `postgres` user owns (vaultfleet/lab/postgres.py); the tests
that need a second user (chown) run as root only, the others as anyone.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import tempfile
from pathlib import Path

import pytest
import yaml

from vaultfleet.lab import files, lab, postgres
from vaultfleet.lab.record import (
    LAB_PASSPHRASE,
    LabError,
    LabState,
    check_lab_dir,
    passphrase_file,
    write_passphrase_file,
)

REPO = Path(__file__).resolve().parents[2]
ME = pwd.getpwuid(os.geteuid())
OTHER = pwd.struct_passwd(("pg-test", "x", 4242, 4243, "", "/nonexistent", "/bin/sh"))  # needs no passwd entry
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to another user needs root")
BINARIES = postgres.Binaries(initdb="/no/initdb", postgres="/no/postgres", pg_isready="/no/pg_isready", version="15")


@pytest.fixture()
def victim(tmp_path) -> Path:
    """A file outside every directory the lab writes to: what a planted link points at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "victim"
    path.write_text("precious")
    path.chmod(0o644)
    return path


def _unchanged(path: Path, owner: int = os.geteuid()) -> bool:
    st = path.lstat()
    return path.read_text() == "precious" and stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == owner


def _server(tmp_path: Path, directory: Path, account: pwd.struct_passwd) -> postgres.PostgresServer:
    lab_directory = tmp_path / "lab"
    lab_directory.mkdir(mode=0o700, exist_ok=True)
    (lab_directory / "postgres-password").write_text("the-superuser-password")
    return postgres.PostgresServer(
        host="127.0.0.1",
        port=18432,
        superuser="postgres",
        database="postgres",
        password_file=str(lab_directory / "postgres-password"),
        directory=str(directory),
        os_user=account.pw_name,
        version="15",
    )


@pytest.fixture()
def no_initdb(monkeypatch):
    """initdb replaced: `calls` records each run; `during` (if set) runs in its place with the pwfile path."""

    class FakeRun:
        calls: list[list[str]] = []
        during = None

        def __call__(self, argv, **kwargs):
            self.calls.append(argv)
            if self.during is not None:
                pwfile = next(a.removeprefix("--pwfile=") for a in argv if a.startswith("--pwfile="))
                self.during(Path(pwfile))
            return postgres.subprocess.CompletedProcess(argv, 0)

    fake = FakeRun()
    fake.calls = []
    monkeypatch.setattr(postgres.subprocess, "run", fake)
    return fake


# --- PostgreSQL's directory: the one a root lab shares with another user ------------------------


@pytest.mark.parametrize("plant", [os.symlink, os.link], ids=["symlink", "hard link"])
def test_initdb_refuses_a_link_planted_at_its_password_file(tmp_path, victim, no_initdb, plant):
    directory = tmp_path / f"{postgres.TEMP_PREFIX}x"
    directory.mkdir()
    plant(victim, directory / postgres.INITDB_PASSWORD)
    with pytest.raises(LabError, match="exists already: refusing to write through it"):
        postgres._initdb(_server(tmp_path, directory, ME), BINARIES, ME, tmp_path / "initdb.log")
    assert _unchanged(victim)
    assert no_initdb.calls == []  # nothing ran with a password file it did not create


def test_initdb_password_file_is_new_0600_and_gone_after(tmp_path, no_initdb):
    directory = tmp_path / f"{postgres.TEMP_PREFIX}x"
    directory.mkdir()
    seen = {}

    def during(pwfile: Path) -> None:
        st = pwfile.lstat()
        seen.update(regular=stat.S_ISREG(st.st_mode), mode=stat.S_IMODE(st.st_mode), text=pwfile.read_text())

    no_initdb.during = during
    postgres._initdb(_server(tmp_path, directory, ME), BINARIES, ME, tmp_path / "initdb.log")
    assert seen == {"regular": True, "mode": 0o600, "text": "the-superuser-password"}
    assert not (directory / postgres.INITDB_PASSWORD).exists()


def test_a_link_swapped_in_for_the_password_file_during_initdb_is_removed_not_its_target(tmp_path, victim, no_initdb):
    directory = tmp_path / f"{postgres.TEMP_PREFIX}x"
    directory.mkdir()

    def swap(pwfile: Path) -> None:  # what the server's user could do while initdb runs
        pwfile.unlink()
        pwfile.symlink_to(victim)

    no_initdb.during = swap
    postgres._initdb(_server(tmp_path, directory, ME), BINARIES, ME, tmp_path / "initdb.log")
    assert not os.path.lexists(directory / postgres.INITDB_PASSWORD)
    assert _unchanged(victim)


def test_initdb_refuses_a_link_in_place_of_the_directory(tmp_path, victim, no_initdb):
    directory = tmp_path / f"{postgres.TEMP_PREFIX}x"
    directory.symlink_to(victim.parent)
    with pytest.raises(LabError, match="symbolic link"):
        postgres._initdb(_server(tmp_path, directory, ME), BINARIES, ME, tmp_path / "initdb.log")
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"] and _unchanged(victim)


@root_only
def test_root_hands_the_directory_and_password_file_to_the_server_user_by_fd(tmp_path, victim, no_initdb, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    directory = postgres._private_directory(tmp_path / "lab", OTHER)
    st = directory.lstat()
    assert directory.name.startswith(postgres.TEMP_PREFIX)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4243, 0o700)
    server = _server(tmp_path, directory, OTHER)

    # The server's user plants a link where root is about to write: refused, nothing chowned.
    (directory / postgres.INITDB_PASSWORD).symlink_to(victim)
    os.lchown(directory / postgres.INITDB_PASSWORD, 4242, 4243)
    with pytest.raises(LabError, match="refusing to write through it"):
        postgres._initdb(server, BINARIES, OTHER, tmp_path / "initdb.log")
    assert _unchanged(victim, owner=0)

    (directory / postgres.INITDB_PASSWORD).unlink()
    seen = {}
    no_initdb.during = lambda pwfile: seen.update(owner=(pwfile.lstat().st_uid, pwfile.lstat().st_gid))
    postgres._initdb(server, BINARIES, OTHER, tmp_path / "initdb.log")
    assert seen == {"owner": (4242, 4243)}

    # A directory of another owner than the server's user (swapped in) is refused too.
    os.chown(directory, 0, 0)
    with pytest.raises(LabError, match="owned by uid 0, not by uid 4242"):
        postgres._initdb(server, BINARIES, OTHER, tmp_path / "initdb.log")


def test_remove_leaves_a_link_in_place_of_the_data_directory_and_its_target(tmp_path, victim):
    link = tmp_path / f"{postgres.TEMP_PREFIX}x"
    link.symlink_to(victim.parent)
    assert postgres.remove(_server(tmp_path, link, ME), tmp_path / "lab") is False
    assert link.is_symlink() and _unchanged(victim)


def test_remove_deletes_links_inside_the_data_directory_never_their_targets(tmp_path, victim):
    directory = tmp_path / f"{postgres.TEMP_PREFIX}x"
    (directory / "data").mkdir(parents=True)
    (directory / "data" / "PG_VERSION").write_text("15")
    (directory / "data" / "to-file").symlink_to(victim)
    (directory / "to-dir").symlink_to(victim.parent)
    os.link(victim, directory / "hard")
    assert postgres.remove(_server(tmp_path, directory, ME), tmp_path / "lab") is True
    assert not directory.exists()
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"] and victim.read_text() == "precious"


def test_remove_leaves_what_is_not_a_lab_data_directory(tmp_path):
    directory = tmp_path / "somebody-elses"
    directory.mkdir()
    assert postgres.remove(_server(tmp_path, directory, ME), tmp_path / "lab") is False
    assert directory.exists()


@root_only
def test_remove_leaves_a_directory_of_a_third_user(tmp_path):
    directory = tmp_path / f"{postgres.TEMP_PREFIX}x"
    directory.mkdir()
    os.chown(directory, 5151, 5151)  # neither root (the lab) nor the recorded server user
    assert postgres.remove(_server(tmp_path, directory, OTHER), tmp_path / "lab") is False
    assert directory.exists()


# --- files the lab writes in its own directories -----------------------------------------------


@pytest.mark.parametrize("plant", [os.symlink, os.link], ids=["symlink", "hard link"])
def test_write_private_replaces_a_planted_link_and_leaves_its_target(tmp_path, victim, plant):
    plant(victim, tmp_path / "vault-token")
    files.write_private(tmp_path / "vault-token", "s.token")
    st = (tmp_path / "vault-token").lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert (tmp_path / "vault-token").read_text() == "s.token"
    assert _unchanged(victim)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_logs_refuse_a_planted_link(tmp_path, victim):
    (tmp_path / "vault.log").symlink_to(victim)
    with pytest.raises(OSError):
        files.open_append(tmp_path / "vault.log")
    assert _unchanged(victim)


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
    assert _unchanged(victim)
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


# --- lab up / lab down: only a directory that holds a lab record -------------------------------


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
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"] and _unchanged(victim)
