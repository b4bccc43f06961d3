"""Own certificates: the checks on certificate/key pairs users bring (pure: bytes in, values out).

Beside the ACME flow, feeding TLS policy: users drop ``<name>.crt`` (the full chain, leaf
first) and ``<name>.key`` into a watched directory; the edge that watches it reads the
bytes and hands them to ``check_pair``, which either returns an ``OwnCertificate`` (the
names it covers and the single PEM nginx reads) or raises ``PairError`` with a sentence
for the operator. ``choose`` then picks, per routed host, the certificate that serves it
in preference to ACME. Nothing here touches the disk, and no message ever carries key
material.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

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
    """A pair dockyard does not use; ``reason`` is a sentence for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_pair(name: str, chain: bytes, key: bytes, now: datetime) -> OwnCertificate:
    """The pair ``name`` (``<name>.crt`` holding ``chain``, ``<name>.key`` holding ``key``).

    Raises ``PairError`` when the name, either file, the match between key and leaf, the
    leaf's DNS names or its validity at ``now`` (an aware time) rule the pair out.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not PAIR_NAME_RE.match(name):
        raise PairError(
            f"the pair name {name!r} is not usable: it must start with a letter or digit"
            " and hold at most 100 letters, digits, dots, dashes and underscores"
        )
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
        raise PairError(f"the certificate in {name}.crt is not valid until {_iso(not_before)}")
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
    """
    host = host.lower()
    candidates = [c for c in certificates if any(covers(n, host) for n in c.names)]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda c: (host not in c.names, -c.not_after.timestamp(), c.name),
    )


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
    matching = [i for i, c in enumerate(certificates) if _spki(c.public_key()) == wanted]
    if matching and matching[0] == 0:
        return
    if matching:
        # The commonest mistake with hand-assembled chains: the CA certificate first.
        raise PairError(
            f"the key in {name}.key matches certificate {matching[0] + 1} of {name}.crt,"
            " not the first; put the server certificate first, then its intermediates"
        )
    raise PairError(f"the key in {name}.key does not match the certificate in {name}.crt")


def _spki(public_key: PublicKeyTypes) -> bytes:
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
