"""A real ACME CA for integration tests: Debian's Pebble and its fake DNS, on free loopback ports.

``pebble-challtestsrv`` answers every A query with 127.0.0.1 (and no AAAA), so Pebble's
validation of any name comes to the loopback HTTP port the test passes in, where the
test serves its challenge directory. Debian ships no TLS certificate for Pebble's own
listener, so the fixture makes a small CA and a server certificate for 127.0.0.1; clients
trust it through ``ca_bundle`` (REQUESTS_CA_BUNDLE). Pebble keeps everything in memory:
``stop()`` then ``start()`` brings it back on the same ports with no accounts and a new
issuing root, which is how a test takes the CA down.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.support import free_ports

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
START_TIMEOUT = 15.0


class Pebble:
    """Pebble (ACME on ``directory``) plus challtestsrv (its DNS), started by ``start()``."""

    def __init__(
        self,
        workdir: Path,
        http_port: int,
        *,
        blocklist: Sequence[str] = (),
        validity: timedelta | None = None,
    ) -> None:
        """``blocklist``: names Pebble refuses to issue for; ``validity``: certificate lifetime."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        acme_port, management_port, tls_port, dns_port, dns_management_port = free_ports(5)
        self.directory = f"https://127.0.0.1:{acme_port}/dir"
        self.management = f"https://127.0.0.1:{management_port}"
        self.ca_bundle = workdir / "pebble-tls-ca.pem"
        self._dns_port = dns_port
        self._dns_management_port = dns_management_port
        self._config = workdir / "pebble-config.json"
        cert_path, key_path = _write_tls_material(workdir, self.ca_bundle)
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{acme_port}",
                "managementListenAddress": f"127.0.0.1:{management_port}",
                "certificate": str(cert_path),
                "privateKey": str(key_path),
                "httpPort": http_port,
                # TLS-ALPN-01 is never used here; the port only has to be one nobody answers.
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "domainBlocklist": list(blocklist),
            }
        }
        if validity is not None:
            config["pebble"]["certificateValidityPeriod"] = int(validity.total_seconds())
        self._config.write_text(json.dumps(config, indent=2))
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Pebble:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start both processes and return once Pebble serves its directory."""
        if self._processes:
            return
        dns = self._spawn(
            "challtestsrv",
            [
                CHALLTESTSRV,
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                f"127.0.0.1:{self._dns_port}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{self._dns_management_port}",
            ],
            {},
        )
        self._wait(dns, "challtestsrv", lambda: _tcp_open(self._dns_management_port))
        pebble = self._spawn(
            "pebble",
            [PEBBLE, "-config", str(self._config), "-dnsserver", f"127.0.0.1:{self._dns_port}"],
            {
                # validate at once, instead of after a random sleep of up to 15 s
                "PEBBLE_VA_NOSLEEP": "1",
                # Pebble rejects 5 % of good nonces by default to exercise clients' retry;
                # that would only make these tests flaky
                "PEBBLE_WFE_NONCEREJECT": "0",
                # each order validates its own challenge: a failure test must really fail
                "PEBBLE_AUTHZREUSE": "0",
            },
        )
        self._wait(pebble, "pebble", self._serves_directory)

    def stop(self) -> None:
        """Terminate both processes (by PID, the ones this object started); idempotent."""
        while self._processes:
            process = self._processes.pop()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def root_pem(self) -> str:
        """The root Pebble issues under (made at each start), from the management port."""
        response = requests.get(f"{self.management}/roots/0", verify=str(self.ca_bundle), timeout=5)
        response.raise_for_status()
        return response.text

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of both processes' output, for failure messages."""
        parts = []
        for name in ("challtestsrv", "pebble"):
            path = self.workdir / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._processes.append(process)
        return process

    def _wait(
        self,
        process: subprocess.Popen[bytes],
        name: str,
        ready: Callable[[], bool],
        timeout: float = START_TIMEOUT,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            code = process.poll()
            if code is not None or time.monotonic() > deadline:
                state = f"exited with {code}" if code is not None else f"not ready after {timeout}s"
                self.stop()
                raise AssertionError(f"{name} {state}:\n{self.log_tail()}")
            time.sleep(0.05)

    def _serves_directory(self) -> bool:
        try:
            return requests.get(self.directory, verify=str(self.ca_bundle), timeout=1).ok
        except requests.RequestException:
            return False


def _tcp_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _write_tls_material(workdir: Path, ca_path: Path) -> tuple[Path, Path]:
    """A throw-away CA (written to ``ca_path``) and a server certificate for 127.0.0.1."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test Pebble TLS CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path = workdir / "pebble-tls-cert.pem"
    key_path = workdir / "pebble-tls-key.pem"
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class StartPebble(Protocol):
    """The ``pebble_for`` factory's signature."""

    def __call__(self, http_port: int, *, running: bool = True, **options: Any) -> Pebble:
        """Create (and by default start) a Pebble validating on ``http_port``."""
        ...


@pytest.fixture
def pebble_for(tmp_path: Path) -> Iterator[StartPebble]:
    """Factory: a running Pebble validating HTTP-01 on the given port; stopped after the test.

    ``running=False`` creates it stopped (a CA that is down until the test calls ``start()``).
    """
    started: list[Pebble] = []

    def start(http_port: int, *, running: bool = True, **options: Any) -> Pebble:
        pebble = Pebble(tmp_path / f"pebble-{len(started) + 1}", http_port, **options)
        started.append(pebble)
        if running:
            pebble.start()
        return pebble

    yield start
    for pebble in started:
        pebble.stop()
