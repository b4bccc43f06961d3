"""Tiny test backend run inside test containers by the host's /usr/bin/python3 (stdlib only).

Usage: python3 backend.py [PORT]   (default 8080, listens on 0.0.0.0)

* Any HTTP request (any method, any path) -> 200 with a JSON description of the request:
  {"name", "method", "path", "headers", "body_length"}.  `name` is $BACKEND_NAME or the hostname.
* GET with `Upgrade: websocket` -> RFC 6455 handshake, then text/binary messages are echoed back,
  ping is answered with pong and close with close.
* `?delay=SECONDS` in the query: wait that long (at most 30 s) before answering.
* `?stream=SECONDS`: send the headers and a first chunk at once, the rest SECONDS later (chunked).

Optional behaviours, from the environment:

* BACKEND_RESPONSE_HEADERS: a JSON object of headers added to every echo answer.
* BACKEND_AUTH: act as a forward-auth server. A request whose Authorization header equals this
  value gets 200 with `Remote-User: $BACKEND_AUTH_USER` (default alice); any other gets 401
  with `WWW-Authenticate: Bearer realm="dockyard-test"`. Both carry the JSON echo.
* BACKEND_TLS_CERT and BACKEND_TLS_KEY (PEM text): also serve the same answers over TLS on
  port $BACKEND_TLS_PORT (default 8443), next to plain HTTP on PORT.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from pathlib import Path

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024 * 1024

NAME = os.environ.get("BACKEND_NAME") or socket.gethostname()
RESPONSE_HEADERS: dict[str, str] = json.loads(os.environ.get("BACKEND_RESPONSE_HEADERS") or "{}")
AUTH = os.environ.get("BACKEND_AUTH")
AUTH_USER = os.environ.get("BACKEND_AUTH_USER") or "alice"
MAX_DELAY = 30.0


class WebSocketClosedError(Exception):
    """The peer went away in the middle of a frame."""


def read_exact(stream: BufferedIOBase, n: int) -> bytes:
    """Read exactly n bytes or raise WebSocketClosedError."""
    data = stream.read(n) if n else b""
    if len(data) != n:
        raise WebSocketClosedError
    return data


def read_frame(stream: BufferedIOBase) -> tuple[bool, int, bytes]:
    """Read one frame and return (fin, opcode, unmasked payload)."""
    b0, b1 = read_exact(stream, 2)
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", read_exact(stream, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", read_exact(stream, 8))
    if length > MAX_MESSAGE:
        raise WebSocketClosedError
    mask = read_exact(stream, 4) if b1 & 0x80 else b""
    payload = read_exact(stream, length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bool(b0 & 0x80), b0 & 0x0F, payload


def write_frame(stream: BufferedIOBase, opcode: int, payload: bytes) -> None:
    """Write one unmasked, final frame (servers never mask)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    stream.write(header + payload)
    stream.flush()


def websocket_echo(rfile: BufferedIOBase, wfile: BufferedIOBase) -> None:
    """Echo messages until the peer closes; fragmented messages are echoed whole."""
    message_opcode, parts = OP_TEXT, list[bytes]()
    while True:
        fin, opcode, payload = read_frame(rfile)
        if opcode == OP_PING:
            write_frame(wfile, OP_PONG, payload)
        elif opcode == OP_PONG:
            continue
        elif opcode == OP_CLOSE:
            write_frame(wfile, OP_CLOSE, payload[:2])
            return
        else:
            if opcode != OP_CONT:
                message_opcode, parts = opcode, []
            parts.append(payload)
            if fin:
                write_frame(wfile, message_opcode, b"".join(parts))
                parts = []


class Handler(BaseHTTPRequestHandler):
    """Answers every method with a JSON echo of the request, or upgrades to a WebSocket echo."""

    protocol_version = "HTTP/1.1"
    server_version = "dockyard-test-backend"

    def __getattr__(self, name: str) -> Callable[[], None]:
        """Route every `do_<METHOD>` lookup to the one generic handler."""
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: no line per request."""

    def read_body(self) -> int:
        """Read and discard the request body (Content-Length or chunked); return its length."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)
        return length - remaining

    def handle_any(self) -> None:
        """Serve one request."""
        if (
            self.command == "GET"
            and self.headers.get("Upgrade", "").lower() == "websocket"
            and self.headers.get("Sec-WebSocket-Key")
        ):
            self.upgrade()
            return
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            name = key.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        body = json.dumps(
            {
                "name": NAME,
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body_length": self.read_body(),
            }
        ).encode()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if "delay" in query:
            time.sleep(min(float(query["delay"][0]), MAX_DELAY))
        status, extra = 200, dict(RESPONSE_HEADERS)
        if AUTH is not None and self.headers.get("Authorization") == AUTH:
            extra["Remote-User"] = AUTH_USER
        elif AUTH is not None:
            status, extra["WWW-Authenticate"] = 401, 'Bearer realm="dockyard-test"'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in extra.items():
            self.send_header(name, value)
        if "stream" in query:
            self.stream(body, min(float(query["stream"][0]), MAX_DELAY))
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def stream(self, body: bytes, pause: float) -> None:
        """Finish the headers, send one chunk, wait ``pause`` seconds, send the rest."""
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        first, rest = body[:1], body[1:]
        for index, part in enumerate((first, rest, b"")):
            if index == 1:
                time.sleep(pause)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()

    def upgrade(self) -> None:
        """Do the RFC 6455 handshake, then echo until the peer closes."""
        key = self.headers["Sec-WebSocket-Key"].strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(WebSocketClosedError, OSError):
            websocket_echo(self.rfile, self.wfile)


class Server(ThreadingHTTPServer):
    """Thread per connection, generous backlog, threads never block shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def terminate(signum: int, frame: object) -> None:
    """Exit on SIGTERM: as PID 1 in a container Python would otherwise ignore `docker stop`."""
    raise SystemExit(0)


def main() -> None:
    """Listen on 0.0.0.0:PORT until SIGTERM."""
    signal.signal(signal.SIGTERM, terminate)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    server = Server(("0.0.0.0", port), Handler)
    cert, key = os.environ.get("BACKEND_TLS_CERT"), os.environ.get("BACKEND_TLS_KEY")
    if cert and key:
        serve_tls(cert, key, int(os.environ.get("BACKEND_TLS_PORT") or 8443))
    print(f"listening {port}", flush=True)
    server.serve_forever()


def serve_tls(cert: str, key: str, port: int) -> None:
    """Serve the same handler over TLS on ``port`` in a thread, with the PEM cert and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_text(cert)
        key_file.write_text(key)
        context.load_cert_chain(cert_file, key_file)
    tls = Server(("0.0.0.0", port), Handler)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    threading.Thread(target=tls.serve_forever, daemon=True).start()


if __name__ == "__main__":
    main()
