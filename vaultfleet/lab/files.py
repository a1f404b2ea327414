"""How the lab creates, changes and removes files: by operations a planted link cannot redirect.

`make test` and `make demo` run the lab as root. Most of what it writes lives in directories only
its own user can change (the lab directory and ~/.config/vaultfleet, both 0700 and refused when
they are a symbolic link or another user's), but a root lab also writes into a directory another
user owns: PostgreSQL's, owned by `postgres` (vaultfleet/lab/postgres.py). A symbolic or hard link
that user plants under a name root then opens, chowns or deletes by path would make root write,
chown or delete whatever the link points to. So the lab works relative to a directory fd it
opened itself (O_NOFOLLOW: the directory, not a link's target) and never by path into such a
directory:

- create: O_CREAT|O_EXCL|O_NOFOLLOW (a new inode, never an existing file, never a link's target);
  owner and mode set on the new file's own fd (fchown, fchmod);
- replace: a new file under a temporary name, renamed over the old name (rename replaces a link,
  it never writes through one);
- remove: unlinkat, and shutil.rmtree with dir_fd (its fd-based walk never descends a link),
  only after checking that the directory itself is a real directory of the expected owner.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


class LabError(RuntimeError):
    """The lab cannot do what was asked, and did nothing unsafe instead; the message says why."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Dir:
    """An open directory (its path, for messages, and its fd): names in it are created, replaced
    and removed relative to the fd, so a link in place of the directory or of a name is never followed."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd

    def create(self, name: str, data: str | bytes, mode: int = 0o600, owner: tuple[int, int] | None = None) -> None:
        """Create `name` as a new file holding `data` (mode `mode`, then owned by `owner`, a uid and
        gid). Refused when anything is at that name already: a file, a link, a directory."""
        try:
            fd = os.open(name, _NEW_FILE_FLAGS, mode, dir_fd=self.fd)
        except FileExistsError:
            raise LabError(
                f"{self.path / name} exists already: refusing to write through it (the lab creates that file "
                "itself; whatever is there was put there by someone else)"
            ) from None
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
            if owner is not None:
                os.fchown(fd, *owner)
            f.write(data.encode() if isinstance(data, str) else data)

    def replace(self, name: str, data: str | bytes, mode: int = 0o600) -> None:
        """Write `name` anew: a new file renamed over the old name (a link at that name is replaced,
        never written through; a reader sees the old content or the new, never half)."""
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        self.create(temporary, data, mode)
        try:
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.unlink(temporary)
            raise

    def unlink(self, name: str) -> None:
        """Remove the name `name` (a link itself, never its target); no error when it is gone."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass


@contextmanager
def open_dir(path: Path, owners: Collection[int] | None = None) -> Iterator[Dir]:
    """The directory `path` itself, open: refused (LabError) when it is a symbolic link or not a
    directory, or when it is not owned by one of `owners` (default: the lab's own user)."""
    owners = {os.geteuid()} if owners is None else owners
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LabError(f"{path} is not a directory but a symbolic link or a file: refusing to use it") from None
        raise
    try:
        uid = os.fstat(fd).st_uid
        if uid not in owners:
            raise LabError(f"{path} is owned by uid {uid}, not by uid {' or '.join(map(str, sorted(owners)))}")
        yield Dir(path, fd)
    finally:
        os.close(fd)


def private_dir(path: Path) -> None:
    """Make `path` a directory only the lab's user can use: created 0700 (missing parents as usual);
    one that exists must be a real directory (not a symbolic link) of that user, and is made 0700."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    with open_dir(path) as d:
        if stat.S_IMODE(os.fstat(d.fd).st_mode) != 0o700:
            os.fchmod(d.fd, 0o700)


def write_private(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Write the file `path` anew (mode 0600 unless told) in a directory of the lab's own user."""
    with open_dir(path.parent) as d:
        d.replace(path.name, data, mode)


def open_append(path: Path) -> BinaryIO:
    """A log file for appending (created 0600); a symbolic link at its name is refused, not followed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "ab")


def remove_tree(path: Path, owners: Collection[int] | None = None) -> bool:
    """Remove the directory `path` and all in it, if it is a real directory owned by one of `owners`
    (default: the lab's own user). True when it is gone (or was never there); False when it is
    something else (a symbolic link, a file, another user's directory): then nothing is removed.

    shutil.rmtree runs relative to the parent's fd on the name it checked, and its fd-based walk
    neither follows nor descends a link inside (a link is removed, its target is not touched).
    """
    if not shutil.rmtree.avoids_symlink_attacks:
        raise LabError("shutil.rmtree of this platform can follow symbolic links: the lab removes nothing with it")
    owners = {os.geteuid()} if owners is None else owners
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            st = os.lstat(path.name, dir_fd=parent)
        except FileNotFoundError:
            return True
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in owners:
            return False
        shutil.rmtree(path.name, dir_fd=parent)
        return True
    finally:
        os.close(parent)
