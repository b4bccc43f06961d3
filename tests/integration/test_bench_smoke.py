"""The benchmark scripts in bench/ run end to end in their quick ``--smoke`` mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.support import REPO_ROOT


def _run_smoke(script: str, out: Path) -> dict[str, Any]:
    """Run ``bench/<script>.py --smoke`` from the repository root; return its JSON result."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}.py", "--smoke", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr}"
    assert "| " in done.stdout  # a markdown table was printed
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_start_to_200_smoke(tmp_path: Path) -> None:
    """start_to_200.py --smoke exits 0 and writes start→200, load and burst results."""
    data = _run_smoke("start_to_200", tmp_path / "start_to_200.json")

    assert data["benchmark"] == "start_to_200"
    assert {"machine", "summary", "sequential", "loaded", "bursts", "docker_only_floor"} <= set(
        data
    )
    assert data["loaded"]["background"] == 3
    assert len(data["loaded"]["records"]) == 1
    assert data["args"]["smoke"] is True
    assert len(data["sequential"]["records"]) == 2
    for record in data["sequential"]["records"]:
        assert {"start_returned", "direct_200", "proxy_200", "routes_applied"} <= set(
            record["seconds"]
        )
    (burst,) = data["bursts"]
    assert burst["containers"] == 3
    assert burst["proxy_200_missing"] == 0
    assert burst["reloads"] >= 1
    assert set(data["summary"]["targets"]) == {
        "median_start_to_200",
        "burst_all_live",
        "burst_reloads",
    }
    assert data["summary"]["sequential"]["seconds"]["proxy_200"]["n"] == 2


def test_scale_smoke(tmp_path: Path) -> None:
    """scale.py --smoke exits 0 and writes render, nginx -t, reload and memory figures."""
    data = _run_smoke("scale", tmp_path / "scale.json")

    assert data["benchmark"] == "scale"
    (result,) = data["results"]
    assert result["routes"] == 50
    assert {
        "render",
        "validate",
        "reload",
        "reload_until_old_workers_gone",
        "render_validate_reload_seconds",
        "nginx_memory",
        "daemon_memory",
        "naive_layout_nginx_t",
        "address_map_layout_nginx_t",
    } <= result.keys()
    assert result["render"]["bytes"] > 0
    assert result["nginx_memory"]["pss_mb"] > 0
    assert result["reload"]["n"] == 5
    assert set(data["targets"]) == {"routes", "render_validate_reload", "nginx_memory_pss"}


def test_handshakes_smoke(tmp_path: Path) -> None:
    """handshakes.py --smoke exits 0 and writes positive handshake rates for both key types."""
    data = _run_smoke("handshakes", tmp_path / "handshakes.json")

    assert data["benchmark"] == "handshakes"
    assert data["args"]["smoke"] is True
    rates = data["summary"]["handshakes_per_second"]
    assert set(rates) == {"ec256", "rsa4096"}
    for by_protocol in rates.values():
        assert set(by_protocol) == {"TLSv1.3/1", "TLSv1.2/1"}
        assert all(rate > 0 for rate in by_protocol.values())
    assert len(data["results"]) == 4
    for result in data["results"]:
        assert result["negotiated"]["protocol"] == result["protocol"]
        assert result["server_cpu_ms_per_handshake"] > 0
        (run,) = result["runs"]
        assert run["handshakes"] > 0
    signatures = {r["key_type"]: r["negotiated"]["signature"] for r in data["results"]}
    assert signatures == {"ec256": "ECDSA", "rsa4096": "RSA-PSS"}


def test_start_to_cert_smoke(tmp_path: Path) -> None:
    """start_to_cert.py --smoke exits 0; both starts reach a certificate that verifies."""
    data = _run_smoke("start_to_cert", tmp_path / "start_to_cert.json")

    assert data["benchmark"] == "start_to_cert"
    assert data["args"]["smoke"] is True
    assert len(data["records"]) == 2
    assert data["summary"]["verified_runs"] == data["summary"]["runs"] == 2
    for record in data["records"]:
        seconds = record["seconds"]
        assert {"start_returned", "http_200", "https_any", "ordered", "issued", "verified"} <= set(
            seconds
        )
        assert all(value > 0 for value in seconds.values())
        assert seconds["ordered"] < seconds["issued"] < seconds["verified"]
        assert record["order_seconds"] > 0
        assert record["first_certificate"] == "fallback"
    assert data["summary"]["seconds"]["verified"]["n"] == 2


def test_tls_scale_smoke(tmp_path: Path) -> None:
    """tls_scale.py --smoke exits 0 and nginx accepts the HTTP, fallback and issued configs."""
    data = _run_smoke("tls_scale", tmp_path / "tls_scale.json")

    assert data["benchmark"] == "tls_scale"
    assert [r["state"] for r in data["results"]] == ["http", "fallback", "issued:10"]
    for row in data["results"]:
        assert row["nginx_t_seconds"] > 0 and row["nginx_t_peak_mb"] > 0


