"""Watched files for real: route files, your own certificates and templates, live in nginx.

Real files in real directories, the daemon as a subprocess, its nginx, and HTTP(S) requests
to it. Servers "on the host" are tests/backend.py run by this interpreter on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from docker import DockerClient  # type: ignore[import-untyped, unused-ignore]
from websockets.sync.client import connect

from tests.integration.acme_support import ISSUE_TIMEOUT, acme_env, common_name, wait_https
from tests.integration.pebble import StartPebble
from tests.integration.support import (
    REPO_ROOT,
    STABLE_SECONDS,
    UNKNOWN_HOST,
    Proxy,
    Response,
    RunProxy,
    StartBackend,
    TlsResponse,
    free_ports,
    http_request,
)

SHIPPED_TEMPLATES = REPO_ROOT / "templates"
FALLBACK_NAME = "dockyard.invalid"
# tests/backend.py's handler, bound to loopback only (its own main listens on 0.0.0.0).
_SERVE = (
    "import sys\n"
    "from tests.backend import Handler, Server\n"
    "Server(('127.0.0.1', int(sys.argv[1])), Handler).serve_forever()\n"
)


# -- servers on the host ---------------------------------------------------------------


class HostServer(NamedTuple):
    """A tests/backend.py process on 127.0.0.1: it answers with its ``name``."""

    name: str
    port: int

    @property
    def url(self) -> str:
        """The server as a route file's ``servers`` entry."""
        return f"http://127.0.0.1:{self.port}"


StartHostServer = Callable[[str], HostServer]


@pytest.fixture
def host_server() -> Iterator[StartHostServer]:
    """Factory for backend processes on 127.0.0.1 (not containers); killed after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> HostServer:
        (port,) = free_ports(1)
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(port)],
            cwd=REPO_ROOT,
            env={**os.environ, "BACKEND_NAME": name},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                error = process.stderr.read().decode(errors="replace")
                pytest.fail(f"host server {name} exited with {process.returncode}: {error}")
            try:
                if http_request("127.0.0.1", port, "ready.invalid", timeout=1).status == 200:
                    return HostServer(name, port)
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"host server {name} not answering on port {port}")
            time.sleep(0.02)

    try:
        yield start
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
            if process.stderr is not None:
                process.stderr.close()


# -- helpers ---------------------------------------------------------------------------


def served_by(name: str) -> Callable[[Response], bool]:
    """Accepts a 200 answered by the backend called ``name``."""
    return lambda r: r.status == 200 and r.json()["name"] == name


def steady_https(
    proxy: Proxy,
    host: str,
    accept: Callable[[TlsResponse], bool],
    cafile: Path | None = None,
) -> TlsResponse:
    """An HTTPS answer ``accept`` takes, asked again once old nginx workers are gone."""
    wait_https(proxy, host, cafile=cafile, accept=accept)
    time.sleep(STABLE_SECONDS)
    return wait_https(proxy, host, cafile=cafile, accept=accept, timeout=2.0)


def events(proxy: Proxy, event: str, after: int = 0, **match: object) -> list[dict[str, object]]:
    """The log lines with ``event`` and the ``match`` fields, after line ``after``."""
    return [
        entry
        for entry in proxy.logs()[after:]
        if entry.get("event") == event and all(entry.get(k) == v for k, v in match.items())
    ]


def route_yaml(name: str, host: str, *servers: str, extra: str = "") -> str:
    """A YAML route file with one route; ``extra`` holds more keys, indented by 4."""
    listed = ", ".join(f'"{server}"' for server in servers)
    return f"routes:\n  {name}:\n    host: {host}\n    servers: [{listed}]\n{extra}"


def write_atomically(path: Path, text: str) -> None:
    """Save as editors do: a hidden temp file beside it, then rename over it."""
    temporary = path.with_name(f".{path.name}.tmp{time.monotonic_ns()}")
    temporary.write_text(text)
    temporary.replace(path)


def bridge_gateway(docker_client: DockerClient) -> str:
    """The default bridge's gateway (as the daemon finds it): host processes answer there."""
    for config in docker_client.networks.get("bridge").attrs["IPAM"]["Config"] or []:
        if config.get("Gateway"):
            return str(config["Gateway"])
        if config.get("Subnet"):
            return str(next(ipaddress.ip_network(config["Subnet"], strict=False).hosts()))
    pytest.fail("the bridge network has no gateway")


