"""Traefik v1 labels through the real proxy: a Traefik user's containers keep their labels."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import uuid

import docker  # type: ignore[import-untyped, unused-ignore]
import pytest
from docker import DockerClient  # type: ignore[import-untyped, unused-ignore]

from tests.integration.acme_support import wait_https
from tests.integration.support import MakeNetwork, RunProxy, StartBackend
from tests.unit.test_traefik import JELLYFIN_HEADERS, JELLYFIN_LABELS

JELLYFIN_HOST = "traefik.example.com"


@pytest.fixture
def traefik_network(docker_client: DockerClient, make_network: MakeNetwork) -> str:
    """The network ``traefik`` the seed's labels name: made for the test unless it exists."""
    with contextlib.suppress(docker.errors.NotFound):
        return str(docker_client.networks.get("traefik").name)
    try:
        make_network("traefik")
    except docker.errors.APIError as err:  # made meanwhile by another test run: use it
        if err.status_code != 409:
            raise
    return "traefik"


def test_jellyfin_seed_labels_send_traefiks_headers_and_redirect(
    run_proxy: RunProxy, start_backend: StartBackend, traefik_network: str
) -> None:
    """The Jellyfin page's Traefik labels, verbatim: Traefik 1.7's HTTPS headers, HTTP redirect."""
    proxy = run_proxy()
    backend = start_backend(raw_labels=JELLYFIN_LABELS, network=traefik_network)

    redirect = proxy.wait_status(JELLYFIN_HOST, "/web/index.html?x=1", 301)
    assert redirect.headers["Location"] == (
        f"https://{JELLYFIN_HOST}:{proxy.https_port}/web/index.html?x=1"
    )
    answer = wait_https(proxy, JELLYFIN_HOST).response
    assert answer.json()["path"] == "/"
    assert {name: answer.headers[name] for name in JELLYFIN_HEADERS} == JELLYFIN_HEADERS
    complaints = [
        entry
        for entry in proxy.logs()
        if entry.get("container") == backend.name and entry["event"].startswith("label_")
    ]
    assert complaints == []


def sha_hash(password: str) -> str:
    """An htpasswd ``{SHA}`` hash (``htpasswd -s``)."""
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def test_path_prefix_strip_whitelist_and_basic_auth(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """PathPrefixStrip strips, whiteList.sourceRange admits or refuses, basic auth asks."""
    host = f"t{uuid.uuid4().hex[:10]}.test"
    proxy = run_proxy()
    # Two segments of one container; the plain labels are their defaults.
    start_backend(
        raw_labels={
            "traefik.port": "8080",
            "traefik.frontend.auth.basic.users": f"admin:{sha_hash('s3cret')}",
            "traefik.app.frontend.rule": f"Host:{host};PathPrefixStrip:/app",
            "traefik.app.frontend.whiteList.sourceRange": "127.0.0.1/32",
            "traefik.closed.frontend.rule": f"Host:{host};PathPrefix:/closed",
            "traefik.closed.frontend.whiteList.sourceRange": "192.0.2.0/24",
        }
    )
    proxy.wait_status(host, "/app/x?y=1", 401)

    login = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}
    answer = proxy.get(host, "/app/x?y=1", headers=login)
    assert answer.status == 200
    assert answer.json()["path"] == "/x?y=1"
    assert answer.json()["headers"]["x-forwarded-prefix"] == "/app"
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
    assert proxy.get(host, "/app/x", headers=wrong).status == 401
    assert proxy.get(host, "/closed/x", headers=login).status == 403
    assert proxy.get(host, "/other", headers=login).status == 404
