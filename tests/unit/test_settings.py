"""Settings: defaults, overrides, and one clear error per bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.errors import SettingsError
from daemon.settings import LETSENCRYPT, LETSENCRYPT_STAGING, Settings, load_settings


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
        ("DOCKYARD_ACME_EMAIL", "not an address"),
        ("DOCKYARD_ACME_EMAIL", "ops@example"),
        ("DOCKYARD_ACME_DIRECTORY", "letsencrypt"),
        ("DOCKYARD_ACME_DIRECTORY", "ftp://ca.test/dir"),
        ("DOCKYARD_ACME_STORE", "acme.json"),
        ("DOCKYARD_ACME_KEY_TYPE", "ed25519"),
        ("DOCKYARD_ACME_PROFILE", "two words"),
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


def test_acme_is_off_without_an_email_and_defaults_to_lets_encrypt() -> None:
    """No email: no ACME; the directory, store and key type have their documented defaults."""
    settings = load_settings({"DOCKYARD_STATE_DIR": "/data"})
    assert settings.acme_enabled is False
    assert settings.acme_directory == LETSENCRYPT
    assert settings.store_path == Path("/data/acme.json")
    assert settings.acme_key_type == "ec256"
    assert settings.acme_profile is None


def test_acme_settings_are_read_and_staging_is_an_alias() -> None:
    """Every ACME variable is read; 'staging' names Let's Encrypt's staging directory."""
    settings = load_settings(
        {
            "DOCKYARD_ACME_EMAIL": "ops@example.org",
            "DOCKYARD_ACME_DIRECTORY": "staging",
            "DOCKYARD_ACME_STORE": "/secrets/acme.json",
            "DOCKYARD_ACME_KEY_TYPE": "RSA4096",
            "DOCKYARD_ACME_PROFILE": "shortlived",
        }
    )
    assert settings.acme_enabled is True
    assert settings.acme_directory == LETSENCRYPT_STAGING
    assert settings.store_path == Path("/secrets/acme.json")
    assert (settings.acme_key_type, settings.acme_profile) == ("rsa4096", "shortlived")
    own = load_settings({"DOCKYARD_ACME_DIRECTORY": "https://127.0.0.1:14000/dir"})
    assert own.acme_directory == "https://127.0.0.1:14000/dir"