def watched_dirs(tmp_path: Path, *names: str) -> list[Path]:
    """Fresh directories below ``tmp_path``."""
    found = []
    for name in names:
        directory = tmp_path / name
        directory.mkdir()
        found.append(directory)
    return found


# -- a test PKI: root, intermediate, leaf ------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey],
    *,
    ca: bool,
    days: int = 30,
    dns: tuple[str, ...] = (),
) -> x509.Certificate:
    """A certificate for ``key`` signed by ``issuer`` (its name and key)."""
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    if ca:
        usage |= {"key_cert_sign": True, "crl_sign": True}
    else:
        usage["digital_signature"] = True
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(*certificates: x509.Certificate) -> bytes:
    """Certificates as one PEM text, in order."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """An unencrypted PKCS#8 PEM private key."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class TestPki:
    """A root CA, an intermediate it signed, and a leaf (with its key) the intermediate signed."""

    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    intermediate_key: ec.EllipticCurvePrivateKey

    __test__ = False  # not a test class, whatever its name says

    @classmethod
    def make(cls, host: str) -> TestPki:
        """A fresh chain for ``host``."""
        root_key, intermediate_key, leaf_key = _key(), _key(), _key()
        root = _certificate("watched test root", root_key, ("watched test root", root_key), ca=True)
        intermediate = _certificate(
            "watched test intermediate", intermediate_key, ("watched test root", root_key), ca=True
        )
        leaf = _certificate(
            host,
            leaf_key,
            ("watched test intermediate", intermediate_key),
            ca=False,
            dns=(host,),
        )
        return cls(root, intermediate, leaf, leaf_key, intermediate_key)

    def another_leaf(self, host: str, days: int) -> x509.Certificate:
        """One more leaf for ``host`` from the same intermediate, with a key nobody keeps."""
        return _certificate(
            host,
            _key(),
            ("watched test intermediate", self.intermediate_key),
            ca=False,
            days=days,
            dns=(host,),
        )


def served_chain(port: int, host: str) -> list[x509.Certificate]:
    """The certificates the server on 127.0.0.1:``port`` sends for SNI ``host``, in order."""
    done = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            host,
            "-showcerts",
        ],
        input=b"",
        capture_output=True,
        timeout=15,
        check=False,
    )
    if b"BEGIN CERTIFICATE" not in done.stdout:
        raise AssertionError(f"openssl s_client got no certificate: {done.stderr!r}")
    return x509.load_pem_x509_certificates(done.stdout)


# -- the tests ---------------------------------------------------------------------------


def test_route_file_goes_live_follows_edits_and_goes_when_deleted(
    run_proxy: RunProxy, host_server: StartHostServer, tmp_path: Path
) -> None:
    """A route file's host serves on creation, follows edits, and answers 404 once deleted."""
    (routes,) = watched_dirs(tmp_path, "routes")
    first, second = host_server("first"), host_server("second")
    proxy = run_proxy(DOCKYARD_ROUTES_DIR=str(routes))
    unknown = proxy.get(UNKNOWN_HOST)
    assert unknown.status == 404
    assert proxy.get("static.test").status == 404

    path = routes / "static.yaml"
    path.write_text(route_yaml("static", "static.test", first.url, extra="    websocket: true\n"))
    response = proxy.wait_status("static.test", "/hello?x=1", 200)
    assert response.json()["name"] == "first"
    assert response.json()["path"] == "/hello?x=1"
    assert "X-Test" not in response.headers
    proxy.wait_log("routes_file_read", file="static.yaml", routes=1)

    path.write_text(
        route_yaml("static", "static.test", second.url, extra="    headers:\n      X-Test: v2\n")
    )
    response = proxy.wait_answer("static.test", served_by("second"))
    assert response.headers["X-Test"] == "v2"

    mark = len(proxy.logs())
    path.unlink()
    gone = proxy.wait_status("static.test", "/", 404)
    assert gone.body == proxy.get(UNKNOWN_HOST).body
    proxy.wait_log("routes_file_removed", after=mark, file="static.yaml")
    config = (proxy.state_dir / "nginx" / "nginx.conf").read_text()
    assert "static.test" not in config


