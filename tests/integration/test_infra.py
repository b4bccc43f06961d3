"""Checks of the test infrastructure itself (backend image, backend server); no daemon involved."""

from __future__ import annotations

from websockets.sync.client import connect

from tests.integration.support import StartBackend, container_ips, http_request


def test_backend_answers_http_with_its_name(start_backend: StartBackend) -> None:
    """A started backend is reachable by container IP and echoes its name, method, path, body."""
    container = start_backend({"host": "infra.test"}, env={"BACKEND_NAME": "alpha"})
    (address,) = container_ips(container)

    response = http_request(
        address, 8080, "infra.test", "/some/path?x=1", method="POST", body=b"12345"
    )

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "name": "alpha",
        "method": "POST",
        "path": "/some/path?x=1",
        "headers": {"host": "infra.test", "content-length": "5", "accept-encoding": "identity"},
        "body_length": 5,
    }
    assert container.attrs["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert not container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]  # exposed, not published


def test_backend_echoes_websocket_text(start_backend: StartBackend) -> None:
    """The backend completes the WebSocket handshake and echoes text and binary messages."""
    container = start_backend()
    (address,) = container_ips(container)

    with connect(f"ws://{address}:8080/ws", open_timeout=5, close_timeout=5) as ws:
        ws.send("hello dockyard")
        assert ws.recv(timeout=5) == "hello dockyard"
        ws.send(b"\x00\xff" * 40_000)  # 64-bit length frame
        assert ws.recv(timeout=5) == b"\x00\xff" * 40_000
