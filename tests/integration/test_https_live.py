"""Automatic HTTPS end to end: real containers, the daemon's nginx, and Pebble as the CA."""

from __future__ import annotations

import json
import ssl
import stat
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.acme_support import (
    ISSUE_TIMEOUT,
    assert_nothing_ordered,
    common_name,
    start_acme,
    wait_https,
    wait_trusted,
)
from tests.integration.pebble import StartPebble
from tests.integration.support import (
    Proxy,
    RunProxy,
    StartBackend,
    free_ports,
    https_request,
)


def stored(proxy: Proxy) -> dict[str, Any]:
    """The store document the daemon wrote."""
    document: dict[str, Any] = json.loads((proxy.state_dir / "acme.json").read_text())
    return document


def test_labelled_container_gets_a_trusted_certificate_and_http_redirects(
    pebble_for: StartPebble, run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """A labelled host is issued a certificate by the CA, served with HSTS; HTTP redirects."""
    pebble, proxy, _ = start_acme(pebble_for, run_proxy)
    start_backend({"host": "app.test"}, name=f"app-{time.monotonic_ns()}")
    _, answer = wait_trusted(proxy, pebble, "app.test", tmp_path)
    issued = proxy.wait_log("certificate_issued", host="app.test")
    assert issued["not_after"] and issued["seconds"] > 0
    assert answer.response.json()["headers"]["x-forwarded-proto"] == "https"
    assert answer.response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "app.test" in str(answer.certificate.extensions)

    redirect = proxy.get("app.test", "/some/page?x=1")
    assert redirect.status == 301
    assert redirect.headers["Location"] == f"https://app.test:{proxy.https_port}/some/page?x=1"
    assert proxy.get("app.test", "/form", method="POST", body=b"a=1").status == 308

    challenge_dir = Path(proxy.wait_log("dockyard_starting")["acme_challenge_dir"])
    (challenge_dir / "probe-token").write_text("probe-answer")
    challenge = proxy.get("app.test", "/.well-known/acme-challenge/probe-token")
    assert (challenge.status, challenge.body) == (200, b"probe-answer")
    assert proxy.get("app.test", "/.well-known/acme-challenge/missing").status == 404

    with pytest.raises(ssl.SSLError):
        https_request(proxy.https_port, "unknown.test")

    record = stored(proxy)["certificates"][0]
    assert record["names"] == ["app.test"] and record["directory"] == pebble.directory
    assert stat.S_IMODE((proxy.state_dir / "acme.json").stat().st_mode) == 0o600
    pem = proxy.state_dir / "certs" / "app.test.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in proxy.log_text()


def test_restart_reuses_the_stored_certificate(
    pebble_for: StartPebble, run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """A restarted daemon serves the stored certificate at once and orders nothing."""
    pebble, proxy, env = start_acme(pebble_for, run_proxy)
    start_backend({"host": "again.test"})
    root, first_answer = wait_trusted(proxy, pebble, "again.test", tmp_path)
    first = first_answer.certificate
    proxy.cleanup()

    second_proxy = run_proxy(**env)
    answer = wait_https(second_proxy, "again.test", cafile=root)
    assert answer.certificate.serial_number == first.serial_number
    assert_nothing_ordered(second_proxy)


def test_certificate_is_renewed_before_it_expires(
    pebble_for: StartPebble, run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """A short-lived certificate is renewed at half its lifetime and the new one served."""
    pebble, proxy, _ = start_acme(pebble_for, run_proxy, validity=timedelta(seconds=20))
    start_backend({"host": "short.test"})
    root, first_answer = wait_trusted(proxy, pebble, "short.test", tmp_path, renewal=False)
    first = first_answer.certificate

    proxy.wait_log("certificate_ordered", timeout=30, host="short.test", renewal=True)
    proxy.wait_log("certificate_issued", timeout=ISSUE_TIMEOUT, host="short.test", renewal=True)
    renewed = wait_https(
        proxy,
        "short.test",
        cafile=root,
        accept=lambda r: r.certificate.serial_number != first.serial_number,
    ).certificate
    assert renewed.not_valid_after_utc > first.not_valid_after_utc


def test_ca_down_at_start_serves_fallback_then_issues_when_back(
    pebble_for: StartPebble, run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """With the CA down HTTPS works on the fallback; retries back off; issuance when it is up."""
    pebble, proxy, _ = start_acme(pebble_for, run_proxy, running=False)
    start_backend({"host": "later.test"})
    fallback = wait_https(proxy, "later.test").certificate
    assert common_name(fallback) == "dockyard.invalid"
    assert proxy.get("later.test").status == 200  # no redirect while only the fallback exists

    first = proxy.wait_log("acme_unavailable", timeout=15)
    second = proxy.wait_log("acme_unavailable", timeout=15, after=proxy.logs().index(first) + 1)
    assert second["retry_in"] > first["retry_in"]
    assert not [e for e in proxy.logs() if e.get("event") == "certificate_failed"]

    pebble.start()
    wait_trusted(proxy, pebble, "later.test", tmp_path)


def test_one_refused_name_does_not_block_another(
    pebble_for: StartPebble, run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """A name the CA refuses backs off on its own; the other host is issued and both serve."""
    pebble, proxy, _ = start_acme(pebble_for, run_proxy, blocklist=["bad.test"])
    start_backend({"host": "bad.test"})
    start_backend({"host": "good.test"})
    failed = proxy.wait_log("certificate_failed", timeout=ISSUE_TIMEOUT, host="bad.test")
    assert failed["failures"] == 1 and failed["next_retry"]
    assert "bad.test" in failed["error"]
    wait_trusted(proxy, pebble, "good.test", tmp_path)
    assert common_name(wait_https(proxy, "bad.test").certificate) == "dockyard.invalid"
    assert proxy.get("bad.test").status == 200
    records = {r["names"][0]: r for r in stored(proxy)["certificates"]}
    assert records["bad.test"]["failures"] == 1 and records["bad.test"]["chain"] is None
    assert records["good.test"]["failures"] == 0


def test_world_readable_store_is_refused_and_left_alone(
    pebble_for: StartPebble, run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """A store others can read is refused untouched; hosts are served with the fallback."""
    store = tmp_path / "state" / "acme.json"
    store.parent.mkdir(parents=True)
    content = b'{"version": 1, "accounts": [], "certificates": []}\n'
    store.write_bytes(content)
    store.chmod(0o644)
    _, proxy, _ = start_acme(pebble_for, run_proxy)
    refused = proxy.wait_log("acme_store_refused")
    assert "chmod 600" in refused["reason"]
    start_backend({"host": "open.test"})
    assert common_name(wait_https(proxy, "open.test").certificate) == "dockyard.invalid"
    assert_nothing_ordered(proxy)
    assert store.read_bytes() == content
    assert stat.S_IMODE(store.stat().st_mode) == 0o644


def test_corrupt_store_is_set_aside_and_issuance_continues(
    pebble_for: StartPebble, run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """An unreadable store is kept aside byte for byte; a new store gets the new certificate."""
    store = tmp_path / "state" / "acme.json"
    store.parent.mkdir(parents=True)
    store.write_bytes(b'{"version": 1, "certificates": [')
    store.chmod(0o600)
    pebble, proxy, _ = start_acme(pebble_for, run_proxy)
    proxy.wait_log("acme_store_unreadable")
    aside = Path(proxy.wait_log("acme_store_set_aside")["moved_to"])
    assert aside.read_bytes() == b'{"version": 1, "certificates": ['
    start_backend({"host": "fresh.test"})
    wait_trusted(proxy, pebble, "fresh.test", tmp_path)
    assert [r["names"] for r in stored(proxy)["certificates"]] == [["fresh.test"]]


def test_second_daemon_on_the_same_store_only_reads_it(
    pebble_for: StartPebble, run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """A second daemon finds the store locked: it serves the stored certificate, orders none."""
    pebble, proxy, env = start_acme(pebble_for, run_proxy)
    start_backend({"host": "shared.test"})
    root, first_answer = wait_trusted(proxy, pebble, "shared.test", tmp_path)
    first = first_answer.certificate
    before = (proxy.state_dir / "acme.json").read_bytes()

    http_port, https_port = free_ports(2)
    second = run_proxy(
        **{
            **env,
            "DOCKYARD_HTTP_PORT": str(http_port),
            "DOCKYARD_HTTPS_PORT": str(https_port),
            "DOCKYARD_STATE_DIR": str(tmp_path / "state-2"),
            "DOCKYARD_ACME_STORE": str(proxy.state_dir / "acme.json"),
        }
    )
    second.wait_log("acme_store_locked")
    answer = wait_https(second, "shared.test", cafile=root)
    assert answer.certificate.serial_number == first.serial_number
    assert_nothing_ordered(second)
    assert (proxy.state_dir / "acme.json").read_bytes() == before