def test_file_to_200_smoke(tmp_path: Path) -> None:
    """file_to_200.py --smoke exits 0 and writes create/edit/delete latencies of a route file."""
    data = _run_smoke("file_to_200", tmp_path / "file_to_200.json")

    assert data["benchmark"] == "file_to_200"
    result = data["result"]
    assert result["runs"] == 2
    for step in ("create", "edit", "delete"):
        assert result[step]["n"] == 2
        assert 0 < result[step]["median"] < 10


def test_data_plane_smoke(tmp_path: Path) -> None:
    """data_plane.py --smoke exits 0; every target answered wrk, TLS clients and h2load."""
    data = _run_smoke("data_plane", tmp_path / "data_plane.json")

    assert data["benchmark"] == "data_plane"
    assert data["args"]["smoke"] is True
    assert {"machine", "targets", "http", "handshakes", "http2", "configs"} <= set(data)
    cases = {(r["target"], r["mode"]) for r in data["http"]}
    assert cases == {
        (target, mode)
        for target in ("direct", "dockyard", "caddy", "haproxy")
        for mode in ("keep-alive", "new connection")
    }
    for row in data["http"]:
        assert row["requests"] > 0 and row["requests_per_second"] > 0, row["target"]
        assert row["errors"] == 0, row
        assert row["p99_ms"] > 0
        assert row["backend_cpu_us_per_request"] > 0, row
        assert row["tcp_opens_per_1k_requests"] > 0, row
        if row["target"] != "direct":
            assert row["proxy_cpu_us_per_request"] > 0, row
        if row["mode"] == "keep-alive" and row["target"] == "dockyard":
            # Kept-alive clients and pooled backend connections: a handful of connections
            # for thousands of requests, not one per request.
            assert row["tcp_opens_per_1k_requests"] < 100, row
    assert set(data["targets"]) >= {"requests_vs_direct", "requests_vs_caddy", "p99_overhead_ms"}
    handshakes = {(r["server"], r["key_type"], r["kind"]): r for r in data["handshakes"]}
    assert set(handshakes) == {
        (server, key_type, kind)
        for server in ("dockyard", "caddy")
        for key_type in ("ec256", "rsa4096")
        for kind in ("full", "resumed")
    }
    for row in handshakes.values():
        assert row["handshakes_per_second"] > 0 and row["errors"] == 0, row
        assert row["server_cpu_ms_per_handshake"] > 0
    assert {r["server"] for r in data["http2"]} == {"dockyard", "caddy"}
    for row in data["http2"]:
        assert row["h2"] is True
        assert row["succeeded"] > 0 and row["errors"] == 0, row


def test_reload_safety_smoke(tmp_path: Path) -> None:
    """reload_safety.py --smoke: wrk through churn reloads, WebSockets held through reloads."""
    data = _run_smoke("reload_safety", tmp_path / "reload_safety.json")

    assert data["benchmark"] == "reload_safety"
    load = data["load"]
    assert load["churn_containers"] == 6
    assert load["reloads"] >= 2
    assert load["requests"] > 0
    assert load["stable_status_after"] == [200, 200]
    assert len(load["wrk"]) == 2  # one wrk per stable route
    for wrk in load["wrk"]:
        # No error answers and no refused or timed-out requests. Read errors are the known
        # keep-alive race at a reload (docs/benchmarks.md): at most one per connection each.
        assert wrk["non_2xx_3xx"] == 0
        errors = wrk["socket_errors"]
        assert errors["connect"] == errors["write"] == errors["timeout"] == 0
        assert errors["read"] <= load["connections_per_route"] * load["reloads"]
    ws = data["websockets"]
    assert ws["sockets"] == 20
    assert ws["reloads"] == 3
    assert ws["echo_failures_before"] == 0
    assert ws["echo_failures_after_each_reload"] == [0, 0, 0]
    assert ws["all_echo_after"] is True
    assert ws["peak_old_workers"] >= 1
    assert ws["old_worker_memory_mb"]["private"]["median"] > 0
    assert ws["samples"]
    cut = data["cut"]
    assert cut["closed_by_proxy"] == cut["sockets"] == 20
    assert set(data["targets"]) == {"failed_requests", "websockets_echo_after_reloads"}


def test_footprint_smoke(tmp_path: Path) -> None:
    """footprint.py --smoke exits 0 and writes idle CPU and memory of the daemon."""
    data = _run_smoke("footprint", tmp_path / "footprint.json")

    assert data["benchmark"] == "footprint"
    assert data["args"]["smoke"] is True
    assert [r["routes"] for r in data["results"]] == [0, 5]
    for result in data["results"]:
        assert result["source"] == "containers"
        assert result["rss_mb"] > 0
        assert result["cpu_seconds"] >= 0
        assert 0 <= result["cpu_percent"] < 50
        assert result["nginx"]["pss_mb"] > 0
