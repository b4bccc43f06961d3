#!/usr/bin/env python3
"""Benchmark: how soon a saved route file is served through the proxy.

Measures, against the real daemon (`python -m daemon run` on free loopback ports, default
settings) and two HTTP servers on 127.0.0.1 started by this script (each answers with its
own name), ``--runs`` times (default 20, plus one warm-up not counted):

1. create: a route file for a new host is saved the way editors save (temp file + rename);
   seconds from the rename to the first 200 from server ``a`` through the proxy;
2. edit: the file is rewritten in place to name server ``b``; seconds until ``b`` answers;
3. delete: the file is removed; seconds until the host answers 404.

Each is polled every 5 ms on fresh connections, and each step waits 1.2 s after the
previous one (past the reload cooldown: every save is a lone change). The daemon reads a
file only once it has been left alone for ``watched.SETTLE`` (0.2 s): that wait is part
of every number, by design (a half-written file is never read).

Run from the repository root, as root with nginx available (Docker must answer, since the
daemon watches it too):

    .venv/bin/python bench/file_to_200.py --runs 20
    .venv/bin/python bench/file_to_200.py --smoke      # 2 runs (CI)

Prints a markdown table and writes bench/results/file_to_200.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common import (
    RESULTS_DIR,
    exit_on_sigterm,
    http_request,
    machine,
    new_run_id,
    running_daemon,
    summary,
    table,
    write_json,
)

from daemon.watched import SETTLE

_POLL = 0.005
_TIMEOUT = 10.0
# Past the daemon's reload cooldown (DOCKYARD_RELOAD_INTERVAL_MS, 1 s): each save is a
# lone change, as when someone edits a file by hand. A save sooner after a reload waits
# for the cooldown; that is the reload rate limit, measured by start_to_200's burst.
_QUIET = 1.2


class _Named(BaseHTTPRequestHandler):
    """Answers every GET with the server's name."""

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@contextmanager
def named_server(name: str) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering ``name``; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Named)
    server.name = name  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def route_file(host: str, port: int) -> str:
    """A route file for ``host`` to a server on 127.0.0.1."""
    return f'routes:\n  bench:\n    host: {host}\n    servers: ["http://127.0.0.1:{port}"]\n'


def answer(proxy_port: int, host: str) -> tuple[int, bytes] | None:
    """Status and body of one GET through the proxy, None on errors."""
    try:
        response = http_request("127.0.0.1", proxy_port, host, timeout=1.0)
    except OSError:
        return None
    return response.status, response.body


def wait_for(check: Callable[[], bool], since: float) -> float:
    """Seconds from ``since`` until ``check`` holds (polled every 5 ms)."""
    deadline = since + _TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            msg = "the proxy did not reach the expected answer in time"
            raise RuntimeError(msg)
        time.sleep(_POLL)
    return time.monotonic() - since


def one_run(routes_dir: Path, proxy_port: int, ports: dict[str, int], n: int) -> dict[str, float]:
    """Create, edit and delete one route file; the three latencies."""
    host = f"file{n}.bench.test"
    path = routes_dir / f"bench{n}.yaml"
    temp = routes_dir / f".bench{n}.yaml.tmp"
    temp.write_text(route_file(host, ports["a"]))
    began = time.monotonic()
    temp.replace(path)
    created = wait_for(lambda: answer(proxy_port, host) == (200, b"a"), began)
    time.sleep(_QUIET)

    began = time.monotonic()
    with path.open("w") as handle:
        handle.write(route_file(host, ports["b"]))
    edited = wait_for(lambda: answer(proxy_port, host) == (200, b"b"), began)
    time.sleep(_QUIET)

    began = time.monotonic()
    path.unlink()
    deleted = wait_for(lambda: (answer(proxy_port, host) or (0,))[0] == 404, began)
    return {"create": created, "edit": edited, "delete": deleted}


def measure(runs: int) -> dict[str, Any]:
    """All runs against one daemon."""
    run_id = new_run_id()
    results: list[dict[str, float]] = []
    with named_server("a") as port_a, named_server("b") as port_b, running_daemon(run_id) as d:
        routes_dir = d.proxy.state_dir / "routes.d"
        ports = {"a": port_a, "b": port_b}
        one_run(routes_dir, d.port, ports, 0)  # warm-up: first render, first files
        for n in range(1, runs + 1):
            results.append(one_run(routes_dir, d.port, ports, n))
            time.sleep(_QUIET)
    return {step: summary(r[step] for r in results) for step in ("create", "edit", "delete")} | {
        "runs": runs
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, measure, print and save."""
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="2 runs, for CI")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "file_to_200.json")
    args = parser.parse_args(argv)
    runs = 2 if args.smoke else args.runs
    result = measure(runs)
    rows = [
        (step, r["n"], r["min"], r["median"], r["p95"], r["max"])
        for step, r in ((s, result[s]) for s in ("create", "edit", "delete"))
    ]
    print(table(("saved file", "n", "min s", "median s", "p95 s", "max s"), rows))
    print(f"\nsettle time included in each: {SETTLE} s")
    write_json(
        args.out,
        {"benchmark": "file_to_200", "settle": SETTLE, "machine": machine(), "result": result},
    )
    return 0


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    sys.exit(main())
