"""Store: the JSON certificate store on disk (an edge module: the only one touching the file).

Last step of the ACME flow: orders produce records, the store keeps them. Crash safety
comes from the write path: a temp file created 0600 in the same directory, written,
fsynced, renamed over the store, and the directory fsynced, so a crash leaves the old
document or the new one, never half of either. A store that is group/world-readable,
unreadable or not a document this version understands is refused, never overwritten:
the caller logs it and may ``set_aside`` the file to start afresh. An exclusive
``flock`` on ``<store>.lock`` keeps two daemons from writing one store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from acme_store.errors import (
    StoreCorruptError,
    StoreLockedError,
    StorePermissionError,
    StoreUnreadableError,
)
from acme_store.records import RecordError, StoreData, store_from_json, store_to_json

_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700


class JsonStore:
    """One store file, its lock, and the atomic write path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock: IO[bytes] | None = None

    def __enter__(self) -> JsonStore:
        """Hold the lock for the ``with`` block (the daemon: for its whole run)."""
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def lock(self) -> None:
        """Take the exclusive lock, or raise ``StoreLockedError`` if another process has it."""
        if self._lock is not None:
            return
        self.path.parent.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, _PRIVATE_FILE)
        handle = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreLockedError(self.path) from None
        self._lock = handle

    def unlock(self) -> None:
        """Release the lock (closing the file releases the flock)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def load(self) -> StoreData:
        """The document on disk; an empty store when there is no file yet."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return StoreData()
        except OSError as err:
            raise StoreUnreadableError(self.path, err.strerror or str(err)) from err
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if mode & 0o077:
                raise StorePermissionError(
                    self.path,
                    f"mode {stat.S_IMODE(mode):04o} lets others read private keys; "
                    "allowed: 0600 (chmod 600 the file)",
                )
            try:
                raw = json.loads(handle.read().decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise StoreCorruptError(self.path, f"not JSON: {err}") from err
        try:
            return store_from_json(raw)
        except RecordError as err:
            raise StoreCorruptError(self.path, str(err)) from err

    def save(self, data: StoreData) -> None:
        """Replace the document atomically; only the lock holder may write."""
        if self._lock is None:
            msg = "save() without holding the store lock"
            raise RuntimeError(msg)
        text = json.dumps(store_to_json(data), indent=2) + "\n"
        write_atomic(self.path, text.encode("utf-8"))

    def set_aside(self) -> Path:
        """Rename an unusable store out of the way (kept, never deleted); return its new path."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
        self.path.rename(aside)
        fsync_dir(self.path.parent)
        return aside


def write_atomic(path: Path, content: bytes, mode: int = _PRIVATE_FILE) -> None:
    """Write ``content`` to ``path`` so readers see the old file or the new one, never half.

    The temp file has ``mode`` from its creation (0600 by default: keys are never readable
    by others, not even for a moment); the rename and the directory fsync make it durable.
    The daemon writes its nginx config through here too.
    """
    path.parent.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # umask, or an old temp file, may differ
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