def test_bad_route_files_are_reported_and_the_good_ones_serve(
    run_proxy: RunProxy, host_server: StartHostServer, tmp_path: Path
) -> None:
    """An unknown key or a server nginx cannot resolve skips that file only, with the reason."""
    (routes,) = watched_dirs(tmp_path, "routes")
    good_server = host_server("good")
    proxy = run_proxy(DOCKYARD_ROUTES_DIR=str(routes))
    (routes / "good.yaml").write_text(route_yaml("good", "good.test", good_server.url))
    (routes / "bad.yaml").write_text(
        "routes:\n"
        "  bad:\n"
        "    host: bad.test\n"
        f'    servers: ["{good_server.url}"]\n'
        "    websockt: true\n"
    )
    proxy.wait_answer("good.test", served_by("good"))
    invalid = proxy.wait_log("routes_file_invalid", file="bad.yaml")
    assert str(invalid["line"]) == "5"
    assert "routes.bad.websockt" in invalid["reason"]
    assert "did you mean routes.bad.websocket?" in invalid["reason"]
    assert proxy.get("bad.test").status == 404

    (routes / "nas.toml").write_text(
        '[routes.nas]\nhost = "nas.test"\nservers = ["http://nas.invalid:5000"]\n'
    )
    rejected = proxy.wait_log("routes_file_invalid", file="nas.toml")
    assert "nginx rejects" in rejected["reason"]
    assert "nas.invalid" in rejected["error"]
    assert "host not found" in rejected["error"]
    # the pass went on without it: a file added later is served, the others still are
    later_server = host_server("later")
    (routes / "later.yml").write_text(route_yaml("later", "later.test", later_server.url))
    proxy.wait_answer("later.test", served_by("later"))
    assert served_by("good")(proxy.get("good.test"))
    assert proxy.get("nas.test").status == 404
    assert proxy.get("bad.test").status == 404
    config = (proxy.state_dir / "nginx" / "nginx.conf").read_text()
    assert "nas.invalid" not in config


def test_files_saved_in_chunks_or_by_rename_are_read_once_settled(
    run_proxy: RunProxy, host_server: StartHostServer, tmp_path: Path
) -> None:
    """A file written in pauses or saved by temp file + rename goes live, never read half-done."""
    (routes,) = watched_dirs(tmp_path, "routes")
    first, second = host_server("first"), host_server("second")
    # no cooldown between reloads: it would delay the first read past the last chunk
    proxy = run_proxy(DOCKYARD_ROUTES_DIR=str(routes), DOCKYARD_RELOAD_INTERVAL_MS="0")

    # every prefix but the whole is an invalid file: unclosed list, then `websocket: tr`
    chunks = [
        f'routes:\n  chunked:\n    host: chunked.test\n    servers: ["{first.url[:-2]}',
        f'{first.url[-2:]}"]\n    websocket: tr',
        "ue\n",
    ]
    with (routes / "chunked.yaml").open("w") as file:
        for index, chunk in enumerate(chunks):
            if index:
                time.sleep(0.05)
            file.write(chunk)
            file.flush()
    proxy.wait_answer("chunked.test", served_by("first"))

    renamed = routes / "renamed.yaml"
    write_atomically(renamed, route_yaml("renamed", "renamed.test", first.url))
    proxy.wait_answer("renamed.test", served_by("first"))
    write_atomically(renamed, route_yaml("renamed", "renamed.test", second.url))
    proxy.wait_answer("renamed.test", served_by("second"))

    assert events(proxy, "routes_file_invalid") == []
    assert len(events(proxy, "routes_file_read", file="chunked.yaml")) == 1
    assert len(events(proxy, "routes_file_read", file="renamed.yaml")) == 2
    assert not [e for e in proxy.logs() if ".tmp" in str(e.get("file", ""))]


