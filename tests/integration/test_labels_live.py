"""Every route label through the real proxy: one daemon and a handful of containers shared by
the module, each feature on its own host name (named routes), observed over HTTP."""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import hashlib
import itertools
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from docker.models.containers import Container  # type: ignore[import-untyped, unused-ignore]

from tests.integration.support import Proxy, RunProxy, StartBackend, container_ips

# Header values nginx must pass byte for byte: quotes, ';', '$' and a would-be variable.
CSP = "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.test; object-src 'none'"
TRICKY = 'say "hi"; cost $5 or ${host} \\ done'
AUTH_TOKEN = "Bearer let-me-in"
# user -> password; the user name says how its htpasswd hash is made
PASSWORDS = {"bc": "bcrypt-pw", "ap": "apr1-pw", "sh": "sha-pw"}


def route(name: str, labels: dict[str, str]) -> dict[str, str]:
    """The labels of the named route ``name``: ``route.<name>.<key>`` for each key."""
    return {f"route.{name}.{key}": value for key, value in labels.items()}


def bcrypt_hash(password: str) -> str:
    """A ``$2y$`` bcrypt hash made by the C library's crypt (libxcrypt), as htpasswd -B does."""
    library = ctypes.util.find_library("crypt")
    if library is None:
        pytest.fail("libcrypt not found: it makes the bcrypt hash (nginx uses it to check it)")
    crypt = ctypes.CDLL(library)
    crypt.crypt_gensalt.restype = crypt.crypt.restype = ctypes.c_char_p
    crypt.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    crypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = crypt.crypt_gensalt(b"$2y$", 4, None, 0)
    return str(crypt.crypt(password.encode(), setting).decode())


def openssl(*args: str, cwd: Path | None = None) -> str:
    """Run the openssl command line tool and return its output."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command makes the apr1 hash and the backend certificates")
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout


def htpasswd_users() -> str:
    """The auth.basic value: one user per hash kind (bcrypt, apr1, {SHA})."""
    sha = base64.b64encode(hashlib.sha1(PASSWORDS["sh"].encode()).digest()).decode()
    hashes = {
        "bc": bcrypt_hash(PASSWORDS["bc"]),
        "ap": openssl("passwd", "-apr1", PASSWORDS["ap"]).strip(),
        "sh": "{SHA}" + sha,
    }
    return ",".join(f"{user}:{digest}" for user, digest in hashes.items())


@dataclass(frozen=True)
class Tls:
    """A test CA's file, and (certificate, key) PEM texts: one it signed, one self-signed."""

    ca: Path
    leaf: tuple[str, str]
    self_signed: tuple[str, str]


def certificate(
    folder: Path, name: str, alt_names: tuple[str, ...] = (), signer: str | None = None
) -> tuple[str, str]:
    """A P-256 key and certificate in ``folder``: a CA without ``alt_names``, else a server's.

    Self-signed, or signed by the CA made before as ``signer``; returns both as PEM text.
    """
    extensions = []
    if alt_names:
        sans = ",".join(f"DNS:{alt}" for alt in alt_names)
        extensions = [
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            f"subjectAltName={sans}",
        ]
    issuer = ["-CA", f"{signer}.pem", "-CAkey", f"{signer}.key"] if signer else []
    files = ["-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}"]
    new = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(*new, "-days", "2", *files, *extensions, *issuer, cwd=folder)
    return (folder / f"{name}.pem").read_text(), (folder / f"{name}.key").read_text()


def make_tls(folder: Path) -> Tls:
    """A test CA, a certificate it signed for secure.test, and a self-signed one."""
    certificate(folder, "test-ca")
    return Tls(
        folder / "test-ca.pem",
        certificate(folder, "secure", ("secure.test",), signer="test-ca"),
        certificate(folder, "self", ("insecure.test", "strict.test")),
    )


def tls_env(pair: tuple[str, str]) -> dict[str, str]:
    """The backend's environment for serving TLS on 8443 with this certificate and key."""
    return {"BACKEND_TLS_CERT": pair[0], "BACKEND_TLS_KEY": pair[1]}


@dataclass(frozen=True)
class Site:
    """The module's daemon and the containers behind its hosts."""

    proxy: Proxy
    main: Container
    replicas: tuple[Container, Container]


