"""Write a user's file so that it is either the old one or the complete new one, never half of either.

Every writer of a file a user keeps (checkpoints, reports, plots, exported models, run files) writes to a
temporary file in the same folder and renames it over the final name only once it is complete
(`os.replace` is atomic on one file system). A kill -9 at any moment therefore leaves the previous file
intact (plus, at worst, a hidden `.NAME.tmp-…` file beside it); an exception removes the temporary file
and leaves the previous one untouched.

    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(text)

Torch-free: the device side uses it too.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from firmware_bridge.errors import UserError

# errors that describe where the user asked us to write (permissions, read-only or full disk)
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def temp_path_for(final: Path) -> Path:
    """A hidden, unique name in the same folder that keeps the suffix (writers that pick the format from the
    extension, such as matplotlib's savefig, still see `.png`)."""
    return final.with_name(f".{final.stem}.tmp-{os.getpid()}-{secrets.token_hex(3)}{final.suffix}")


def ensure_writable_dir(folder: str | Path, what: str = "output folder") -> Path:
    """Create `folder` if needed and prove a file can be created in it; UserError naming it otherwise."""
    folder = check_writable_dir(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{what} {folder}: cannot create it ({error.strerror or error})") from error
    return folder


def check_writable_dir(folder: str | Path, what: str = "output folder") -> Path:
    """Prove that `folder` could be created and written, without creating it (a refused command leaves no
    empty folder behind): its nearest existing ancestor must be a folder we can create files in."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what} {folder}: exists and is not a folder")
    ancestor = folder.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{what} {folder}: cannot be created, {ancestor} is a file")
    probe = temp_path_for(ancestor / "write-probe")
    try:
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise UserError(f"{what} {folder}: cannot write in {ancestor} ({error.strerror or error})") from error
    return folder


def check_writable_file(final: str | Path, what: str = "output file") -> Path:
    """Fail early (before hours of work) when `final` could not be written: a folder, or an unwritable place."""
    final = Path(final)
    if final.is_dir():
        raise UserError(f"{what} {final}: is a folder, expected a file name")
    check_writable_dir(final.parent, what=f"{what} {final}: folder")
    return final


@contextmanager
def atomic_path(final: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success rename it over `final`, on any failure (including
    KeyboardInterrupt) remove it. With `durable`, the data is flushed to disk before the rename, so even a
    power cut leaves the old or the new file, not an empty one."""
    final = Path(final)
    if final.is_dir():
        raise UserError(f"{final}: is a folder, expected a file name")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{final.parent}: cannot create the folder ({error.strerror or error})") from error
    tmp = temp_path_for(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer produced no file")
        if durable:
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, final)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.errno in _ENVIRONMENT_ERRNOS:  # the place, not our code: say so in one line
            raise UserError(f"{final}: cannot write ({error.strerror or error}); nothing was changed") from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(final: str | Path, text: str) -> Path:
    """`Path.write_text`, atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(final)
