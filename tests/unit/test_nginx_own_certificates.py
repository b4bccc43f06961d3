"""The nginx edge's copies of your certificates: written once, private, pruned after a reload.

No nginx runs here: ``nginx -t`` and the start are replaced, the file handling is real.
"""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.nginx import NginxProcess
from daemon.own_certificates import OwnCertificate
from daemon.rendering import Paths, RenderFacts, make_environment, render_config
from daemon.routing import Backend, Route, RoutingTable
from daemon.running import builtin_templates
from daemon.settings import Settings
from daemon.tls import CertFiles, TlsState


def digest_name(content: bytes) -> str:
    """The file name reconcile gives a copy: its digest, then .pem."""
    return hashlib.sha256(content).hexdigest()[:16] + ".pem"


@pytest.fixture
def nginx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NginxProcess:
    """An NginxProcess whose ``nginx -t`` always passes and whose start does nothing."""
    process = NginxProcess(Settings(state_dir=tmp_path), Paths.under(tmp_path))
    process.prepare()
    monkeypatch.setattr(process, "_run_test", lambda path: None)
    monkeypatch.setattr(process, "start", lambda generation=None: 0.0)
    return process


def own_dir(tmp_path: Path) -> Path:
    """Where the copies go below the state dir."""
    return Paths.under(tmp_path).own_certificates


def test_a_copy_is_written_private_and_only_once(nginx: NginxProcess, tmp_path: Path) -> None:
    """Each copy is written 0600 in a 0700 directory, and an existing one is never rewritten."""
    name = digest_name(b"chain and key")
    nginx.provide_certificates({name: b"chain and key"})
    path = own_dir(tmp_path) / name
    assert path.read_bytes() == b"chain and key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    before = path.stat()
    nginx.provide_certificates({name: b"something else"})
    assert path.read_bytes() == b"chain and key"
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_copies_the_applied_config_does_not_name_are_pruned(
    nginx: NginxProcess, tmp_path: Path
) -> None:
    """After apply, own/*.pem not named by ``ssl_certificate`` go; the named one and others stay."""
    kept, dropped = digest_name(b"kept"), digest_name(b"dropped")
    nginx.provide_certificates({kept: b"kept", dropped: b"dropped"})
    directory = own_dir(tmp_path)
    (directory / "README").write_text("not a copy\n")
    text = (
        "# generation 0123456789abcdef\n"
        f"ssl_certificate {directory}/{kept};\n"
        f"ssl_certificate_key {directory}/{kept};\n"
    )
    nginx.test(text)
    nginx.apply(text)
    assert sorted(p.name for p in directory.iterdir()) == sorted(["README", kept])


def test_the_copy_a_rendered_config_serves_survives_the_prune(
    nginx: NginxProcess, tmp_path: Path
) -> None:
    """Rendering with your certificate names its copy the way the prune reads it."""
    now = datetime.now(UTC)
    pem = b"-----BEGIN CERTIFICATE-----\n...\n"
    name = digest_name(pem)
    certificate = OwnCertificate(
        "shop", ("shop.test",), now - timedelta(days=1), now + timedelta(days=30), pem, name[:16]
    )
    paths = Paths.under(tmp_path)
    tls = TlsState(own=((certificate, CertFiles(paths.own_certificates / name, name[:16])),))
    table = RoutingTable((Route("shop.test", "/", (Backend("172.17.0.2", 80),), ("shop",)),))
    settings = Settings(state_dir=tmp_path)
    env = make_environment(None, builtin_templates())
    text = render_config(table, settings, RenderFacts(paths), env, tls)
    stale = digest_name(b"an older pair")
    nginx.provide_certificates({name: pem, stale: b"an older pair"})
    nginx.test(text)
    nginx.apply(text)
    assert sorted(p.name for p in paths.own_certificates.iterdir()) == [name]