@pytest.fixture(scope="module")
def site(
    run_module_proxy: RunProxy,
    start_module_backend: StartBackend,
    tmp_path_factory: pytest.TempPathFactory,
) -> Site:
    """One daemon (one nginx worker, so round robin is observable) and five containers."""
    tls = make_tls(tmp_path_factory.mktemp("tls"))
    proxy = run_module_proxy(DOCKYARD_BACKEND_CA=str(tls.ca), DOCKYARD_WORKER_PROCESSES="1")
    # Started first: routing resolves the forward-auth URL's container name to its address;
    # a protected container whose auth server is not up yet is rejected by nginx -t.
    auth = start_module_backend({"host": "authsrv.test"}, env={"BACKEND_AUTH": AUTH_TOKEN})
    proxy.wait_status("authsrv.test", "/", 401)
    main = start_module_backend(
        {
            "host": "plain.test",
            **route(
                "headers",
                {
                    "host": "headers.test",
                    "frame": "sameorigin",
                    "nosniff": "true",
                    "xss_filter": "true",
                    "csp": CSP,
                    "referrer_policy": "no-referrer",
                    "permissions_policy": "geolocation=(), camera=()",
                    "headers.X-Robots-Tag": "noindex, nofollow",
                    "headers.X-Tricky": TRICKY,
                    "headers.X-Powered-By": "",
                    "request_headers.X-Script-Name": "/app",
                    "request_headers.X-Tricky": TRICKY,
                },
            ),
            **route("lan", {"host": "allow.test", "allow": "127.0.0.1/32, 10.0.0.0/8"}),
            **route("wan", {"host": "deny.test", "allow": "10.0.0.0/8,192.168.0.0/16"}),
            **route("basic", {"host": "basic.test", "auth.basic": htpasswd_users()}),
            **route(
                "fwd",
                {
                    "host": "fwd.test",
                    "auth.forward": f"http://{auth.name}:8080/verify",
                    "auth.forward.response_headers": "Remote-User",
                },
            ),
            **route("body", {"host": "body.test", "max_body_size": "1k"}),
            **route("rate", {"host": "rate.test", "rate_limit": "1r/m", "rate_limit.burst": "2"}),
            **route(
                "moved",
                {"host": "moved.test", "redirect.to": "https://target.test/new$request_uri"},
            ),
            **route(
                "perm",
                {
                    "host": "perm.test",
                    "redirect.to": "https://target.test$request_uri",
                    "redirect.permanent": "true",
                },
            ),
            **route("www", {"host": "apex.test", "redirect.to": "www"}),
            **route("apex", {"host": "www.bare.test", "redirect.to": "apex"}),
            **route("exact", {"host": "paths.test", "path": "/exact", "path.exact": "true"}),
            **route("prefixed", {"host": "paths.test", "path": "/app", "path.add_prefix": "/base"}),
            **route("replaced", {"host": "paths.test", "path": "/old", "path.replace": "/new"}),
            **route("slow", {"host": "paths.test", "path": "/slow", "timeout.read": "1s"}),
            **route("nohost", {"host": "nohost.test", "pass_host_header": "false"}),
            **route("secure", {"host": "secure.test", "port": "8443", "scheme": "https"}),
            **route("api", {"host": "prio.test", "path": "/api"}),
        },
        env={
            "BACKEND_RESPONSE_HEADERS": json.dumps(
                {"X-Powered-By": "py", "X-Upstream": "kept", "X-Frame-Options": "DENY"}
            ),
            **tls_env(tls.leaf),
        },
    )
    replica = {
        "host": "rr.test",
        **route("sticky", {"host": "sticky.test", "lb": "ip_hash"}),
        **route("least", {"host": "least.test", "lb": "least_conn"}),
    }
    top = route("top", {"host": "prio.test", "priority": "10"})
    first = start_module_backend({**replica, **top}, name=f"{main.name}-a")
    second = start_module_backend(replica, name=f"{main.name}-b")
    start_module_backend(
        {
            "host": "insecure.test",
            "port": "8443",
            "scheme": "https+insecure",
            "headers.X-App": "gui-test",
            **route("strict", {"host": "strict.test", "scheme": "https"}),
            **route("gui", {"path": "/gui", "allow": "192.168.1.0/24"}),
        },
        env=tls_env(tls.self_signed),
    )
    proxy.wait_status("insecure.test", "/", 200)
    proxy.wait_status("plain.test", "/", 200)
    problems = [e for e in proxy.logs() if e["event"] in ("label_invalid", "container_rejected")]
    assert not problems, problems
    return Site(proxy, main, (first, second))


