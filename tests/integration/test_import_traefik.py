"""Switching from Traefik v1: its certificate and account keep serving, and nothing is ordered.

The certificate comes from a real CA (Pebble) through dockyard's own ACME client, with an
RSA account key as Traefik 1.7 makes them; it is written as Traefik's ``acme.json``,
imported with ``dockyard import-traefik`` and served by a daemon started afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from acme_store import keys
from acme_store.orders import AcmeClient
from acme_store.records import Account
from tests.integration.acme_support import (
    EMAIL,
    ChallengeServer,
    acme_env,
    assert_nothing_ordered,
    root_file,
    wait_https,
)
from tests.integration.pebble import Pebble
from tests.integration.support import REPO_ROOT, RunProxy, StartBackend, free_ports
from tests.unit.test_import_traefik import (
    traefik_account,
    traefik_certificate,
    traefik_json,
    write,
)

HOST = "moved.test"


def import_traefik(source: Path, env: dict[str, str]) -> list[dict[str, object]]:
    """Run ``dockyard import-traefik`` as an operator would; its JSON log events."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "import-traefik", str(source)],
        cwd=REPO_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_imported_traefik_certificate_is_served_and_nothing_is_ordered(
    pebble: Pebble,
    challenge_server: ChallengeServer,
    run_proxy: RunProxy,
    start_backend: StartBackend,
    tmp_path: Path,
) -> None:
    """Traefik's certificate is served at once; its account is used; no order, no new account."""
    # What Traefik 1.7 holds: an RSA 4096 account and a certificate issued to it.
    client = AcmeClient(pebble.directory, challenge_server.directory, timeout=5.0)
    account = client.register(Account(pebble.directory, keys.new_key("rsa4096")), EMAIL)
    issued = client.issue(account, (HOST,), "rsa2048", profile=None, replaces=None, deadline=30)
    assert account.uri is not None and issued.chain_pem and issued.key_pem
    source = write(
        tmp_path / "traefik" / "acme.json",
        traefik_json(
            traefik_account(account.key_pem, account.uri),
            [traefik_certificate(HOST, issued.chain_pem, issued.key_pem)],
        ),
    )
    # Traefik is stopped: the daemon's nginx takes the port Pebble validates on.
    challenge_server.stop()
    env = acme_env(pebble, challenge_server.port, free_ports(1)[0])
    state = tmp_path / "state"  # run_proxy's state dir, so the store is the daemon's

    logged = import_traefik(source, {**env, "DOCKYARD_STATE_DIR": str(state)})
    assert [e["host"] for e in logged if e["event"] == "traefik_certificate_imported"] == [HOST]
    assert [e["uri"] for e in logged if e["event"] == "traefik_account_imported"] == [account.uri]

    proxy = run_proxy(**env)
    start_backend({"host": HOST})
    answer = wait_https(proxy, HOST, cafile=root_file(pebble, tmp_path))
    leaf = x509.load_pem_x509_certificate(issued.chain_pem.encode())
    assert answer.certificate.serial_number == leaf.serial_number

    # The worker signs in with the imported account before its renewal-info look-up, whose
    # answer it stores: a key that did not work would have been registered anew.
    record = _wait_stored_record(state / "acme.json", lambda r: r["ari_next_check"] is not None)
    assert record["chain"] == issued.chain_pem
    assert_nothing_ordered(proxy)
    assert not [e for e in proxy.logs() if e.get("event") == "acme_account_registered"]
    stored = json.loads((state / "acme.json").read_text())
    assert [a["uri"] for a in stored["accounts"]] == [account.uri]


def _wait_stored_record(
    store: Path, ready: Callable[[dict[str, Any]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """The store's record for HOST once ``ready(record)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        records: list[dict[str, Any]] = json.loads(store.read_text())["certificates"]
        record = next(r for r in records if r["names"][0] == HOST)
        if ready(record):
            return record
        assert time.monotonic() < deadline, f"the record never became ready: {record}"
        time.sleep(0.1)
