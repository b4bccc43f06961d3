"""Records: what the store keeps, as frozen values, and their JSON form (format version 1).

The pure middle of the package: ``store`` reads and writes the file, ``planning`` decides
from these values, and neither parses JSON on its own. Parsing is strict: a field of the
wrong type names its place in the document (``certificates[3].not_after``) so an operator
can see why a store was refused; unknown fields are kept out, never guessed at. The
format is documented in ``docs/acme-store.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FORMAT_VERSION = 1
KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa4096")


class RecordError(ValueError):
    """A document does not have the shape of a store; ``where`` is the field's place."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Account:
    """An ACME account at one CA (directory URL); a store may hold one per CA."""

    directory: str
    key_pem: str = field(repr=False)  # never in a log line or a traceback
    uri: str | None = None
    email: str | None = None
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class Certificate:
    """One certificate's state at one CA: issued material, renewal hints, failure backoff.

    A record may exist before any issuance (``chain_pem`` None) to remember failures, so
    a name that keeps failing is not ordered again before ``next_retry``.
    """

    directory: str
    names: tuple[str, ...]
    key_type: str = "ec256"
    profile: str | None = None
    chain_pem: str | None = field(default=None, repr=False)
    key_pem: str | None = field(default=None, repr=False)
    not_before: datetime | None = None
    not_after: datetime | None = None
    renew_at: datetime | None = None
    ari_next_check: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    next_retry: datetime | None = None

    @property
    def main(self) -> str:
        """The first name: the record's key together with the directory."""
        return self.names[0]

    @property
    def issued(self) -> bool:
        """Whether the record holds a certificate (with its key and validity dates)."""
        return (
            self.chain_pem is not None
            and self.key_pem is not None
            and self.not_before is not None
            and self.not_after is not None
        )


@dataclass(frozen=True, slots=True)
class StoreData:
    """The whole store document."""

    accounts: tuple[Account, ...] = ()
    certificates: tuple[Certificate, ...] = ()
    version: int = FORMAT_VERSION

    def account_for(self, directory: str) -> Account | None:
        """The account registered at ``directory``, if any."""
        return next((a for a in self.accounts if a.directory == directory), None)

    def certificate_for(self, directory: str, name: str) -> Certificate | None:
        """The record whose main name is ``name`` at ``directory``, if any."""
        return next(
            (c for c in self.certificates if c.directory == directory and c.main == name), None
        )

    def with_account(self, account: Account) -> StoreData:
        """A copy with ``account`` replacing the one of the same directory."""
        others = tuple(a for a in self.accounts if a.directory != account.directory)
        return dataclasses.replace(self, accounts=(*others, account))

    def with_certificate(self, certificate: Certificate) -> StoreData:
        """A copy with ``certificate`` replacing the record of the same directory and name."""
        key = (certificate.directory, certificate.main)
        others = tuple(c for c in self.certificates if (c.directory, c.main) != key)
        records = sorted((*others, certificate), key=lambda c: (c.directory, c.main))
        return dataclasses.replace(self, certificates=tuple(records))


