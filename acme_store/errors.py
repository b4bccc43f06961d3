"""The ACME side's error tree: the store and (later) the order edge raise only these.

The daemon catches ``AcmeStoreError`` and keeps serving with fallback certificates; it
never needs to know about ``json``, ``OSError`` or the acme library's exceptions.
"""

from __future__ import annotations

from pathlib import Path


class AcmeStoreError(Exception):
    """Base of every error this package raises on purpose."""


class StoreUnreadableError(AcmeStoreError):
    """The store file exists but cannot be used; it must not be overwritten."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class StoreCorruptError(StoreUnreadableError):
    """The file is not a store document this version understands (bad JSON or fields)."""


class StorePermissionError(StoreUnreadableError):
    """The file is readable by group or others: private keys would be exposed."""


class StoreLockedError(AcmeStoreError):
    """Another process holds the store's lock (two daemons on one store)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is locked by another process")
        self.path = path
