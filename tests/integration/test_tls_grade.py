"""The daemon's HTTPS graded by sslyze against Mozilla's "intermediate" TLS configuration.

sslyze lives in its own virtualenv, .venv-tools (tests/run.sh builds it), because it pins an
older ``cryptography`` than ``acme`` needs. The certificate is a real one issued by Pebble and
trusted through Pebble's root, so the whole deployment is graded, not only the protocol
settings. sslyze 6.3 checks TLS versions, cipher suites, key-exchange curves and sizes, the
certificate (trusted chain, key type and size, signature, at most 366 days of validity) and
known weaknesses (compression, CCS injection, fallback SCSV, Heartbleed, ROBOT, secure
renegotiation, extended master secret); it skips OCSP stapling and HSTS.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.acme_support import start_acme, wait_trusted
from tests.integration.pebble import StartPebble
from tests.integration.support import REPO_ROOT, RunProxy, StartBackend

SSLYZE = REPO_ROOT / ".venv-tools" / "bin" / "sslyze"
SCAN_TIMEOUT = 120.0
HOST = "grade.test"
# Pebble's default is 5 years, which Mozilla's 366-day maximum rejects; 90 days is what
# Mozilla recommends and Let's Encrypt issues.
VALIDITY = timedelta(days=90)


def test_https_is_compliant_with_mozilla_intermediate(
    pebble_for: StartPebble, run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """HTTPS with a CA-issued certificate is compliant with Mozilla intermediate, says sslyze."""
    if not os.access(SSLYZE, os.X_OK):
        pytest.fail(f"{SSLYZE} is missing: run tests/run.sh, which installs sslyze there")
    pebble, proxy, _ = start_acme(pebble_for, run_proxy, validity=VALIDITY)
    start_backend({"host": HOST})
    root, _ = wait_trusted(proxy, pebble, HOST, tmp_path)

    report = tmp_path / "sslyze.json"
    target = f"{HOST}:{proxy.https_port}"
    scan = subprocess.run(
        [
            str(SSLYZE),
            "--mozilla_config=intermediate",
            f"--certinfo_ca_file={root}",
            f"--json_out={report}",
            f"{target}{{127.0.0.1}}",
        ],
        capture_output=True,
        text=True,
        timeout=SCAN_TIMEOUT,
        check=False,
    )
    said = f"sslyze exited with {scan.returncode}:\n{scan.stdout}\n{scan.stderr}"
    # sslyze also exits 0 when it reached no server at all: look at what it scanned, too.
    results = json.loads(report.read_text())["server_scan_results"]
    assert [r["scan_status"] for r in results] == ["COMPLETED"], said
    deployment: dict[str, Any] = results[0]["scan_result"]["certificate_info"]["result"][
        "certificate_deployments"
    ][0]
    leaf = deployment["received_certificate_chain"][0]
    assert leaf["subject_alternative_name"]["dns_names"] == [HOST], said
    assert deployment["verified_certificate_chain"], said
    assert scan.returncode == 0 and f"{target}: OK - Compliant." in scan.stdout, said
