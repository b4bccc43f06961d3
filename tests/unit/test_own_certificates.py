"""Own certificates: pairs are checked, re-encoded for nginx, and chosen per host."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from daemon import own_certificates
from daemon.own_certificates import (
    PAIR_NAME_RE,
    CertificateIndex,
    OwnCertificate,
    PairError,
    check_pair,
    choose,
    covers,
    refuse_deprecated_certificates,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL
OwnKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKeyTypes, password: bytes | None = None) -> bytes:
    """``key`` as PKCS#8 PEM, encrypted with ``password`` when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def issue(
    public_key: CertificatePublicKeyTypes,
    subject: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    *,
    names: Sequence[str] = (),
    san: x509.SubjectAlternativeName | None = None,
    not_before: datetime = NOW - DAY,
    not_after: datetime = NOW + 90 * DAY,
    ca: bool = False,
) -> x509.Certificate:
    """A certificate for ``public_key``, signed by ``issuer`` (the CA when None)."""
    issuer_name, issuer_key = issuer or (CA_NAME, CA_KEY)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in names])
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


# A tiny PKI: root CA -> intermediate -> leaf, all P-256 (fast to make).
CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA_NAME = _name("Corp Root CA")
INTERMEDIATE_KEY = ec.generate_private_key(ec.SECP256R1())
INTERMEDIATE = issue(INTERMEDIATE_KEY.public_key(), "Corp Issuing CA", ca=True)
BY_INTERMEDIATE = (INTERMEDIATE.subject, INTERMEDIATE_KEY)
LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
LEAF = issue(
    LEAF_KEY.public_key(),
    "shop.example.org",
    BY_INTERMEDIATE,
    names=["Shop.Example.org", "api.example.org", "shop.example.org"],
)
CHAIN = _pem(LEAF) + _pem(INTERMEDIATE)
KEY = key_pem(LEAF_KEY)
# id-ecPublicKey (1.2.840.10045.2.1) as DER, and an arc next to it no library knows.
EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")
UNKNOWN_KEY_OID = bytes.fromhex("06072a8648ce3d0209")


def unreadable_key(certificate: x509.Certificate) -> bytes:
    """``certificate`` (with an EC key) as PEM, its key algorithm made one nobody knows.

    Its signature no longer verifies, which nothing here checks; cryptography reads it
    and fails only when asked for the public key (UnsupportedAlgorithm).
    """
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert der.count(EC_PUBLIC_KEY_OID) == 1
    renamed = der.replace(EC_PUBLIC_KEY_OID, UNKNOWN_KEY_OID)
    return _pem(x509.load_der_x509_certificate(renamed))


# CA certificates with keys dockyard does not take for a leaf (or cannot read at all).
ED448_CA = _pem(issue(ed448.Ed448PrivateKey.generate().public_key(), "Ed448 CA", ca=True))
DSA_CA = _pem(issue(dsa.generate_private_key(1024).public_key(), "DSA CA", ca=True))
UNKNOWN_KEY_CA = unreadable_key(INTERMEDIATE)


def leaf_chain(
    names: Sequence[str] = (),
    san: x509.SubjectAlternativeName | None = None,
    not_before: datetime = NOW - DAY,
    not_after: datetime = NOW + 90 * DAY,
) -> bytes:
    """The chain (leaf, intermediate) of a leaf for ``LEAF_KEY`` with these fields."""
    leaf = issue(
        LEAF_KEY.public_key(),
        "leaf",
        BY_INTERMEDIATE,
        names=names,
        san=san,
        not_before=not_before,
        not_after=not_after,
    )
    return _pem(leaf) + _pem(INTERMEDIATE)


def test_valid_pair_gives_names_validity_and_the_pem_nginx_reads() -> None:
    """Names are lower-cased, sorted, deduplicated; pem is leaf, intermediate, then the key."""
    own = check_pair("shop", CHAIN, KEY, NOW)
    assert own.name == "shop"
    assert own.names == ("api.example.org", "shop.example.org")
    assert (own.not_before, own.not_after) == (NOW - DAY, NOW + 90 * DAY)
    assert own.not_after.tzinfo is not None
    assert own.not_after.utcoffset() == timedelta(0)
    assert own.pem == _pem(LEAF) + _pem(INTERMEDIATE) + KEY
    assert x509.load_pem_x509_certificates(own.pem) == [LEAF, INTERMEDIATE]
    assert own.digest == hashlib.sha256(own.pem).hexdigest()[:16]
    assert check_pair("shop", CHAIN, KEY, NOW + DAY).digest == own.digest


