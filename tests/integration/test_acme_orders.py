"""The ACME order edge against a real CA: Debian's Pebble validating HTTP-01 over loopback.

The challenge directory is served by a real HTTP server on the port Pebble validates on;
no part of ACME is mocked. Debian's Pebble (2.4) offers no profiles and no ARI, so those
paths are tested as a CA without them.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store

from acme_store.errors import OrderError
from acme_store.keys import ari_cert_id, load_key
from acme_store.orders import AcmeClient
from acme_store.records import Account
from tests.integration.acme_support import ChallengeServer
from tests.integration.pebble import Pebble


@pytest.fixture(scope="session")
def _remove_session_leftovers() -> None:
    """Overrides the Docker sweep: these tests start no containers and need no Docker engine."""


@pytest.fixture
def client(pebble: Pebble, challenge_server: ChallengeServer) -> AcmeClient:
    """An AcmeClient for the Pebble under test, writing answers where the server reads them."""
    return AcmeClient(pebble.directory, challenge_server.directory, timeout=5.0)


def verify_chain(chain_pem: str, root_pem: str, name: str) -> x509.Certificate:
    """Verify ``chain_pem`` as a TLS server chain for ``name`` under ``root_pem``; the leaf."""
    leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem.encode())
    root = x509.load_pem_x509_certificate(root_pem.encode())
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf, intermediates)
    return leaf


def test_issue_returns_a_chain_trusted_by_the_ca_root(
    pebble: Pebble, client: AcmeClient, challenge_server: ChallengeServer
) -> None:
    """Register and issue: a chain for both names that verifies under Pebble's root."""
    account = client.register(None, "ops@example.org")
    assert account.uri is not None
    assert account.directory == pebble.directory
    assert account.email == "ops@example.org"
    assert account.created is not None
    assert account.created.tzinfo is not None

    # a strict umask must not keep nginx's workers from reading the answers
    umask = os.umask(0o077)
    try:
        began = time.monotonic()
        issued = client.issue(
            account, ("a.test", "www.a.test"), "ec256", profile=None, replaces=None, deadline=30
        )
        seconds = time.monotonic() - began
    finally:
        os.umask(umask)

    root = pebble.root_pem()
    leaf = verify_chain(issued.chain_pem or "", root, "a.test")
    verify_chain(issued.chain_pem or "", root, "www.a.test")
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["a.test", "www.a.test"]
    assert issued.issued
    assert (issued.directory, issued.names, issued.key_type) == (
        pebble.directory,
        ("a.test", "www.a.test"),
        "ec256",
    )
    assert (issued.profile, issued.failures, issued.renew_at, issued.last_error) == (
        None,
        0,
        None,
        None,
    )
    assert issued.not_before == leaf.not_valid_before_utc
    assert issued.not_after == leaf.not_valid_after_utc
    assert issued.not_before is not None
    assert issued.not_before <= datetime.now(UTC) < (issued.not_after or issued.not_before)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    assert load_key(issued.key_pem or "").public_key().public_bytes(
        serialization.Encoding.DER, public
    ) == leaf.public_key().public_bytes(serialization.Encoding.DER, public)
    # Pebble fetched both answers over plain HTTP, by name, from files others can read
    hosts = {host.rsplit(":", 1)[0] for host, _, _ in challenge_server.served}
    assert hosts == {"a.test", "www.a.test"}
    assert {mode for _, _, mode in challenge_server.served} == {0o644}
    assert list(challenge_server.directory.iterdir()) == []
    assert stat.S_IMODE(challenge_server.directory.stat().st_mode) == 0o755
    assert seconds < 10, f"one order took {seconds:.2f} s"


def test_register_with_the_stored_account_keeps_it(pebble: Pebble, tmp_path: Path) -> None:
    """A stored, registered account is looked up, not registered again: same URL and key."""
    first = AcmeClient(pebble.directory, tmp_path).register(None, "ops@example.org")
    again = AcmeClient(pebble.directory, tmp_path).register(first, "ops@example.org")
    assert again == first


def test_register_reuses_the_key_of_an_unregistered_account(pebble: Pebble, tmp_path: Path) -> None:
    """An account without URL keeps its key; a key the CA knows gets its existing URL."""
    registered = AcmeClient(pebble.directory, tmp_path).register(None, None)
    unregistered = Account(pebble.directory, registered.key_pem)
    again = AcmeClient(pebble.directory, tmp_path).register(unregistered, None)
    assert again.key_pem == registered.key_pem
    assert again.uri == registered.uri


