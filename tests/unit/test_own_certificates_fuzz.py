"""Fuzzing ``check_pair``: whatever the two files hold, it returns a pair or a PairError.

The files come from users, so no content may surface as another exception (the watcher
would stop on it) or leak the key into a message. Hypothesis feeds arbitrary bytes, bytes
in PEM armour, and valid pairs (EC, RSA, Ed25519) mutated the way files break: cut
short, bytes flipped in the text or inside a block's DER, blocks swapped or repeated,
and CA certificates whose keys dockyard does not take (Ed448, DSA, an unknown type)
slipped into the chain.
"""

from __future__ import annotations

import base64
import re
from typing import TypeAlias

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.own_certificates import PairError, check_pair
from tests.unit.test_own_certificates import (
    BY_INTERMEDIATE,
    CHAIN,
    DSA_CA,
    ED448_CA,
    INTERMEDIATE,
    KEY,
    NOW,
    UNKNOWN_KEY_CA,
    _pem,
    issue,
    key_pem,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# A block with whatever text surrounds it, so swapping blocks keeps the file's shape.
PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)
BLOCK_BODY = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----\r?\n(.*?)-----END ", re.S)


def pair(private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """A valid chain (leaf, intermediate) and key file for ``private_key``."""
    leaf = issue(private_key.public_key(), "leaf", BY_INTERMEDIATE, names=["a.example.org"])
    return _pem(leaf) + _pem(INTERMEDIATE), key_pem(private_key)


PAIRS = [
    (CHAIN, KEY),
    pair(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    pair(ed25519.Ed25519PrivateKey.generate()),
]
EXTRA_CERTIFICATES = [ED448_CA, DSA_CA, UNKNOWN_KEY_CA]


def wrap(der: bytes) -> bytes:
    """``der`` as PEM base64, 64 characters a line."""
    text = base64.b64encode(der)
    return b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text), 64))


def armour(label: bytes, der: bytes) -> bytes:
    """``der`` in a PEM block labelled ``label``."""
    return b"-----BEGIN " + label + b"-----\n" + wrap(der) + b"-----END " + label + b"-----\n"


def split(data: bytes) -> list[bytes]:
    """``data`` cut into its PEM blocks and the text between them (joined, it is ``data``)."""
    pieces: list[bytes] = []
    start = 0
    for block in PEM_BLOCK.finditer(data):
        pieces += [data[start : block.start()], block.group()]
        start = block.end()
    return [*pieces, data[start:]]


# How a file breaks: the kind, two positions (as fractions of the length) and a byte mask.
MUTATIONS = st.tuples(
    st.sampled_from(["cut", "flip", "swap", "repeat", "der", "extra"]),
    st.floats(0, 1, exclude_max=True),
    st.floats(0, 1, exclude_max=True),
    st.integers(1, 255),
)
Mutation: TypeAlias = tuple[str, float, float, int]


def flip(data: bytes, at: float, mask: int) -> bytes:
    """``data`` with the byte at fraction ``at`` of it xor-ed with ``mask``."""
    if not data:
        return data
    i = int(len(data) * at)
    return data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]


def mutate(data: bytes, mutation: Mutation) -> bytes:
    """``data`` broken the way ``mutation`` says."""
    kind, at, other, mask = mutation
    if kind == "cut":
        return data[: int(len(data) * at)]
    if kind == "flip":
        return flip(data, at, mask)
    pieces = split(data)
    i, j = int(len(pieces) * at), int(len(pieces) * other)
    if kind == "swap":
        pieces[i], pieces[j] = pieces[j], pieces[i]
    elif kind == "repeat":
        pieces.insert(j, pieces[i])
    elif kind == "extra":
        pieces.insert(i, EXTRA_CERTIFICATES[int(len(EXTRA_CERTIFICATES) * other)])
    elif len(pieces) > 1:
        # A flip inside a block's DER reaches the parts cryptography parses lazily (key,
        # extensions), which a flip in the base64 text seldom leaves decodable. Blocks
        # are the odd pieces.
        i = 2 * int(len(pieces) // 2 * at) + 1
        body = BLOCK_BODY.search(pieces[i])
        assert body is not None
        try:
            der = base64.b64decode(body.group(1))
        except ValueError:  # an earlier mutation broke the base64
            return data
        broken = wrap(flip(der, other, mask))
        pieces[i] = pieces[i][: body.start(1)] + broken + pieces[i][body.end(1) :]
    return b"".join(pieces)


def refused_or_checked(chain: bytes, key: bytes) -> None:
    """``check_pair`` returns a pair or raises a PairError that quotes no key line."""
    try:
        own = check_pair("shop", chain, key, NOW)
    except PairError as err:
        assert err.__cause__ is None
        assert err.reason == str(err)
        for line in key.splitlines():
            if len(line) >= 16 and not line.startswith(b"-----"):
                assert line not in err.reason.encode()
    else:
        assert own.names


# Arbitrary DER in the armour of each kind of block the two files may hold.
ARMOURED = st.builds(
    armour,
    st.sampled_from([b"CERTIFICATE", b"PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY"]),
    st.binary(max_size=400),
)
CONTENT = st.one_of(st.binary(max_size=400), ARMOURED, ARMOURED.map(lambda b: CHAIN + b))


@settings(FUZZ, max_examples=1000)
@given(chain=CONTENT, key=CONTENT)
def test_arbitrary_bytes_give_only_pair_errors(chain: bytes, key: bytes) -> None:
    """Any bytes (raw or PEM-armoured) in either file: a PairError, never another exception."""
    refused_or_checked(chain, key)


@FUZZ
@given(
    base=st.sampled_from(PAIRS),
    chain_mutations=st.lists(MUTATIONS, max_size=3),
    key_mutations=st.lists(MUTATIONS, max_size=2),
)
def test_broken_pairs_give_only_pair_errors(
    base: tuple[bytes, bytes], chain_mutations: list[Mutation], key_mutations: list[Mutation]
) -> None:
    """A valid pair cut, flipped, reordered or given odd CA certificates: only PairError."""
    chain, key = base
    for mutation in chain_mutations:
        chain = mutate(chain, mutation)
    for mutation in key_mutations:
        key = mutate(key, mutation)
    refused_or_checked(chain, key)
