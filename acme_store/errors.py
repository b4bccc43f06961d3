"""The ACME side's error tree: the store and the order edge raise only these.

The daemon catches ``AcmeStoreError`` and keeps serving with fallback certificates; it
never needs to know about ``json``, ``OSError`` or the acme library's exceptions.
"""

from __future__ import annotations

from datetime import timedelta
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


class OrderError(AcmeStoreError):
    """The CA or the way to it failed an order, a registration or a renewal-info look-up.

    ``message`` is one human-readable line for logs and the store's ``last_error`` (the
    CA's problem type and detail, or what went wrong on the network); it never holds key
    material. ``retry_after`` is the CA's ``Retry-After`` (rate limits, 503), if it sent one.
    ``unreachable`` says the CA did not answer at all (network, TLS, timeout, or a 502,
    503 or 504 from in front of it): no name is to blame, so no name should back off.
    """

    def __init__(
        self, message: str, retry_after: timedelta | None = None, *, unreachable: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.unreachable = unreachable
