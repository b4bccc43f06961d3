"""Own certificates: the checks on certificate/key pairs users bring (pure: bytes in, values out).

Beside the ACME flow, feeding TLS policy: users drop ``<name>.crt`` (the full chain, leaf
first) and ``<name>.key`` into a watched directory; the edge that watches it reads the
bytes and hands them to ``check_pair``, which either returns an ``OwnCertificate`` (the
names it covers and the single PEM nginx reads) or raises ``PairError`` with a sentence
for the operator. ``choose`` (or, for many hosts, a ``CertificateIndex``) then picks, per
routed host, the certificate that serves it in preference to ACME. Nothing here touches the
disk, and no message ever carries key material.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InternalError, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning

# The name becomes part of file names the edge writes, so no separators, no leading dot,
# and bounded. \A and \Z rather than ^ and $: ``$`` also matches before a trailing
# newline, which a file stem on Linux may contain.
PAIR_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")

# What nginx (OpenSSL) serves and clients accept; Ed448 and DSA are left out on purpose.
_OwnKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
# Any certificate block cryptography reads; a file without one is "no certificate", which
# tells the operator more than cryptography's "unable to load PEM file".
_CERTIFICATE_BLOCK = re.compile(rb"-----BEGIN (?:X509 )?CERTIFICATE-----")
_DIGEST_CHARS = 16


@dataclass(frozen=True, slots=True)
class OwnCertificate:
    """A checked pair: the DNS names it covers, its validity, and the PEM nginx reads.

    ``pem`` holds the private key, so it is kept out of ``repr``: logging the value must
    never leak the key. ``digest`` is printed into the config, so a replaced pair changes
    the config's generation and nginx reloads.
    """

    name: str
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    pem: bytes = field(repr=False)
    digest: str


class PairError(Exception):
    """A pair dockyard does not use; ``reason`` is a sentence for the operator.

    ``valid_from`` is set only when the certificate is not valid yet: the moment it
    becomes valid, so the caller can look at the pair again exactly then instead of polling.
    """

    def __init__(self, reason: str, *, valid_from: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.valid_from = valid_from


# What cryptography raises on content it cannot read. Most of it is parsed lazily (key,
# extensions), so besides the checks that expect a given failure, ``check_pair`` turns any
# of these into a PairError: a file's content must never surface as another exception.
# InvalidVersion is a certificate whose version field is out of range; InternalError is what
# OpenSSL reports for some malformed keys (an Ed25519 key labelled with Ed448's OID).
_UNREADABLE = (
    ValueError,
    UnsupportedAlgorithm,
    InternalError,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
)


def refuse_deprecated_certificates() -> None:
    """Make cryptography's warning about a serial number that is not positive an error.

    cryptography still reads such certificates but says a later release will refuse them.
    Refusing them now keeps a pair's verdict the same across upgrades, and keeps the
    warning (unstructured text) off stderr. A process-wide filter, set once at start: a
    filter swapped in around each load would race the daemon's other threads.
    """
    warnings.filterwarnings(
        "error", message="Parsed a serial number", category=CryptographyDeprecationWarning
    )


def check_pair(name: str, chain: bytes, key: bytes, now: datetime) -> OwnCertificate:
    """The pair ``name`` (``<name>.crt`` holding ``chain``, ``<name>.key`` holding ``key``).

    Raises ``PairError`` (and nothing else, whatever the bytes) when the name, either
    file, the match between key and leaf, the leaf's DNS names or its validity at ``now``
    (an aware time) rule the pair out.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not PAIR_NAME_RE.match(name):
        raise PairError(
            f"the pair name {name!r} is not usable: it must start with a letter or digit"
            " and hold at most 100 letters, digits, dots, dashes and underscores"
        )
    try:
        return _check(name, chain, key, now)
    except _UNREADABLE:
        # cryptography's message is not quoted: it may describe the key.
        raise PairError(
            f"{name}.crt or {name}.key holds something dockyard cannot read"
            " (a malformed or unsupported certificate or key)"
        ) from None


def _check(name: str, chain: bytes, key: bytes, now: datetime) -> OwnCertificate:
    certificates = _load_chain(name, chain)
    private_key = _load_key(name, key)
    leaf = certificates[0]
    _check_match(name, certificates, private_key)
    names = _dns_names(name, leaf)
    not_before = leaf.not_valid_before_utc.astimezone(UTC)
    not_after = leaf.not_valid_after_utc.astimezone(UTC)
    if not_after <= now:
        raise PairError(f"the certificate in {name}.crt expired at {_iso(not_after)}")
    if not_before > now:
        raise PairError(
            f"the certificate in {name}.crt is not valid until {_iso(not_before)}",
            valid_from=not_before,
        )
    # Re-encoded rather than copied: comments, stray blocks (even a private key pasted
    # into the .crt) and odd line endings never reach nginx.
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    pem += private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    digest = hashlib.sha256(pem).hexdigest()[:_DIGEST_CHARS]
    return OwnCertificate(name, names, not_before, not_after, pem, digest)


def covers(pattern: str, host: str) -> bool:
    """Whether the SAN ``pattern`` covers ``host`` (RFC 6125: a wildcard is one whole label).

    ``*.example.org`` covers ``a.example.org`` but neither ``example.org`` nor
    ``a.b.example.org``; a wildcard host only matches the identical pattern.
    """
    pattern, host = pattern.lower(), host.lower()
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    label, dot, rest = host.partition(".")
    return bool(dot) and label not in ("", "*") and "." + rest == pattern[1:]


