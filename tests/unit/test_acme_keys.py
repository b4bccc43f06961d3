"""Keys, CSRs, self-signed certificates, validity and ARI certificate ids (acme_store.keys)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acme_store.keys import (
    ari_cert_id,
    load_key,
    make_csr,
    new_account_key,
    new_key,
    self_signed,
    validity,
)
from acme_store.records import KEY_TYPES

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EC_KEY = new_key("ec256")


def dns_names(extensions: x509.Extensions) -> list[str]:
    """The DNS names in a SubjectAlternativeName extension."""
    san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    ("key_type", "kind", "size"),
    [
        ("ec256", ec.EllipticCurvePrivateKey, 256),
        ("ec384", ec.EllipticCurvePrivateKey, 384),
        ("rsa2048", rsa.RSAPrivateKey, 2048),
        ("rsa4096", rsa.RSAPrivateKey, 4096),
    ],
)
def test_new_key_makes_each_key_type_as_pkcs8(key_type: str, kind: type, size: int) -> None:
    """Every store key type gives an unencrypted PKCS#8 PEM key of that algorithm and size."""
    pem = new_key(key_type)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    key = load_key(pem)
    assert isinstance(key, kind)
    assert key.key_size == size


def test_new_key_covers_exactly_the_store_key_types() -> None:
    """The key types the store accepts are the ones that can be made; others are refused."""
    assert KEY_TYPES == ("ec256", "ec384", "rsa2048", "rsa4096")
    with pytest.raises(ValueError, match=r"'ed25519'; expected one of ec256, ec384"):
        new_key("ed25519")


def test_account_key_is_p256_for_es256() -> None:
    """Account keys are P-256, so the account signs with ES256."""
    key = load_key(new_account_key())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_load_key_errors_never_show_the_key() -> None:
    """A damaged key is refused with a message that holds none of its text."""
    damaged = EC_KEY[:-80] + "\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError, match="not an unencrypted PEM private key") as caught:
        load_key(damaged)
    body = EC_KEY.splitlines()[1]
    assert body[:20] not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_csr_names_every_host_as_a_san_and_is_signed_by_the_key() -> None:
    """The CSR carries all names as DNS SANs, the key's public half, and a valid signature."""
    csr = x509.load_pem_x509_csr(make_csr(EC_KEY, ["a.test", "www.a.test"]))
    assert csr.is_signature_valid
    assert dns_names(csr.extensions) == ["a.test", "www.a.test"]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    assert csr.public_key().public_bytes(serialization.Encoding.DER, public) == load_key(
        EC_KEY
    ).public_key().public_bytes(serialization.Encoding.DER, public)
    with pytest.raises(ValueError, match="at least one name"):
        make_csr(EC_KEY, [])


def test_self_signed_is_a_server_certificate_for_the_names() -> None:
    """CN is the first name, SANs all names, serverAuth, valid from an hour before now."""
    pem = self_signed(["a.test", "b.test"], EC_KEY, NOW, timedelta(days=7))
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "a.test"
    assert cert.issuer == cert.subject
    assert dns_names(cert.extensions) == ["a.test", "b.test"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_before_utc == NOW - timedelta(hours=1)
    assert cert.not_valid_after_utc == NOW + timedelta(days=7)
    cert.verify_directly_issued_by(cert)


def test_self_signed_puts_long_names_in_the_san_only() -> None:
    """A name longer than a commonName may be (64) leaves the subject empty, SANs critical."""
    long_name = "x" * 60 + ".example.org"
    cert = x509.load_pem_x509_certificate(
        self_signed([long_name], EC_KEY, NOW, timedelta(days=1)).encode()
    )
    assert cert.subject == x509.Name([])
    assert dns_names(cert.extensions) == [long_name]
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_validity_reads_the_leaf_as_aware_utc() -> None:
    """validity() reports the first certificate of a chain, in UTC."""
    leaf = self_signed(["a.test"], EC_KEY, NOW, timedelta(days=90))
    other = self_signed(["b.test"], EC_KEY, NOW - timedelta(days=400), timedelta(days=30))
    not_before, not_after = validity(leaf + other)
    assert (not_before, not_after) == (NOW - timedelta(hours=1), NOW + timedelta(days=90))
    assert not_before.tzinfo is UTC
    with pytest.raises(ValueError, match="not a PEM certificate chain"):
        validity("no certificate here")


def rfc9773_example() -> str:
    """A certificate with RFC 9773's example AKI keyIdentifier and serial number."""
    key = load_key(EC_KEY)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.test")])
    aki = x509.AuthorityKeyIdentifier(
        key_identifier=bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4"),
        authority_cert_issuer=None,
        authority_cert_serial_number=None,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x0087654321)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(aki, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_ari_cert_id_matches_the_rfc_example() -> None:
    """RFC 9773 section 4.1: keyIdentifier 69:88:5B:... and serial 00:87:65:43:21."""
    assert ari_cert_id(rfc9773_example()) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_ari_cert_id_needs_an_authority_key_identifier() -> None:
    """A certificate without AKI (like our self-signed ones) has no ARI id."""
    with pytest.raises(ValueError, match="no authority key identifier"):
        ari_cert_id(self_signed(["a.test"], EC_KEY, NOW, timedelta(days=1)))