def test_security_and_custom_headers_arrive_exactly(site: Site) -> None:
    """Shorthand and headers.* labels send their exact values, quotes, ';' and '$' included."""
    response = site.proxy.get("headers.test", "/page")
    assert response.status == 200
    expected = {
        "X-Frame-Options": "SAMEORIGIN",
        "X-Content-Type-Options": "nosniff",
        "X-XSS-Protection": "1; mode=block",
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "geolocation=(), camera=()",
        "X-Robots-Tag": "noindex, nofollow",
        "X-Tricky": TRICKY,
    }
    assert {name: response.headers.get_all(name) for name in expected} == {
        name: [value] for name, value in expected.items()
    }
    # the backend's own headers pass, except the one an empty label hides and those the
    # labels replace (X-Frame-Options: the backend's DENY is not sent next to SAMEORIGIN)
    assert response.headers["X-Upstream"] == "kept"
    assert "X-Powered-By" not in response.headers
    plain = site.proxy.get("plain.test").headers
    assert (plain["X-Powered-By"], plain["X-Frame-Options"]) == ("py", "DENY")


def test_request_headers_reach_the_backend(site: Site) -> None:
    """request_headers.* labels reach the backend exactly, next to the forwarded headers."""
    seen = site.proxy.get("headers.test", "/", headers={"X-Script-Name": "/forged"}).json()
    assert seen["headers"]["x-script-name"] == "/app"
    assert seen["headers"]["x-tricky"] == TRICKY
    assert seen["headers"]["host"] == "headers.test"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"


def test_allow_admits_listed_ranges_and_refuses_others(site: Site) -> None:
    """allow: 127.0.0.1 in the list passes; a list without it answers 403."""
    assert site.proxy.get("allow.test").status == 200
    assert site.proxy.get("deny.test").status == 403


def test_allow_ignores_forwarded_addresses_from_untrusted_clients(site: Site) -> None:
    """A client claiming an allowed address in X-Forwarded-For/X-Real-IP still gets 403."""
    for header in ("X-Forwarded-For", "X-Real-IP"):
        assert site.proxy.get("deny.test", headers={header: "10.1.2.3"}).status == 403
    both = {"X-Forwarded-For": "10.1.2.3, 192.168.1.1", "X-Real-IP": "10.1.2.3"}
    assert site.proxy.get("deny.test", headers=both).status == 403


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP basic authentication."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_checks_bcrypt_apr1_and_sha_hashes(site: Site) -> None:
    """auth.basic: 401 without or with a wrong password, 200 with the right one, per hash kind."""
    anonymous = site.proxy.get("basic.test")
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="Restricted"'
    for user, password in PASSWORDS.items():
        assert site.proxy.get("basic.test", headers=basic(user, password + "x")).status == 401
        assert site.proxy.get("basic.test", headers=basic(user, password)).status == 200, user
    assert site.proxy.get("basic.test", headers=basic("nobody", "bcrypt-pw")).status == 401