@pytest.mark.parametrize(
    ("make_key", "key_format"),
    [
        # The "BEGIN EC/RSA PRIVATE KEY" form openssl often writes, and PKCS#8.
        (lambda: ec.generate_private_key(ec.SECP384R1()), TRADITIONAL),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), TRADITIONAL),
        (ed25519.Ed25519PrivateKey.generate, serialization.PrivateFormat.PKCS8),
    ],
    ids=["ec384", "rsa2048", "ed25519"],
)
def test_supported_key_types_are_accepted(
    make_key: Callable[[], OwnKey], key_format: serialization.PrivateFormat
) -> None:
    """EC, RSA and Ed25519 leaf keys all pass, and the key is re-emitted as PKCS#8."""
    key = make_key()
    leaf = issue(key.public_key(), "leaf", BY_INTERMEDIATE, names=["a.example.org"])
    key_file = key.private_bytes(
        serialization.Encoding.PEM, key_format, serialization.NoEncryption()
    )
    own = check_pair("k", _pem(leaf), key_file, NOW)
    assert own.pem.endswith(key_pem(key))
    assert own.names == ("a.example.org",)


def test_wildcard_san_is_kept_as_is() -> None:
    """A wildcard SAN is a name of the certificate, and serves the hosts it covers."""
    own = check_pair("wild", leaf_chain(names=["*.Example.org", "example.org"]), KEY, NOW)
    assert own.names == ("*.example.org", "example.org")
    assert choose("shop.example.org", [own]) == own
    assert choose("a.shop.example.org", [own]) is None


def test_comments_and_stray_blocks_never_reach_nginx() -> None:
    """Only the chain's certificates and the key are emitted: no text, no stray key block."""
    stray_key = key_pem(ec.generate_private_key(ec.SECP256R1()))
    chain = (
        "# subject=CN = shop.example.org, O = Société Générale\n".encode()
        + _pem(LEAF)
        + stray_key
        + b"issuer=CN = Corp Root CA\r\n"
        + _pem(INTERMEDIATE).replace(b"\n", b"\r\n")
    )
    own = check_pair("shop", chain, KEY, NOW)
    assert own.pem == _pem(LEAF) + _pem(INTERMEDIATE) + KEY
    assert stray_key not in own.pem


def test_repr_never_shows_the_key() -> None:
    """Logging an OwnCertificate does not leak its private key."""
    own = check_pair("shop", CHAIN, KEY, NOW)
    assert "PRIVATE KEY" not in repr(own)
    assert own.digest in repr(own)


ENCRYPTED = key_pem(LEAF_KEY, b"secret")
OTHER_KEY = key_pem(ec.generate_private_key(ec.SECP256R1()))
X25519_KEY = key_pem(x25519.X25519PrivateKey.generate())
BROKEN_BLOCK = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
DER = LEAF.public_bytes(serialization.Encoding.DER)
NO_SAN = leaf_chain()
IP_ONLY_SAN = leaf_chain(
    san=x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("::1"))])
)
UNKNOWN_KEY_LEAF = unreadable_key(LEAF) + _pem(INTERMEDIATE)


def armour(label: bytes, der: bytes) -> bytes:
    """``der`` in a PEM block labelled ``label``."""
    text = base64.encodebytes(der)
    return b"-----BEGIN " + label + b"-----\n" + text + b"-----END " + label + b"-----\n"


def patched(der: bytes, old: bytes, new: bytes) -> bytes:
    """``der`` with its first ``old`` replaced by ``new`` (which must be there)."""
    assert old in der
    return der.replace(old, new, 1)


