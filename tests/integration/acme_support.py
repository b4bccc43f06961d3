"""Helpers for tests that run the daemon against Pebble: start both, and speak HTTPS to it.

Also the fixtures for Pebble without the daemon, registered in ``conftest``: ``pebble``
validates on the port of ``challenge_server``, a plain HTTP server of the answer files.
"""

from __future__ import annotations

import ssl
import stat
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.integration.pebble import Pebble, StartPebble
from tests.integration.support import Proxy, RunProxy, TlsResponse, free_ports, https_request

EMAIL = "ops@dockyard.test"
ISSUE_TIMEOUT = 40.0


def acme_env(pebble: Pebble, http_port: int, https_port: int, **extra: str) -> dict[str, str]:
    """The daemon's environment for ACME against ``pebble``."""
    return {
        "DOCKYARD_HTTP_PORT": str(http_port),
        "DOCKYARD_HTTPS_PORT": str(https_port),
        "DOCKYARD_ACME_EMAIL": EMAIL,
        "DOCKYARD_ACME_DIRECTORY": pebble.directory,
        "REQUESTS_CA_BUNDLE": str(pebble.ca_bundle),
        **extra,
    }


def start_acme(
    pebble_for: StartPebble, run_proxy: RunProxy, *, running: bool = True, **options: Any
) -> tuple[Pebble, Proxy, dict[str, str]]:
    """Pebble validating on the proxy's HTTP port, and the daemon using it."""
    http_port, https_port = free_ports(2)
    pebble = pebble_for(http_port, running=running, **options)
    env = acme_env(pebble, http_port, https_port)
    return pebble, run_proxy(**env), env


def root_file(pebble: Pebble, tmp_path: Path) -> Path:
    """Pebble's issuing root (from its management port) as a CA file."""
    path = tmp_path / f"pebble-root-{time.monotonic_ns()}.pem"
    path.write_text(pebble.root_pem())
    return path


def wait_https(
    proxy: Proxy,
    host: str,
    *,
    cafile: Path | None = None,
    accept: Callable[[TlsResponse], bool] = lambda r: r.response.status == 200,
    timeout: float = 15.0,
) -> TlsResponse:
    """Poll HTTPS until an answer satisfies ``accept`` (reloads are asynchronous)."""
    deadline = time.monotonic() + timeout
    last = "nothing yet"
    while True:
        try:
            answer = https_request(proxy.https_port, host, cafile=cafile, timeout=2.0)
            if accept(answer):
                return answer
            last = f"{answer.response.status} from {answer.certificate.subject.rfc4514_string()}"
        except (OSError, ssl.SSLError) as err:
            last = repr(err)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"https://{host} never answered as expected within {timeout}s "
                f"(last: {last}); log tail:\n{proxy.log_tail()}"
            )
        time.sleep(0.1)


def common_name(certificate: x509.Certificate) -> str:
    """The subject CN of a certificate."""
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def wait_trusted(
    proxy: Proxy, pebble: Pebble, host: str, tmp_path: Path, **match: Any
) -> tuple[Path, TlsResponse]:
    """Wait until ``host`` is issued (``match``: more log fields) and served, verified.

    Returns Pebble's root as a CA file and the first verified answer.
    """
    proxy.wait_log("certificate_issued", timeout=ISSUE_TIMEOUT, host=host, **match)
    root = root_file(pebble, tmp_path)
    return root, wait_https(proxy, host, cafile=root)


def assert_nothing_ordered(proxy: Proxy, settle: float = 1.0) -> None:
    """After ``settle`` seconds (for a wrong order to show), the log has no order."""
    time.sleep(settle)
    ordered = [e for e in proxy.logs() if e.get("event") == "certificate_ordered"]
    assert not ordered, f"unexpected orders: {ordered}"


CHALLENGE_PATH = "/.well-known/acme-challenge/"


class ChallengeServer:
    """A plain-HTTP server answering ``/.well-known/acme-challenge/<token>`` from a directory.

    It records what it served (Host header, token, file mode), so tests can see that the
    CA really fetched the answer and that the file was readable by others.
    """

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.served: list[tuple[str, str, int]] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        """Serve in a daemon thread until ``stop()``."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.removeprefix(CHALLENGE_PATH)
                path = outer.directory / token
                if not self.path.startswith(CHALLENGE_PATH) or "/" in token or not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                mode = stat.S_IMODE(path.stat().st_mode)
                outer.served.append((self.headers.get("Host", ""), token, mode))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: pytest output is for failures."""

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def challenge_server(tmp_path: Path) -> Iterator[ChallengeServer]:
    """A running challenge server on a free loopback port, over ``tmp_path/challenges``."""
    server = ChallengeServer(tmp_path / "challenges", free_ports(1)[0])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pebble(
    pebble_for: StartPebble,
    challenge_server: ChallengeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Pebble:
    """Pebble validating on the challenge server's port, trusted through REQUESTS_CA_BUNDLE."""
    ca = pebble_for(challenge_server.port)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_bundle))
    return ca