def time_text(value: datetime | None) -> str | None:
    """A time as the store writes it: UTC, ISO 8601, to the second, with a ``Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def store_to_json(data: StoreData) -> dict[str, Any]:
    """The JSON document for ``data`` (keys in a fixed order, times in UTC)."""
    return {
        "version": data.version,
        "accounts": [
            {
                "directory": a.directory,
                "uri": a.uri,
                "email": a.email,
                "created": time_text(a.created),
                "key": a.key_pem,
            }
            for a in data.accounts
        ],
        "certificates": [
            {
                "directory": c.directory,
                "names": list(c.names),
                "key_type": c.key_type,
                "profile": c.profile,
                "not_before": time_text(c.not_before),
                "not_after": time_text(c.not_after),
                "renew_at": time_text(c.renew_at),
                "ari_next_check": time_text(c.ari_next_check),
                "failures": c.failures,
                "last_error": c.last_error,
                "next_retry": time_text(c.next_retry),
                "chain": c.chain_pem,
                "key": c.key_pem,
            }
            for c in data.certificates
        ],
    }


_KIND_NAMES: dict[type, str] = {str: "a string", int: "a whole number", list: "a list"}


class _Fields:
    """Typed access to one JSON object, naming the place of any bad field."""

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, Mapping):
            raise RecordError(where, "expected an object")
        self._raw: Mapping[str, Any] = raw
        self._where = where

    def _get(self, key: str, kind: type, required: bool) -> Any:
        if key not in self._raw or self._raw[key] is None:
            if required:
                raise RecordError(f"{self._where}.{key}", "missing")
            return None
        value = self._raw[key]
        # bool is an int to Python, never a count or a version here
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise RecordError(f"{self._where}.{key}", f"expected {_KIND_NAMES[kind]}")
        return value

    def text(self, key: str) -> str:
        value: str = self._get(key, str, required=True)
        return value

    def optional_text(self, key: str) -> str | None:
        value: str | None = self._get(key, str, required=False)
        return value

    def count(self, key: str) -> int:
        value: int = self._get(key, int, required=True)
        if value < 0:
            raise RecordError(f"{self._where}.{key}", "expected a count of 0 or more")
        return value

    def time(self, key: str) -> datetime | None:
        value: str | None = self._get(key, str, required=False)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"{self._where}.{key}", "expected an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise RecordError(f"{self._where}.{key}", "expected a time with a UTC offset")
        return parsed.astimezone(UTC)

    def names(self, key: str) -> tuple[str, ...]:
        value: Sequence[object] = self._get(key, list, required=True)
        if not value or not all(isinstance(n, str) and n for n in value):
            raise RecordError(f"{self._where}.{key}", "expected a non-empty list of names")
        return tuple(str(n) for n in value)

    def items(self, key: str) -> list[object]:
        value: list[object] | None = self._get(key, list, required=False)
        return value or []


def _account(raw: object, where: str) -> Account:
    fields = _Fields(raw, where)
    return Account(
        directory=fields.text("directory"),
        key_pem=fields.text("key"),
        uri=fields.optional_text("uri"),
        email=fields.optional_text("email"),
        created=fields.time("created"),
    )


def _certificate(raw: object, where: str) -> Certificate:
    fields = _Fields(raw, where)
    key_type = fields.text("key_type")
    if key_type not in KEY_TYPES:
        raise RecordError(f"{where}.key_type", f"one of {', '.join(KEY_TYPES)}")
    return Certificate(
        directory=fields.text("directory"),
        names=fields.names("names"),
        key_type=key_type,
        profile=fields.optional_text("profile"),
        chain_pem=fields.optional_text("chain"),
        key_pem=fields.optional_text("key"),
        not_before=fields.time("not_before"),
        not_after=fields.time("not_after"),
        renew_at=fields.time("renew_at"),
        ari_next_check=fields.time("ari_next_check"),
        failures=fields.count("failures"),
        last_error=fields.optional_text("last_error"),
        next_retry=fields.time("next_retry"),
    )


def store_from_json(raw: object) -> StoreData:
    """Parse a store document; raise ``RecordError`` naming the first bad field."""
    fields = _Fields(raw, "store")
    version = fields.count("version")
    if version != FORMAT_VERSION:
        raise RecordError(
            "store.version", f"format {version}; this dockyard reads format {FORMAT_VERSION}"
        )
    accounts = tuple(
        _account(item, f"accounts[{i}]") for i, item in enumerate(fields.items("accounts"))
    )
    certificates = tuple(
        _certificate(item, f"certificates[{i}]")
        for i, item in enumerate(fields.items("certificates"))
    )
    return StoreData(accounts=accounts, certificates=certificates, version=version)