def test_route_file_wins_a_host_a_labelled_container_also_claims(
    run_proxy: RunProxy,
    start_backend: StartBackend,
    host_server: StartHostServer,
    tmp_path: Path,
) -> None:
    """A host in a route file and in a container's labels is the file's; the conflict is logged."""
    (routes,) = watched_dirs(tmp_path, "routes")
    server = host_server("from-file")
    proxy = run_proxy(DOCKYARD_ROUTES_DIR=str(routes))
    container = start_backend({"host": "same.test"})
    proxy.wait_answer("same.test", served_by(container.name))

    (routes / "same.yaml").write_text(route_yaml("same", "same.test", server.url))
    proxy.wait_answer("same.test", served_by("from-file"))
    conflict = proxy.wait_log("route_conflict", container=container.name, host="same.test")
    assert "same.yaml" in conflict["reason"]
    assert "route files win over labels" in conflict["reason"]

    (routes / "same.yaml").unlink()
    proxy.wait_answer("same.test", served_by(container.name))


def test_own_certificate_is_served_with_its_chain_and_removed_again(
    run_proxy: RunProxy, host_server: StartHostServer, tmp_path: Path
) -> None:
    """A certificate pair in the certs dir replaces the fallback; a mismatched pair is not used."""
    routes, certs = watched_dirs(tmp_path, "routes", "certs")
    pki = TestPki.make("own.test")
    root_file = tmp_path / "test-root.pem"
    root_file.write_bytes(pem(pki.root))
    server = host_server("own")
    proxy = run_proxy(DOCKYARD_ROUTES_DIR=str(routes), DOCKYARD_CERTS_DIR=str(certs))
    (routes / "own.yaml").write_text(route_yaml("own", "own.test", server.url))
    proxy.wait_status("own.test", "/", 200)
    fallback = steady_https(proxy, "own.test", lambda r: r.response.status == 200).certificate
    assert common_name(fallback) == FALLBACK_NAME
    assert fallback.issuer.rfc4514_string() == f"CN={FALLBACK_NAME}"

    (certs / "own.key").write_bytes(key_pem(pki.leaf_key))
    (certs / "own.crt").write_bytes(pem(pki.leaf, pki.intermediate))
    loaded = proxy.wait_log("certificate_file_loaded", file="own.crt")
    assert loaded["names"] == ["own.test"]
    # verified against the test root alone: only works if nginx sends the intermediate
    answer = steady_https(proxy, "own.test", lambda r: r.response.status == 200, cafile=root_file)
    assert answer.certificate == pki.leaf
    assert answer.response.json()["name"] == "own"
    assert served_chain(proxy.https_port, "own.test") == [pki.leaf, pki.intermediate]
    assert proxy.get("own.test").status == 301  # own certificates count as CA-issued

    # a pair that would win (it lasts longer) if it were used, but its key is another's
    (certs / "wrong.key").write_bytes(key_pem(_key()))
    (certs / "wrong.crt").write_bytes(pem(pki.another_leaf("own.test", days=90), pki.intermediate))
    # a route file written after the pair settles no sooner: once it serves, so would the pair
    marker = host_server("marker")
    (routes / "marker.yaml").write_text(route_yaml("marker", "marker.test", marker.url))
    wrong = proxy.wait_log("certificate_file_invalid", file="wrong.crt")
    assert wrong["key_file"] == "wrong.key"
    assert "does not match" in wrong["reason"]
    proxy.wait_answer("marker.test", served_by("marker"))
    assert served_chain(proxy.https_port, "own.test") == [pki.leaf, pki.intermediate]
    assert not events(proxy, "certificate_file_loaded", file="wrong.crt")
    assert "PRIVATE KEY" not in proxy.log_text()

    mark = len(proxy.logs())
    (certs / "own.crt").unlink()
    (certs / "own.key").unlink()
    back = steady_https(
        proxy, "own.test", lambda r: common_name(r.certificate) == FALLBACK_NAME
    ).certificate
    assert back == fallback
    proxy.wait_log("certificate_file_removed", after=mark, pair="own")
    assert proxy.wait_status("own.test", "/", 200).json()["name"] == "own"


