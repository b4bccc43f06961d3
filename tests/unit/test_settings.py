"""Settings: defaults, overrides, and one clear error per bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.errors import SettingsError
from daemon.settings import Settings, load_settings


def test_defaults() -> None:
    """An empty environment gives the documented defaults."""
    settings = load_settings({})
    assert settings == Settings()
    assert settings.http_port == 80
    assert settings.state_dir == Path("/var/lib/dockyard")
    assert settings.label_prefix == "dockyard"
    assert settings.access_log is True


def test_overrides() -> None:
    """Every variable is read."""
    settings = load_settings(
        {
            "DOCKYARD_HTTP_PORT": "8080",
            "DOCKYARD_HTTPS_PORT": "8443",
            "DOCKYARD_STATE_DIR": "/data",
            "DOCKYARD_LABEL_PREFIX": "proxy",
            "DOCKYARD_NETWORK": "web",
            "DOCKYARD_LOG_FORMAT": "console",
            "DOCKYARD_ACCESS_LOG": "off",
            "DOCKYARD_NGINX": "/usr/sbin/nginx",
            "DOCKYARD_TEMPLATES": "/etc/dockyard/templates",
            "DOCKYARD_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
        }
    )
    assert (settings.http_port, settings.https_port) == (8080, 8443)
    assert settings.state_dir == Path("/data")
    assert settings.label_prefix == "proxy"
    assert settings.network == "web"
    assert settings.log_format == "console"
    assert settings.access_log is False
    assert settings.nginx == "/usr/sbin/nginx"
    assert settings.templates == Path("/etc/dockyard/templates")
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.1/32")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DOCKYARD_HTTP_PORT", "0"),
        ("DOCKYARD_HTTP_PORT", "http"),
        ("DOCKYARD_HTTPS_PORT", "70000"),
        ("DOCKYARD_STATE_DIR", "relative/dir"),
        ("DOCKYARD_STATE_DIR", "/data/$host"),
        ("DOCKYARD_STATE_DIR", "/data;evil"),
        ("DOCKYARD_LABEL_PREFIX", "Dock Yard"),
        ("DOCKYARD_NETWORK", "net;"),
        ("DOCKYARD_LOG_FORMAT", "xml"),
        ("DOCKYARD_ACCESS_LOG", "maybe"),
        ("DOCKYARD_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("DOCKYARD_WORKER_SHUTDOWN_TIMEOUT", "10 s"),
    ],
)
def test_bad_values_name_variable_value_and_what_is_allowed(variable: str, value: str) -> None:
    """A bad value raises with the variable, the value and the allowed form."""
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    assert caught.value.variable == variable
    assert caught.value.value == value
    assert caught.value.allowed


def test_same_port_twice_is_refused() -> None:
    """HTTP and HTTPS cannot share a port."""
    with pytest.raises(SettingsError):
        load_settings({"DOCKYARD_HTTP_PORT": "8080", "DOCKYARD_HTTPS_PORT": "8080"})
