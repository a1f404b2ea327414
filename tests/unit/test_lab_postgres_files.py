"""The lab PostgreSQL's directory, which a root lab shares with the `postgres` user
(vaultfleet/lab/postgres.py): initdb's password file and `remove` never follow a planted link. The
tests that need a second user (chown) run as root only, the others as anyone."""

from __future__ import annotations

import os
import pwd
import stat
import tempfile
from pathlib import Path

import pytest

from tests.harness import root_only, unchanged
from vaultfleet.lab import postgres
from vaultfleet.lab.record import LabError

ME = pwd.getpwuid(os.geteuid())
OTHER = pwd.struct_passwd(("pg-test", "x", 4242, 4243, "", "/nonexistent", "/bin/sh"))  # needs no passwd entry
BINARIES = postgres.Binaries(initdb="/no/initdb", postgres="/no/postgres", pg_isready="/no/pg_isready", version="15")


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


@pytest.mark.parametrize("plant", [os.symlink, os.link], ids=["symlink", "hard link"])
def test_initdb_refuses_a_link_planted_at_its_password_file(tmp_path, victim, no_initdb, plant):
    directory = tmp_path / f"{postgres.TEMP_PREFIX}x"
    directory.mkdir()
    plant(victim, directory / postgres.INITDB_PASSWORD)
    with pytest.raises(LabError, match="exists already: refusing to write through it"):
        postgres._initdb(_server(tmp_path, directory, ME), BINARIES, ME, tmp_path / "initdb.log")
    assert unchanged(victim)
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
    assert unchanged(victim)


def test_initdb_refuses_a_link_in_place_of_the_directory(tmp_path, victim, no_initdb):
    directory = tmp_path / f"{postgres.TEMP_PREFIX}x"
    directory.symlink_to(victim.parent)
    with pytest.raises(LabError, match="symbolic link"):
        postgres._initdb(_server(tmp_path, directory, ME), BINARIES, ME, tmp_path / "initdb.log")
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"] and unchanged(victim)


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
    assert unchanged(victim, owner=0)

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
    assert link.is_symlink() and unchanged(victim)


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