def test_no_acme_order_for_names_your_certificate_covers(
    pebble_for: StartPebble, run_proxy: RunProxy, host_server: StartHostServer, tmp_path: Path
) -> None:
    """With ACME on, a host your certificate covers is served with it and never ordered,
    while another host is issued; once the pair is removed, the host is ordered too."""
    routes, certs = watched_dirs(tmp_path, "routes", "certs")
    pki = TestPki.make("mine.test")
    root_file = tmp_path / "test-root.pem"
    root_file.write_bytes(pem(pki.root))
    (certs / "mine.key").write_bytes(key_pem(pki.leaf_key))
    (certs / "mine.crt").write_bytes(pem(pki.leaf, pki.intermediate))
    http_port, https_port = free_ports(2)
    pebble = pebble_for(http_port)
    server = host_server("both")
    proxy = run_proxy(
        **acme_env(pebble, http_port, https_port),
        DOCKYARD_ROUTES_DIR=str(routes),
        DOCKYARD_CERTS_DIR=str(certs),
    )
    (routes / "two.yaml").write_text(
        f"routes:\n  mine:\n    host: mine.test\n    servers: [{server.url}]\n"
        f"  theirs:\n    host: theirs.test\n    servers: [{server.url}]\n"
    )
    proxy.wait_log("certificate_issued", timeout=ISSUE_TIMEOUT, host="theirs.test")
    answer = steady_https(proxy, "mine.test", lambda r: r.response.status == 200, cafile=root_file)
    assert answer.certificate == pki.leaf
    assert not events(proxy, "certificate_ordered", host="mine.test")

    mark = len(proxy.logs())
    (certs / "mine.crt").unlink()
    (certs / "mine.key").unlink()
    proxy.wait_log("certificate_issued", timeout=ISSUE_TIMEOUT, after=mark, host="mine.test")


def test_broken_template_edits_fall_back_to_the_last_good_templates(
    run_proxy: RunProxy,
    start_backend: StartBackend,
    host_server: StartHostServer,
    tmp_path: Path,
) -> None:
    """A template nginx rejects or Jinja cannot parse is reported by line; the good set serves."""
    routes, templates = watched_dirs(tmp_path, "routes", "templates")
    body = templates / "location_body.j2"
    shutil.copy(SHIPPED_TEMPLATES / "location_body.j2", body)
    original = body.read_text()
    server = host_server("tpl")
    proxy = run_proxy(DOCKYARD_ROUTES_DIR=str(routes), DOCKYARD_TEMPLATES=str(templates))
    (routes / "tpl.yaml").write_text(route_yaml("tpl", "tpl.test", server.url))
    proxy.wait_answer("tpl.test", served_by("tpl"))
    live = proxy.state_dir / "nginx" / "nginx.conf"

    # an unknown nginx directive: nginx -t refuses, the template line is named
    broken = original.replace("proxy_pass ", "proxy_passs ", 1)
    broken_line = next(
        number for number, line in enumerate(broken.splitlines(), start=1) if "proxy_passs " in line
    )
    mark = len(proxy.logs())
    body.write_text(broken)
    invalid = proxy.wait_log("template_invalid", after=mark)
    assert invalid["template"] == str(body)
    assert invalid["line"] == broken_line
    assert invalid["changed"] == ["location_body.j2"]
    assert "proxy_passs" in invalid["error"]
    assert served_by("tpl")(proxy.get("tpl.test"))

    # while the file is broken, a new container still gets its route
    container = start_backend({"host": "during.test"})
    proxy.wait_answer("during.test", served_by(container.name))
    assert "proxy_passs" not in live.read_text()
    assert len(events(proxy, "template_invalid", after=mark)) == 1

    # a Jinja syntax error, on a line of its own
    lines = original.splitlines(keepends=True)
    lines.insert(3, "{% bogus %}\n")
    mark = len(proxy.logs())
    body.write_text("".join(lines))
    invalid = proxy.wait_log("template_invalid", after=mark)
    assert invalid["template"] == str(body)
    assert invalid["line"] == 4
    assert "bogus" in invalid["error"]
    assert served_by("tpl")(proxy.get("tpl.test"))

    # a good edit is applied
    lines = original.splitlines(keepends=True)
    lines.insert(3, "            # edited by the watched-files test\n")
    mark = len(proxy.logs())
    body.write_text("".join(lines))
    applied = proxy.wait_log("templates_applied", after=mark)
    assert applied["changed"] == ["location_body.j2"]
    assert "# edited by the watched-files test" in live.read_text()
    assert events(proxy, "template_invalid", after=mark) == []
    proxy.wait_answer("tpl.test", served_by("tpl"))
    proxy.wait_answer("during.test", served_by(container.name))


