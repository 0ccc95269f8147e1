"""Durable, atomic file writes: temporary file, fsync, rename, fsync the directory.

A reader sees the old content or the new content, never a mix; once :func:`atomic_write` returns, the new
content survives a crash or a power loss (as far as the file system honours fsync).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = ["FILE_MODE", "atomic_write", "fsync_dir", "read_regular_file"]

FILE_MODE = 0o644
"""Files are readable by the fax group and others (status tools), writable by the owner only: never world-writable."""


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename or a new entry in it is durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically.

    Timing: blocks for two fsyncs when ``durable`` (the default). Atomicity: the rename is atomic on POSIX
    and on Windows (``os.replace``); a crash leaves at most a stray ``.tmp-*`` file, which readers ignore.
    A symlink at ``path`` is replaced, never followed.
    """
    tmp = path.with_name(f".tmp-{path.name}-{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def read_regular_file(path: Path, limit: int = 1 << 20) -> bytes:
    """Read a regular file without following a symlink; refuse anything larger than ``limit`` bytes.

    Raises :class:`OSError` (``ELOOP`` for a symlink) or :class:`ValueError` for a non-regular or oversize file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{path} is larger than {limit} bytes")
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(len(c) for c in chunks) > limit:
                raise ValueError(f"{path} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)