def test_forward_auth_passes_401_and_copies_the_user(site: Site) -> None:
    """auth.forward: the auth server's 401 and challenge reach the client; 2xx lets through."""
    refused = site.proxy.get("fwd.test", "/private")
    assert refused.status == 401
    assert refused.headers.get_all("WWW-Authenticate") == ['Bearer realm="dockyard-test"']
    wrong = site.proxy.get("fwd.test", "/private", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    forged = {"Authorization": AUTH_TOKEN, "Remote-User": "mallory"}
    allowed = site.proxy.get("fwd.test", "/private?x=1", headers=forged)
    assert allowed.status == 200
    seen = allowed.json()
    assert seen["name"] == site.main.name
    assert (seen["path"], seen["headers"]["remote-user"]) == ("/private?x=1", "alice")
    assert "WWW-Authenticate" not in allowed.headers


def test_body_over_max_body_size_is_refused(site: Site) -> None:
    """max_body_size: a body under the limit passes, one over it answers 413."""
    small = site.proxy.get("body.test", method="POST", body=b"x" * 1000)
    assert (small.status, small.json()["body_length"]) == (200, 1000)
    assert site.proxy.get("body.test", method="POST", body=b"x" * 1100).status == 413


def test_rate_limit_answers_429_beyond_the_burst(site: Site) -> None:
    """rate_limit 1r/m with burst 2: three quick requests pass, the next ones get 429."""
    statuses = [site.proxy.get("rate.test").status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert site.proxy.get("plain.test").status == 200  # the limit is per host


def test_redirect_to_a_url_keeps_the_request_uri(site: Site) -> None:
    """redirect.to: 302 to the target with $request_uri; redirect.permanent makes it 301."""
    moved = site.proxy.get("moved.test", "/a/b?c=1&d=%20")
    assert (moved.status, moved.headers["Location"]) == (
        302,
        "https://target.test/new/a/b?c=1&d=%20",
    )
    perm = site.proxy.get("perm.test", "/x?y=2", method="POST", body=b"z")
    assert (perm.status, perm.headers["Location"]) == (301, "https://target.test/x?y=2")


def test_redirect_to_www_and_to_apex(site: Site) -> None:
    """redirect.to www/apex: the other name redirects to the served one, which answers."""
    to_www = site.proxy.get("apex.test", "/p?q=1")
    assert (to_www.status, to_www.headers["Location"]) == (302, "http://www.apex.test/p?q=1")
    assert site.proxy.get("www.apex.test", "/p").json()["path"] == "/p"
    to_apex = site.proxy.get("www.bare.test", "/p")
    assert (to_apex.status, to_apex.headers["Location"]) == (302, "http://bare.test/p")
    assert site.proxy.get("bare.test", "/p").json()["path"] == "/p"


def test_round_robin_alternates_between_replicas(site: Site) -> None:
    """lb round_robin (the default): consecutive requests alternate between two replicas."""
    names = [site.proxy.get("rr.test").json()["name"] for _ in range(6)]
    assert set(names) == {replica.name for replica in site.replicas}
    assert all(a != b for a, b in itertools.pairwise(names)), names


def test_least_conn_uses_both_replicas(site: Site) -> None:
    """lb least_conn: with no request in flight, both replicas get requests."""
    names = {site.proxy.get("least.test").json()["name"] for _ in range(6)}
    assert names == {replica.name for replica in site.replicas}


def test_ip_hash_sticks_to_one_replica(site: Site) -> None:
    """lb ip_hash: every request of one client address reaches the same replica."""
    names = {site.proxy.get("sticky.test").json()["name"] for _ in range(8)}
    assert len(names) == 1 and names <= {replica.name for replica in site.replicas}


def test_higher_priority_root_takes_a_more_specific_path(site: Site) -> None:
    """priority: a '/' route with priority 10 serves /api over another container's /api."""
    answer = site.proxy.get("prio.test", "/api/v1").json()
    assert answer["name"] == site.replicas[0].name
    shadowed = site.proxy.wait_log("route_shadowed", host="prio.test", path="/api")
    assert site.main.name in shadowed["container"]


def test_named_route_limits_a_path_of_the_plain_route(site: Site) -> None:
    """A named route takes the plain route's host, backend and headers, and adds its allow."""
    for path, status in (("/", 200), ("/gui", 403), ("/gui/settings", 403), ("/guide", 200)):
        response = site.proxy.get("insecure.test", path)
        assert (response.status, response.headers["X-App"]) == (status, "gui-test"), path


def test_path_exact_add_prefix_and_replace(site: Site) -> None:
    """path.exact matches one path only; add_prefix and replace rewrite what the backend sees."""
    assert site.proxy.get("paths.test", "/exact?v=1").json()["path"] == "/exact?v=1"
    assert site.proxy.get("paths.test", "/exact/more").status == 404
    assert site.proxy.get("paths.test", "/app/x?q=1").json()["path"] == "/base/app/x?q=1"
    assert site.proxy.get("paths.test", "/app").json()["path"] == "/base/app"
    assert site.proxy.get("paths.test", "/old/deep/x?q=1").json()["path"] == "/new?q=1"


def test_pass_host_header_false_sends_the_backend_address(site: Site) -> None:
    """pass_host_header false: the backend sees its own address as Host, not the client's."""
    host = site.proxy.get("nohost.test").json()["headers"]["host"]
    assert host == f"{container_ips(site.main)[0]}:8080"
    assert site.proxy.get("plain.test").json()["headers"]["host"] == "plain.test"


def test_short_read_timeout_answers_504(site: Site) -> None:
    """timeout.read 1s: a backend slower than that gets 504 after about a second."""
    began = time.monotonic()
    assert site.proxy.get("paths.test", "/slow?delay=4").status == 504
    assert 0.9 < time.monotonic() - began < 3
    assert site.proxy.get("paths.test", "/slow?delay=0.1").status == 200


def test_https_backends_verified_or_not(site: Site) -> None:
    """scheme https verifies the backend against DOCKYARD_BACKEND_CA; https+insecure does not."""
    assert site.proxy.get("secure.test", "/tls").json()["name"] == site.main.name
    assert site.proxy.get("insecure.test", "/tls").status == 200
    assert site.proxy.get("strict.test", "/tls").status == 502