def test_host_network_backend_is_reached_by_labels_and_by_a_route_file(
    run_proxy: RunProxy,
    start_backend: StartBackend,
    docker_client: DockerClient,
    tmp_path: Path,
) -> None:
    """A ``network_mode: host`` backend answers through its labels and through a route file."""
    (routes,) = watched_dirs(tmp_path, "routes")
    gateway = bridge_gateway(docker_client)
    (port,) = free_ports(1)
    proxy = run_proxy(DOCKYARD_ROUTES_DIR=str(routes))
    backend = start_backend(
        {"host": "jelly-labels.test", "port": str(port)}, network_mode="host", port=port
    )
    (routes / "jellyfin.yaml").write_text(
        route_yaml(
            "jellyfin", "jelly-file.test", f"http://{gateway}:{port}", extra="    websocket: true\n"
        )
    )
    by_labels = proxy.wait_status("jelly-labels.test", "/web/", 200)
    by_file = proxy.wait_status("jelly-file.test", "/web/", 200)
    assert by_labels.json()["name"] == by_file.json()["name"] == backend.name
    assert by_file.json()["path"] == "/web/"

    sock = socket.create_connection(("127.0.0.1", proxy.http_port), timeout=5)
    with connect(f"ws://jelly-file.test:{proxy.http_port}/socket", sock=sock, open_timeout=5) as ws:
        ws.send("hello jellyfin")
        assert ws.recv(timeout=5) == "hello jellyfin"
    assert f"server {gateway}:{port}" in (proxy.state_dir / "nginx" / "nginx.conf").read_text()


def test_route_file_nginx_rejected_is_tried_again_when_touched(
    run_proxy: RunProxy, host_server: StartHostServer, tmp_path: Path
) -> None:
    """A file nginx rejected is served after ``touch`` once the cause is gone (as documented)."""
    (routes,) = watched_dirs(tmp_path, "routes")
    backend_ca = tmp_path / "backend-ca.pem"  # missing for now: nginx rejects https servers
    plain = host_server("plain")
    proxy = run_proxy(DOCKYARD_ROUTES_DIR=str(routes), DOCKYARD_BACKEND_CA=str(backend_ca))
    secure = routes / "secure.yaml"
    secure.write_text(route_yaml("secure", "secure.test", f"https://127.0.0.1:{plain.port}"))
    rejected = proxy.wait_log("routes_file_invalid", file="secure.yaml")
    assert str(backend_ca) in rejected["error"]
    assert proxy.get("secure.test").status == 404

    backend_ca.write_bytes(pem(TestPki.make("ca.test").root))
    os.utime(secure)  # docs/watched-files.md: "If a server name resolves later, touch the file."
    # a file written after the touch settles no sooner: once it serves, the touch was seen
    marker = host_server("marker")
    (routes / "marker.yaml").write_text(route_yaml("marker", "marker.test", marker.url))
    proxy.wait_answer("marker.test", served_by("marker"))
    after_touch = proxy.get("secure.test").status

    # the cause is gone: the same route with different bytes is served (502: the server
    # does not speak TLS; 404 would mean the file is still skipped)
    secure.write_text(secure.read_text() + "# edited\n")
    proxy.wait_status("secure.test", "/", 502)
    assert after_touch == 502, (
        f"after touch secure.test answered {after_touch}, not 502: a route file nginx rejected "
        "stays skipped after `touch` although its cause is gone (the rejection is remembered "
        "by the file's content digest, which touch does not change); only an edit retries it"
    )