# Found by fuzzing: a version field of 3 (v4, which does not exist) in the leaf, a negative
# serial number, and an Ed25519 key whose algorithm OID says Ed448 (OpenSSL reports an
# internal error for it).
VERSION_4_LEAF = armour(
    b"CERTIFICATE", patched(DER, b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x03")
) + _pem(INTERMEDIATE)
_SERIAL_AT = DER.index(b"\xa0\x03\x02\x01\x02\x02") + 7  # after version, INTEGER tag, length
NEGATIVE_SERIAL_LEAF = armour(
    b"CERTIFICATE", DER[:_SERIAL_AT] + bytes([DER[_SERIAL_AT] | 0x80]) + DER[_SERIAL_AT + 1 :]
) + _pem(INTERMEDIATE)
ED25519_AS_ED448_KEY = armour(
    b"PRIVATE KEY",
    patched(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        b"\x06\x03\x2b\x65\x70",
        b"\x06\x03\x2b\x65\x71",
    ),
)


@pytest.mark.parametrize(
    ("name", "chain", "key", "reason"),
    [
        ("", CHAIN, KEY, "pair name '' is not usable"),
        (".hidden", CHAIN, KEY, "is not usable"),
        ("a/b", CHAIN, KEY, "is not usable"),
        ("a b", CHAIN, KEY, "is not usable"),
        ("shop\n", CHAIN, KEY, "is not usable"),
        ("x" * 101, CHAIN, KEY, "is not usable"),
        ("shop", b"garbage", KEY, "shop.crt holds no certificate"),
        ("shop", b"", KEY, "shop.crt holds no certificate"),
        ("shop", KEY, KEY, "shop.crt holds no certificate"),
        ("shop", BROKEN_BLOCK, KEY, "shop.crt is not a readable PEM certificate chain"),
        ("shop", DER, KEY, "shop.crt is not a PEM text file"),
        ("shop", CHAIN, b"garbage", "shop.key is not a readable PEM private key"),
        ("shop", CHAIN, b"", "shop.key is not a readable PEM private key"),
        ("shop", CHAIN, CHAIN, "shop.key is not a readable PEM private key"),
        ("shop", CHAIN, b"\xff\x00", "shop.key is not a PEM text file"),
        ("shop", CHAIN, ENCRYPTED, "the key is encrypted; dockyard needs it unencrypted"),
        ("shop", CHAIN, X25519_KEY, r"unsupported type \(X25519PrivateKey\)"),
        ("shop", CHAIN, OTHER_KEY, "does not match the certificate in shop.crt"),
        ("shop", _pem(INTERMEDIATE) + _pem(LEAF), KEY, "matches certificate 2 of shop.crt"),
        ("shop", UNKNOWN_KEY_CA + CHAIN, KEY, "matches certificate 2 of shop.crt"),
        ("shop", UNKNOWN_KEY_LEAF, KEY, "first certificate in shop.crt is malformed or of an"),
        ("shop", VERSION_4_LEAF, KEY, "holds something dockyard cannot read"),
        ("shop", NEGATIVE_SERIAL_LEAF, KEY, "not be readable by later versions: .*serial number"),
        ("shop", CHAIN, ED25519_AS_ED448_KEY, "holds something dockyard cannot read"),
        ("shop", NO_SAN, KEY, "no DNS names in subjectAltName"),
        ("shop", IP_ONLY_SAN, KEY, "no DNS names in subjectAltName"),
        (
            "shop",
            leaf_chain(names=["a.example.org"], not_after=NOW - DAY),
            KEY,
            "expired at 2025-05-31T12:00:00Z",
        ),
        (
            "shop",
            leaf_chain(names=["a.example.org"], not_after=NOW),
            KEY,
            "expired at 2025-06-01T12:00:00Z",
        ),
        (
            "shop",
            leaf_chain(names=["a.example.org"], not_before=NOW + timedelta(hours=2)),
            KEY,
            "not valid until 2025-06-01T14:00:00Z",
        ),
    ],
    ids=[
        "empty-name",
        "dot-name",
        "slash-name",
        "space-name",
        "newline-name",
        "long-name",
        "garbage-chain",
        "empty-chain",
        "key-as-chain",
        "broken-chain",
        "der-chain",
        "garbage-key",
        "empty-key",
        "chain-as-key",
        "binary-key",
        "encrypted-key",
        "unsupported-key",
        "mismatch",
        "leaf-not-first",
        "unreadable-ca-first",
        "unreadable-leaf",
        "version-4-leaf",
        "negative-serial",
        "ed25519-key-labelled-ed448",
        "no-san",
        "ip-only-san",
        "expired",
        "expires-now",
        "not-yet-valid",
    ],
)
def test_unusable_pairs_are_refused_with_a_reason(
    name: str, chain: bytes, key: bytes, reason: str
) -> None:
    """Each problem gets its own sentence, which never quotes the key or another error."""
    with pytest.raises(PairError, match=reason) as caught:
        check_pair(name, chain, key, NOW)
    assert caught.value.reason == str(caught.value)
    assert caught.value.__cause__ is None
    for secret in (KEY, OTHER_KEY, ENCRYPTED):
        assert secret.splitlines()[1].decode() not in caught.value.reason
    if "not valid until" not in reason:
        assert caught.value.valid_from is None


def test_a_negative_serial_is_refused_under_the_daemons_warning_filter() -> None:
    """With the daemon's filter alone (not the suite's), a non-positive serial is refused."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        refuse_deprecated_certificates()
        with pytest.raises(PairError, match="serial number"):
            check_pair("shop", NEGATIVE_SERIAL_LEAF, KEY, NOW)


def test_a_pair_not_valid_yet_says_when_it_becomes_valid() -> None:
    """``valid_from`` is the leaf's notBefore, in UTC, so the caller can look again then."""
    start = NOW + timedelta(hours=2, seconds=30)
    chain = leaf_chain(names=["a.example.org"], not_before=start)
    with pytest.raises(PairError, match="not valid until") as caught:
        check_pair("shop", chain, KEY, NOW)
    assert caught.value.valid_from == start
    assert caught.value.valid_from.utcoffset() == timedelta(0)
    assert check_pair("shop", chain, KEY, start).not_before == start


@pytest.mark.parametrize(
    "extra", [ED448_CA, DSA_CA, UNKNOWN_KEY_CA], ids=["ed448", "dsa", "unknown-key-type"]
)
def test_chain_members_after_the_leaf_may_have_any_key(extra: bytes) -> None:
    """Only the leaf's key must match and be readable; a CA certificate's may be neither."""
    own = check_pair("shop", CHAIN + extra, KEY, NOW)
    assert own.names == ("api.example.org", "shop.example.org")
    assert own.pem.startswith(CHAIN + extra)


@pytest.mark.parametrize(
    "error",
    [ValueError, UnsupportedAlgorithm, lambda m: x509.DuplicateExtension(m, NameOID.DN_QUALIFIER)],
    ids=["value", "unsupported", "duplicate-extension"],
)
def test_unforeseen_cryptography_errors_become_pair_errors(
    monkeypatch: pytest.MonkeyPatch, error: Callable[[str], Exception]
) -> None:
    """A cryptography error from a place no check expects is a PairError, not quoted."""

    def fail(name: str, leaf: x509.Certificate) -> tuple[str, ...]:
        raise error("details about the key")

    monkeypatch.setattr(own_certificates, "_dns_names", fail)
    with pytest.raises(PairError, match="holds something dockyard cannot read") as caught:
        check_pair("shop", CHAIN, KEY, NOW)
    assert "details" not in caught.value.reason
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("name", ["a", "x" * 100, "corp-CA_1.v2", "9"])
def test_pair_names_that_are_accepted(name: str) -> None:
    """Letters, digits, dots, dashes and underscores, up to 100, not starting with a dot."""
    assert PAIR_NAME_RE.match(name)
    assert check_pair(name, CHAIN, KEY, NOW).name == name


def test_naive_now_is_a_programming_error() -> None:
    """A naive ``now`` cannot be compared with certificate times, so it is refused loudly."""
    with pytest.raises(ValueError, match="timezone-aware"):
        check_pair("shop", CHAIN, KEY, NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.org", "example.org", True),
        ("Example.ORG", "example.org", True),
        ("example.org", "EXAMPLE.org", True),
        ("example.org", "www.example.org", False),
        ("www.example.org", "example.org", False),
        ("*.example.org", "a.example.org", True),
        ("*.example.org", "A.Example.Org", True),
        ("*.Example.org", "a.example.org", True),
        ("*.example.org", "example.org", False),
        ("*.example.org", ".example.org", False),
        ("*.example.org", "a.b.example.org", False),
        ("*.example.org", "aexample.org", False),
        ("*.example.org", "a.example.org.evil", False),
        ("*.example.org", "*.example.org", True),
        ("*.example.org", "*.a.example.org", False),
        ("*.a.example.org", "*.example.org", False),
        ("a.example.org", "*.example.org", False),
    ],
)
def test_covers(pattern: str, host: str, expected: bool) -> None:
    """Exact names match case-insensitively; a wildcard covers exactly one extra label."""
    assert covers(pattern, host) is expected


