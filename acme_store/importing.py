"""Importing: the certificates and the ACME account of a Traefik v1 ``acme.json``.

A side entrance to the ACME flow, used once, by ``dockyard import-traefik``, while the
daemon is stopped: what Traefik already holds goes into the store, so the planner finds
every routed name issued and switching from Traefik costs no new certificate. Three pure
steps over frozen values and one edge:

- ``parse_traefik``: the file's bytes → ``TraefikData``. A file that is not a Traefik v1
  document (not JSON, a field of the wrong type, Traefik v2's per-resolver layout) is
  refused as a whole with ``ImportRefusedError``;
- ``convert``: ``TraefikData`` → records for one CA directory. Every certificate is
  parsed with cryptography, names and validity come from the certificate itself, and an
  entry that cannot be served (expired, unparsable, key not matching) is ``Skipped`` with
  its reason. An account registered at another CA than the directory is refused;
- ``merge``: the store's ``StoreData`` and a ``Conversion`` → an ``ImportReport`` with the
  new ``StoreData``: a newer stored certificate is kept; another account stored for the
  CA refuses the import;
- ``import_traefik`` (the edge): read the file, then, holding the store lock (a running
  daemon holds it: ``StoreLockedError``), load, merge and save through ``JsonStore``'s
  atomic 0600 write. Refusals happen before anything is written.

Nothing here logs: ``dockyard import-traefik`` turns the report into log events.

What Traefik 1.6 and 1.7 write (``provider/acme``; Go's ``encoding/json``, which matches
keys without regard to case, and writes byte strings as standard base64)::

    {"Account": {"Email": "...", "Registration": {"body": {...}, "uri": "<account URL>"},
                 "PrivateKey": "<base64 DER>", "KeyType": "4096"},
     "Certificates": [{"Domain": {"Main": "a.example", "SANs": ["b.example"]},
                       "Certificate": "<base64 PEM chain>", "Key": "<base64 PEM key>"}],
     "HTTPChallenges": {...}, "TLSChallenges": {...}}

The account key is always RSA 4096 as PKCS#1 DER (``KeyType`` is the certificates' key
type: P256, P384, 2048, 4096, 8192); certificates are lego's PEM bundle (leaf first) with
a PKCS#1 or SEC1 PEM key. Traefik 1.5 and before (ACME v1) kept the account at the top
level and certificates in ``DomainsCertificate.Certs[].Certificate.{Certificate,
PrivateKey}``; Traefik 1.6+ converts that layout and drops its ACME v1 account
(``/acme/reg/<n>``), and so does this module.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acme_store.errors import AcmeStoreError
from acme_store.keys import PrivateKey, key_to_pem, load_key
from acme_store.records import KEY_TYPES, Account, Certificate, StoreData, time_text
from acme_store.store import JsonStore

# Traefik's own test for an ACME v1 account URL (provider/acme/account.go).
_ACME_V1_ACCOUNT = re.compile(r"^.*/acme/reg/\d+$")
# Directories an account URL's host names without doubt; other CAs are matched by origin.
_KNOWN_DIRECTORIES = {
    "acme-v02.api.letsencrypt.org": "https://acme-v02.api.letsencrypt.org/directory",
    "acme-staging-v02.api.letsencrypt.org": (
        "https://acme-staging-v02.api.letsencrypt.org/directory"
    ),
}
_DEFAULT_PORTS = {"https": 443, "http": 80}
# What routing accepts as a host name: only such names become records (and file names).
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
# The curves the ACME client signs with (ES256, ES384) and dockyard's certificate key types.
_CURVES = {"secp256r1": "ec256", "secp384r1": "ec384"}


class ImportRefusedError(AcmeStoreError):
    """The file cannot be imported at all; nothing was written. ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TraefikAccount:
    """The account as Traefik stored it (``PrivateKey`` still base64 text)."""

    email: str | None
    uri: str | None
    private_key: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class TraefikCertificate:
    """One certificate entry; ``domain`` (its ``Domain.Main``) only names it in messages."""

    domain: str
    certificate: str | None = field(repr=False)
    key: str | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class TraefikData:
    """A Traefik v1 ``acme.json``; ``layout`` is ``traefik-1.6`` or ``traefik-1.5``."""

    layout: str
    account: TraefikAccount | None
    certificates: tuple[TraefikCertificate, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry (or a name) not imported: ``domain`` as the file names it, and why."""

    domain: str
    reason: str


@dataclass(frozen=True, slots=True)
class Conversion:
    """What the file gives for ``directory``: at most one account, one record per name."""

    directory: str
    account: Account | None
    account_skipped: str | None
    certificates: tuple[Certificate, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True, slots=True)
class Kept:
    """A name whose stored certificate is as new as the imported one, or newer."""

    host: str
    stored_not_after: datetime
    imported_not_after: datetime


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The store after the import, and what happened to the account and each name.

    ``account`` is ``imported``, ``unchanged`` (the store has it already), ``skipped``
    (``account_reason`` says why) or ``absent`` (the file has none).
    """

    data: StoreData
    changed: bool
    directory: str
    account: str
    account_reason: str | None
    imported: tuple[Certificate, ...]
    kept: tuple[Kept, ...]
    skipped: tuple[Skipped, ...]


# -- parse -----------------------------------------------------------------------------


def parse_traefik(content: bytes) -> TraefikData:
    """Read a Traefik v1 ``acme.json``; ``ImportRefusedError`` naming what is wrong."""
    try:
        raw = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ImportRefusedError(f"not JSON: {err}") from None
    top = _object(raw, "acme.json")
    if _value(top, "DomainsCertificate") is not None:
        return _parse_before_1_6(top)
    if _value(top, "Account") is None and _value(top, "Certificates") is None:
        resolvers = sorted(k for k, v in top.items() if _looks_like_v1(v))
        if resolvers:
            raise ImportRefusedError(
                "a Traefik v2 or later acme.json (certificate resolvers: "
                f"{', '.join(resolvers)}); this command reads Traefik v1 files"
            )
        raise ImportRefusedError("not a Traefik v1 acme.json: no Account and no Certificates")
    account = _optional_object(top, "Account", "acme.json")
    entries = _optional_list(top, "Certificates", "acme.json")
    certificates = []
    for i, item in enumerate(entries):
        where = f"Certificates[{i}]"
        entry = _object(item, where)
        domain = _optional_object(entry, "Domain", where)
        certificates.append(
            TraefikCertificate(
                domain=_text(domain, "Main", f"{where}.Domain") or f"Certificates[{i}]",
                certificate=_text(entry, "Certificate", where),
                key=_text(entry, "Key", where),
            )
        )
    return TraefikData(
        layout="traefik-1.6",
        account=_account(account, "Account") if account else None,
        certificates=tuple(certificates),
    )


def _parse_before_1_6(top: Mapping[str, object]) -> TraefikData:
    """The ACME v1 layout of Traefik 1.5 and before: the account is the whole document."""
    holder = _object(_value(top, "DomainsCertificate"), "DomainsCertificate")
    certificates = []
    for i, item in enumerate(_optional_list(holder, "Certs", "DomainsCertificate")):
        where = f"DomainsCertificate.Certs[{i}]"
        entry = _object(item, where)
        domains = _optional_object(entry, "Domains", where)
        stored = _optional_object(entry, "Certificate", where)
        certificates.append(
            TraefikCertificate(
                domain=_text(domains, "Main", f"{where}.Domains") or where,
                certificate=_text(stored, "Certificate", f"{where}.Certificate"),
                key=_text(stored, "PrivateKey", f"{where}.Certificate"),
            )
        )
    has_account = _value(top, "PrivateKey") is not None or _value(top, "Email") is not None
    return TraefikData(
        layout="traefik-1.5",
        account=_account(top, "acme.json") if has_account else None,
        certificates=tuple(certificates),
    )


def _account(raw: Mapping[str, object], where: str) -> TraefikAccount:
    registration = _optional_object(raw, "Registration", where)
    return TraefikAccount(
        email=_text(raw, "Email", where),
        uri=_text(registration, "uri", f"{where}.Registration"),
        private_key=_text(raw, "PrivateKey", where),
    )


def _looks_like_v1(value: object) -> bool:
    return isinstance(value, Mapping) and any(
        _value(value, k) is not None for k in ("Account", "Certificates")
    )


def _value(raw: Mapping[str, object], key: str) -> object:
    """``raw[key]``, matching the key without regard to case as Go's encoding/json does."""
    if key in raw:
        return raw[key]
    folded = key.casefold()
    return next((v for k, v in raw.items() if k.casefold() == folded), None)


def _object(raw: object, where: str) -> Mapping[str, object]:
    if not isinstance(raw, Mapping):
        raise ImportRefusedError(f"{where}: expected an object")
    return raw


def _optional_object(raw: Mapping[str, object], key: str, where: str) -> Mapping[str, object]:
    value = _value(raw, key)
    return {} if value is None else _object(value, f"{where}.{key}")


def _optional_list(raw: Mapping[str, object], key: str, where: str) -> list[object]:
    value = _value(raw, key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImportRefusedError(f"{where}.{key}: expected a list")
    return value


def _text(raw: Mapping[str, object], key: str, where: str) -> str | None:
    value = _value(raw, key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ImportRefusedError(f"{where}.{key}: expected a string")
    return value


# -- convert ---------------------------------------------------------------------------


def convert(data: TraefikData, directory: str, now: datetime) -> Conversion:
    """The account and one record per servable host name, filed under ``directory``.

    Raises ``ImportRefusedError`` when the account belongs to another CA than
    ``directory``: its certificates would be filed under the wrong CA too.
    """
    account, account_skipped = _convert_account(data.account, directory)
    newest: dict[str, Certificate] = {}
    skipped: list[Skipped] = []
    for entry in data.certificates:
        converted = _convert_certificate(entry, directory, now)
        if isinstance(converted, Skipped):
            skipped.append(converted)
            continue
        for record in converted:
            other = newest.get(record.main)
            if other is not None:  # one of the two is skipped: the one that expires first
                skipped.append(Skipped(record.main, "the file has a newer certificate for it"))
                if _not_after(other) >= _not_after(record):
                    continue
            newest[record.main] = record
    certificates = tuple(newest[name] for name in sorted(newest))
    return Conversion(directory, account, account_skipped, certificates, tuple(skipped))


def _convert_account(
    account: TraefikAccount | None, directory: str
) -> tuple[Account | None, str | None]:
    """(the account for the store, None) or (None, why it is not imported)."""
    if account is None:
        return None, None
    if account.uri is None:
        return None, "never registered (no Registration.uri); dockyard registers its own"
    if _ACME_V1_ACCOUNT.match(account.uri):
        return None, (
            f"registered over ACME v1 ({account.uri}), which CAs no longer serve; "
            "Traefik 1.6+ drops such accounts too, and dockyard registers a new one"
        )
    _check_directory(account.uri, directory)
    try:
        key = _load_der_key(_decode(account.private_key))
    except ValueError as err:
        return None, f"the account key is unusable: {err}"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in _CURVES:
        return None, f"the account key is on curve {key.curve.name}; expected RSA, P-256 or P-384"
    return Account(directory, key_to_pem(key), uri=account.uri, email=account.email), None


def _check_directory(uri: str, directory: str) -> None:
    """Refuse an account URL that does not belong to ``directory``'s CA."""
    derived = _KNOWN_DIRECTORIES.get(urlsplit(uri).hostname or "")
    if derived == directory or (derived is None and _origin(uri) == _origin(directory)):
        return
    belongs = derived or f"a CA at {_origin(uri)}"
    raise ImportRefusedError(
        f"the account {uri} belongs to {belongs}, not to {directory}; "
        "pass --directory with the directory URL of the CA Traefik used (its caServer)"
    )


class _UnusableError(ValueError):
    """Why one certificate entry cannot be imported (never holds key material)."""


def _convert_certificate(
    entry: TraefikCertificate, directory: str, now: datetime
) -> tuple[Certificate, ...] | Skipped:
    """One record per host name on the entry's certificate, or why it is skipped."""
    try:
        return _records(entry, directory, now)
    except _UnusableError as err:
        return Skipped(entry.domain, str(err))


def _records(entry: TraefikCertificate, directory: str, now: datetime) -> tuple[Certificate, ...]:
    if entry.certificate is None or entry.key is None:
        raise _UnusableError("no certificate or no key stored (Traefik drops these too)")
    try:
        chain = x509.load_pem_x509_certificates(_decode(entry.certificate))
    except ValueError:
        raise _UnusableError("the certificate is not a base64 PEM certificate chain") from None
    try:
        key = load_key(_decode(entry.key).decode("ascii", errors="replace"))
    except ValueError as err:
        raise _UnusableError(f"the key is unusable: {err}") from None
    leaf = chain[0]
    if _public_der(key) != leaf.public_key().public_bytes(*_SPKI):
        raise _UnusableError("the key does not belong to the certificate")
    not_after = leaf.not_valid_after_utc
    if not_after <= now:
        raise _UnusableError(f"expired at {time_text(not_after)}")
    key_type = _key_type(key)
    if key_type not in KEY_TYPES:
        raise _UnusableError(f"key type {key_type} is not one of {', '.join(KEY_TYPES)}")
    names = _names(leaf)
    hosts = [n for n in names if _HOST_NAME.fullmatch(n)]
    if not hosts:
        raise _UnusableError(
            f"no host name dockyard serves among {', '.join(names) or 'no names'} "
            "(wildcards get the fallback certificate)"
        )
    chain_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    return tuple(
        Certificate(
            directory=directory,
            names=(host, *(n for n in names if n != host)),
            key_type=key_type,
            chain_pem=chain_pem,
            key_pem=key_to_pem(key),
            not_before=leaf.not_valid_before_utc,
            not_after=not_after,
        )
        for host in hosts
    )


def _names(leaf: x509.Certificate) -> list[str]:
    """The DNS names of a certificate, lower case: its SANs, else its common name."""
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = sans.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        common = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        found = [str(attribute.value) for attribute in common]
    names: list[str] = []
    for name in (n.lower() for n in found):
        if name not in names:
            names.append(name)
    return names


def _key_type(key: PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa{key.key_size}"
    return _CURVES.get(key.curve.name, key.curve.name)


def _decode(text: str | None) -> bytes:
    """Go's base64 of a byte string (standard alphabet, padded; line breaks ignored)."""
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def _load_der_key(der: bytes) -> PrivateKey:
    """A DER private key: PKCS#1 (what Traefik writes), SEC1 or PKCS#8; EC or RSA only."""
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise ValueError("not an unencrypted DER private key") from None
    if not isinstance(key, PrivateKey):
        raise ValueError(f"unsupported key type {type(key).__name__}; expected EC or RSA")
    return key


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _public_der(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(*_SPKI)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return f"{scheme}://{parts.hostname or ''}:{parts.port or _DEFAULT_PORTS.get(scheme)}"


def _not_after(record: Certificate) -> datetime:
    return record.not_after or datetime.min.replace(tzinfo=UTC)


# -- merge -----------------------------------------------------------------------------


def merge(current: StoreData, conversion: Conversion) -> ImportReport:
    """The store with the conversion merged in; newer stored certificates stay.

    Raises ``ImportRefusedError`` when the store has another account at the CA: dockyard
    keeps one account per CA, and a CA with ARI renews a certificate (``replaces``) only
    for the account that ordered it, so neither account can simply give way.
    """
    data = current
    account_state, account_reason = "absent", conversion.account_skipped
    if conversion.account_skipped is not None:
        account_state = "skipped"
    elif conversion.account is not None:
        account_state = _merge_account(current, conversion.account)
        if account_state == "imported":
            data = data.with_account(conversion.account)
    imported: list[Certificate] = []
    kept: list[Kept] = []
    for record in conversion.certificates:
        stored = current.certificate_for(record.directory, record.main)
        if stored is not None and stored.issued and _not_after(stored) >= _not_after(record):
            kept.append(Kept(record.main, _not_after(stored), _not_after(record)))
            continue
        data = data.with_certificate(record)
        imported.append(record)
    return ImportReport(
        data=data,
        changed=data != current,
        directory=conversion.directory,
        account=account_state,
        account_reason=account_reason,
        imported=tuple(imported),
        kept=tuple(kept),
        skipped=conversion.skipped,
    )


def _merge_account(current: StoreData, account: Account) -> str:
    """``imported`` into an empty place, ``unchanged`` when stored; else refused."""
    stored = current.account_for(account.directory)
    if stored is None:
        return "imported"
    if stored.uri == account.uri and _same_key(stored.key_pem, account.key_pem):
        return "unchanged"
    raise ImportRefusedError(
        f"the store already has another account at {account.directory} ({stored.uri}); "
        "dockyard keeps one account per CA, and the CA renews a certificate only for the "
        "account that ordered it: import into a store without an account for this CA"
    )


def _same_key(one: str, other: str) -> bool:
    try:
        return _public_der(load_key(one)) == _public_der(load_key(other))
    except ValueError:
        return False


# -- the edge --------------------------------------------------------------------------


def import_traefik(
    source: Path, store: JsonStore, directory: str, now: datetime | None = None
) -> ImportReport:
    """Merge the Traefik v1 ``acme.json`` at ``source`` into ``store`` for ``directory``.

    Everything that can refuse the file does so before the store is touched. The store
    is written (atomically, 0600) only when something changed, under its lock:
    ``StoreLockedError`` while a daemon runs on it, ``StoreUnreadableError`` for a store
    that is refused or unreadable (left as it is).
    """
    try:
        content = source.read_bytes()
    except OSError as err:
        raise ImportRefusedError(f"cannot read {source}: {err.strerror or err}") from None
    conversion = convert(parse_traefik(content), directory, now or datetime.now(UTC))
    with store:
        report = merge(store.load(), conversion)
        if report.changed:
            store.save(report.data)
    return report