def test_unanswered_challenge_fails_with_the_ca_problem(
    pebble: Pebble, client: AcmeClient, challenge_server: ChallengeServer
) -> None:
    """No server on the validation port: OrderError names the host and the CA's problem type."""
    account = client.register(None, None)
    challenge_server.stop()
    with pytest.raises(OrderError) as caught:
        client.issue(account, ("down.test",), "ec256", profile=None, replaces=None, deadline=30)
    message = caught.value.message
    assert message.startswith("authorization for down.test failed: ")
    assert "urn:ietf:params:acme:error:connection" in message
    assert "\n" not in message
    assert "PRIVATE KEY" not in message
    assert "PRIVATE KEY" not in str(caught.value.__cause__)
    assert not caught.value.unreachable
    assert list(challenge_server.directory.iterdir()) == []


def test_ca_down_is_an_unreachable_order_error_and_recovers(
    pebble: Pebble, client: AcmeClient, tmp_path: Path
) -> None:
    """With Pebble stopped every call raises OrderError; back up, the account is made again."""
    account = client.register(None, None)
    pebble.stop()
    with pytest.raises(OrderError) as caught:
        client.issue(account, ("a.test",), "ec256", profile=None, replaces=None, deadline=30)
    assert caught.value.unreachable
    assert caught.value.message == (
        f"cannot talk to the CA at {pebble.directory}: connection refused"
    )
    with pytest.raises(OrderError, match="connection refused") as fresh:
        AcmeClient(pebble.directory, tmp_path).register(None, None)
    assert fresh.value.unreachable

    # Pebble forgets everything on restart: the stored account is registered anew, same key
    pebble.start()
    again = client.register(account, None)
    assert again.key_pem == account.key_pem
    assert again.uri is not None
    issued = client.issue(again, ("a.test",), "ec256", profile=None, replaces=None, deadline=30)
    verify_chain(issued.chain_pem or "", pebble.root_pem(), "a.test")


def test_untrusted_ca_certificate_is_refused(
    pebble: Pebble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS to the CA is verified: without its CA in REQUESTS_CA_BUNDLE nothing is sent."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(OrderError, match="TLS certificate not trusted") as caught:
        AcmeClient(pebble.directory, tmp_path).register(None, None)
    assert caught.value.unreachable


def test_profile_the_ca_does_not_offer_is_refused(pebble: Pebble, client: AcmeClient) -> None:
    """Asking for a profile the directory does not list fails before ordering, naming it."""
    account = client.register(None, None)
    assert client.profiles() == {}
    with pytest.raises(OrderError) as caught:
        client.issue(
            account, ("a.test",), "ec256", profile="shortlived", replaces=None, deadline=30
        )
    assert caught.value.message == "the CA does not offer profile 'shortlived' (offered: none)"


def test_without_ari_renewal_info_is_none_and_replaces_is_not_sent(
    pebble: Pebble, client: AcmeClient
) -> None:
    """Pebble 2.4 has no renewalInfo: no suggestion, a later check, and renewals still work."""
    account = client.register(None, None)
    first = client.issue(account, ("a.test",), "ec384", profile=None, replaces=None, deadline=30)
    assert not client.offers_renewal_info()
    renew_at, next_check = client.renewal_info(first.chain_pem or "")
    assert renew_at is None
    assert next_check.tzinfo is not None
    now = datetime.now(UTC)
    assert now + timedelta(hours=5) < next_check <= now + timedelta(hours=6, minutes=1)
    # a renewal names what it replaces; a CA without ARI must not see the field
    second = client.issue(
        account,
        ("a.test",),
        "rsa2048",
        profile=None,
        replaces=ari_cert_id(first.chain_pem or ""),
        deadline=30,
    )
    assert second.key_type == "rsa2048"
    assert second.chain_pem != first.chain_pem


def test_ca_in_maintenance_is_unreachable_with_its_retry_after(tmp_path: Path) -> None:
    """A 503 with Retry-After (what CAs answer in maintenance) gives both to the caller."""

    class Maintenance(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"type": "urn:ietf:params:acme:error:serverInternal", "detail": "maintenance"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Retry-After", "120")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: pytest output is for failures."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Maintenance)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        directory = f"http://127.0.0.1:{server.server_address[1]}/dir"
        with pytest.raises(OrderError) as caught:
            AcmeClient(directory, tmp_path).register(None, None)
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.message == "urn:ietf:params:acme:error:serverInternal: maintenance"
    assert caught.value.retry_after == timedelta(seconds=120)
    assert caught.value.unreachable