def own(name: str, names: tuple[str, ...], days: int = 90) -> OwnCertificate:
    """An OwnCertificate built directly (choose only reads names, not_after and name)."""
    return OwnCertificate(name, names, NOW - DAY, NOW + days * DAY, b"", name)


def test_choose_prefers_an_exact_name_over_a_wildcard() -> None:
    """An exact SAN wins even against a wildcard that lasts longer."""
    exact, wild = own("exact", ("shop.example.org",)), own("wild", ("*.example.org",), 300)
    assert choose("shop.example.org", [wild, exact]) == exact
    assert choose("Shop.Example.org", [exact, wild]) == exact
    assert choose("api.example.org", [exact, wild]) == wild


def test_choose_then_prefers_the_later_expiry_then_the_name() -> None:
    """Among equal matches the one lasting longest wins; a tie goes to the first name."""
    short, long_ = own("a-short", ("*.example.org",), 30), own("z-long", ("*.example.org",), 60)
    assert choose("shop.example.org", [short, long_]) == long_
    assert choose("shop.example.org", [long_, short]) == long_
    b, a = own("b", ("shop.example.org",)), own("a", ("shop.example.org",))
    assert choose("shop.example.org", [b, a]) == a
    assert choose("shop.example.org", [a, b]) == a


def test_choose_returns_none_when_nothing_covers_the_host() -> None:
    """No certificate for the host (or none at all): ACME or the fallback serve it."""
    assert choose("example.org", [own("wild", ("*.example.org",))]) is None
    assert choose("example.org", []) is None
    assert choose("example.org", iter([own("apex", ("example.org",))])) is not None


