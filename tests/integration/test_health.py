"""``dockyard health`` against a real daemon and its nginx (what the image's HEALTHCHECK runs)."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.support import REPO_ROOT, UNKNOWN_HOST, Proxy, RunProxy


def health(proxy: Proxy) -> subprocess.CompletedProcess[str]:
    """Run ``dockyard health`` with the daemon's own settings."""
    return subprocess.run(
        [sys.executable, "-m", "daemon", "health"],
        cwd=REPO_ROOT,
        env=proxy.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_health_follows_the_daemon_and_nginx(run_proxy: RunProxy) -> None:
    """Healthy while the daemon runs and nginx answers; unhealthy once nginx is gone."""
    proxy = run_proxy()
    proxy.wait_status(UNKNOWN_HOST, "/", 404)
    proxy.wait_log("routes_applied")
    alive = health(proxy)
    assert (alive.returncode, alive.stdout) == (0, "healthy\n"), alive.stderr

    assert proxy.stop() == 0
    gone = health(proxy)
    assert gone.returncode == 1
    assert gone.stdout == "unhealthy: nginx does not answer on its control socket\n"
