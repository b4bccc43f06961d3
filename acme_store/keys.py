"""Keys: private keys, CSRs and the facts read off certificates (pure: no network, no files).

A helper to the ACME flow (planning → orders → store): ``orders`` makes the account key,
each certificate's key and its CSR here, and reads validity and the ARI certificate id
of what the CA issued; the daemon makes its self-signed fallback certificates here.
Keys travel as PEM text because that is how the store keeps them; nothing in this module
ever puts key material into an exception message.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acme_store.records import KEY_TYPES

# The keys dockyard makes and accepts: what CAs sign and nginx serves.
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_GENERATORS: dict[str, Callable[[], PrivateKey]] = {
    "ec256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa4096": lambda: rsa.generate_private_key(public_exponent=65537, key_size=4096),
}
# X.509 caps a commonName at 64 characters; DNS names may be up to 253, so longer names
# live in the SANs only (which is all TLS clients look at anyway).
_MAX_COMMON_NAME = 64


def new_key(key_type: str) -> str:
    """A fresh private key of ``key_type`` (one of ``KEY_TYPES``), PEM (PKCS#8, unencrypted)."""
    try:
        generate = _GENERATORS[key_type]
    except KeyError:
        msg = f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}"
        raise ValueError(msg) from None
    return key_to_pem(generate())


def new_account_key() -> str:
    """A fresh ACME account key: P-256, so the account signs with ES256."""
    return key_to_pem(ec.generate_private_key(ec.SECP256R1()))


def load_key(key_pem: str) -> PrivateKey:
    """The private key in ``key_pem``; ValueError (without the key's text) when unusable."""
    try:
        key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        # cryptography's message is safe, but say less: this is about a secret
        raise ValueError("not an unencrypted PEM private key") from None
    if not isinstance(key, PrivateKey):
        msg = f"unsupported private key type {type(key).__name__}; expected EC or RSA"
        raise ValueError(msg)
    return key


def make_csr(key_pem: str, names: Sequence[str]) -> bytes:
    """A PEM certificate signing request for ``names`` (all as DNS SANs), signed by the key."""
    if not names:
        raise ValueError("a CSR needs at least one name")
    csr = (
        x509.CertificateSigningRequestBuilder()
        # An empty subject, as certbot sends: CAs take the names from the SANs only.
        .subject_name(x509.Name([]))
        .add_extension(_san(names), critical=False)
        .sign(load_key(key_pem), hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def self_signed(names: Sequence[str], key_pem: str, now: datetime, lifetime: timedelta) -> str:
    """A self-signed server certificate for ``names``, PEM, valid from an hour before ``now``.

    The hour of slack keeps clients with a slightly slow clock from rejecting it.
    """
    if not names:
        raise ValueError("a certificate needs at least one name")
    key = load_key(key_pem)
    common = names[0] if len(names[0]) <= _MAX_COMMON_NAME else None
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common)] if common is not None else []
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + lifetime)
        .add_extension(_san(names), critical=common is None)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def validity(chain_pem: str) -> tuple[datetime, datetime]:
    """The leaf's (first certificate's) not-before and not-after, as aware UTC times."""
    leaf = _leaf(chain_pem)
    return leaf.not_valid_before_utc.astimezone(UTC), leaf.not_valid_after_utc.astimezone(UTC)


def ari_cert_id(chain_pem: str) -> str:
    """The leaf's ACME Renewal Information certificate id (RFC 9773, section 4.1).

    base64url(authority key identifier) "." base64url(serial number as DER integer
    bytes), unpadded: the path under ``renewalInfo`` and the value of an order's
    ``replaces``. The same as acme's private ``_renewal_info_path_component``.
    """
    leaf = _leaf(chain_pem)
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise ValueError("certificate has no authority key identifier") from None
    if aki.key_identifier is None:
        raise ValueError("certificate's authority key identifier has no key identifier")
    serial = leaf.serial_number
    # One more bit than the magnitude needs: DER integers are signed.
    serial_bytes = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    return f"{_b64url(aki.key_identifier)}.{_b64url(serial_bytes)}"


def _leaf(chain_pem: str) -> x509.Certificate:
    try:
        certificates = x509.load_pem_x509_certificates(chain_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ValueError("not a PEM certificate chain") from None
    return certificates[0]


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName([x509.DNSName(name) for name in names])


def key_to_pem(key: PrivateKey) -> str:
    """``key`` as unencrypted PKCS#8 PEM, the form the store keeps keys in."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