def scan(host: str, certificates: Sequence[OwnCertificate]) -> OwnCertificate | None:
    """The rule spelled out over every certificate: covers, exact first, longest, name."""
    host = host.lower()
    candidates = [c for c in certificates if any(covers(n, host) for n in c.names)]
    return min(
        candidates,
        key=lambda c: (
            host not in {n.lower() for n in c.names},
            -c.not_after.timestamp(),
            c.name,
        ),
        default=None,
    )


# Few labels, so names, wildcards and ties collide often; "" and "*" test the edges.
LABELS = st.sampled_from(["a", "B", "b", "*", "", "org"])
DNS_NAMES = st.lists(LABELS, min_size=1, max_size=4).map(".".join)
CERTIFICATES = st.lists(
    st.builds(
        own,
        st.sampled_from(["p", "q", "r"]),
        st.lists(DNS_NAMES, min_size=1, max_size=4).map(tuple),
        st.integers(1, 3),
    ),
    max_size=8,
)


@given(certificates=CERTIFICATES, hosts=st.lists(DNS_NAMES, max_size=10))
def test_the_index_chooses_as_the_rule_says(
    certificates: list[OwnCertificate], hosts: list[str]
) -> None:
    """CertificateIndex and choose pick exactly what a scan of all certificates picks."""
    index = CertificateIndex(certificates)
    # Also every name the certificates hold and one label below each, with and without
    # case changes: the hosts most likely to hit an exact name or a wildcard.
    names = [n for c in certificates for n in c.names]
    for host in [*hosts, *names, *(n.upper() for n in names), *("x." + n for n in names)]:
        expected = scan(host, certificates)
        assert index.choose(host) is expected, host
        assert choose(host, certificates) is expected, host