def choose(host: str, certificates: Iterable[OwnCertificate]) -> OwnCertificate | None:
    """The certificate serving ``host``, or None when none covers it.

    An exact name beats a wildcard (the operator made it for this host), then the one
    that lasts longest, then the pair name so the choice never depends on reading order.
    For many hosts build one ``CertificateIndex`` instead.
    """
    return CertificateIndex(certificates).choose(host)


class CertificateIndex:
    """``choose`` for many hosts over one set of certificates: built once, then a lookup.

    TLS policy asks for every routed host, several times a pass; scanning every name of
    every certificate per host made that hosts x names. Each name a certificate covers
    keeps only its best certificate (by the rule of ``choose``), and a host can only be
    covered by itself or by ``*.`` + its parent, so a lookup is two dictionary reads.
    """

    __slots__ = ("_exact", "_wildcard")

    def __init__(self, certificates: Iterable[OwnCertificate]) -> None:
        self._exact: dict[str, OwnCertificate] = {}
        self._wildcard: dict[str, OwnCertificate] = {}
        # Best first, so the first certificate to claim a name keeps it; the sort is
        # stable, so on a full tie the earlier one wins, as with ``min`` in a scan.
        for certificate in sorted(certificates, key=_rank):
            for name in certificate.names:
                pattern = name.lower()
                # A wildcard is also an exact name: of the wildcard host itself.
                self._exact.setdefault(pattern, certificate)
                if pattern.startswith("*."):
                    self._wildcard.setdefault(pattern, certificate)

    def choose(self, host: str) -> OwnCertificate | None:
        """The certificate serving ``host``, or None when none covers it (as ``choose``)."""
        host = host.lower()
        exact = self._exact.get(host)
        if exact is not None:
            # Any exact match beats every wildcard one.
            return exact
        label, dot, rest = host.partition(".")
        if not dot or label in ("", "*"):
            return None
        return self._wildcard.get("*." + rest)


def _rank(certificate: OwnCertificate) -> tuple[float, str]:
    return (-certificate.not_after.timestamp(), certificate.name)


def _load_chain(name: str, chain: bytes) -> list[x509.Certificate]:
    try:
        chain.decode("utf-8")
    except UnicodeDecodeError:
        # DER files are the usual cause: they are binary.
        raise PairError(f"{name}.crt is not a PEM text file (DER is not supported)") from None
    if not _CERTIFICATE_BLOCK.search(chain):
        raise PairError(f"{name}.crt holds no certificate (no BEGIN CERTIFICATE block)")
    try:
        return x509.load_pem_x509_certificates(chain)
    except ValueError:
        raise PairError(f"{name}.crt is not a readable PEM certificate chain") from None
    except CryptographyDeprecationWarning as warning:
        # Raised, not printed, once refuse_deprecated_certificates() ran (the daemon does).
        raise PairError(f"{name}.crt will not be readable by later versions: {warning}") from None


def _load_key(name: str, key: bytes) -> _OwnKey:
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        raise PairError(f"{name}.key is not a PEM text file (DER is not supported)") from None
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except TypeError:
        msg = f"{name}.key: the key is encrypted; dockyard needs it unencrypted"
        raise PairError(msg) from None
    except (ValueError, UnsupportedAlgorithm):
        # cryptography's message is safe, but say less: this is about a secret.
        raise PairError(f"{name}.key is not a readable PEM private key") from None
    if not isinstance(private_key, _OwnKey):
        raise PairError(
            f"the key in {name}.key is of an unsupported type ({type(private_key).__name__});"
            " dockyard takes RSA, EC and Ed25519 keys"
        )
    return private_key


def _check_match(name: str, certificates: list[x509.Certificate], private_key: _OwnKey) -> None:
    wanted = _spki(private_key.public_key())
    # The leaf alone decides; the rest of the chain is read only to explain a mismatch,
    # so a CA certificate whose key cryptography cannot read never spoils a good pair.
    leaf = _certificate_spki(certificates[0])
    if leaf == wanted:
        return
    for number, certificate in enumerate(certificates[1:], start=2):
        if _certificate_spki(certificate) == wanted:
            # The commonest mistake with hand-assembled chains: the CA certificate first.
            raise PairError(
                f"the key in {name}.key matches certificate {number} of {name}.crt,"
                " not the first; put the server certificate first, then its intermediates"
            )
    if leaf is None:
        raise PairError(
            f"the public key of the first certificate in {name}.crt is malformed or of"
            " an unsupported type"
        )
    raise PairError(f"the key in {name}.key does not match the certificate in {name}.crt")


def _certificate_spki(certificate: x509.Certificate) -> bytes | None:
    """The certificate's public key re-encoded, or None when it cannot be read."""
    try:
        return _spki(certificate.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return None


def _spki(public_key: PublicKeyTypes) -> bytes:
    # Re-encoded rather than taken from the certificate: the same EC key may come
    # compressed or not, and must still compare equal.
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _dns_names(name: str, leaf: x509.Certificate) -> tuple[str, ...]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns: list[str] = []
    except (ValueError, x509.DuplicateExtension):
        # Extensions are parsed lazily; a malformed one surfaces only here.
        raise PairError(f"the certificate in {name}.crt has unreadable extensions") from None
    else:
        dns = san.get_values_for_type(x509.DNSName)
    if not dns:
        # Clients ignore the commonName when SANs are checked, so without them the
        # certificate would match no host.
        raise PairError(f"the certificate in {name}.crt has no DNS names in subjectAltName")
    return tuple(sorted({n.lower() for n in dns}))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
