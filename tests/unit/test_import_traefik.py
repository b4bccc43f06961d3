"""Importing a Traefik v1 acme.json: conversion, refusals, merging, and the command."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from structlog.testing import capture_logs

from acme_store import keys
from acme_store.importing import (
    ImportRefusedError,
    convert,
    import_traefik,
    parse_traefik,
)
from acme_store.records import Account, Certificate, StoreData
from acme_store.store import JsonStore
from daemon import cli

LE = "https://acme-v02.api.letsencrypt.org/directory"
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
LE_ACCOUNT = "https://acme-v02.api.letsencrypt.org/acme/acct/123456"
EMAIL = "ops@example.org"
NOW = datetime.now(UTC).replace(microsecond=0)
# RSA 2048 instead of Traefik's 4096: the same format, made in a fraction of the time
ACCOUNT_KEY = keys.new_key("rsa2048")
CERT_KEY = keys.new_key("ec256")
OTHER_KEY = keys.new_key("ec256")

Logs = list[MutableMapping[str, Any]]


def b64(data: str | bytes) -> str:
    """Go's JSON form of a byte string: standard base64."""
    raw = data.encode("ascii") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def traditional(key_pem: str, encoding: serialization.Encoding) -> bytes:
    """The key as PKCS#1 (RSA) or SEC1 (EC): what Go's x509 and lego write."""
    return keys.load_key(key_pem).private_bytes(
        encoding, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def traefik_account(key_pem: str, uri: str | None, email: str = EMAIL) -> dict[str, Any]:
    """An ``Account`` as Traefik 1.7 writes it: the key is base64 of PKCS#1 DER."""
    return {
        "Email": email,
        "Registration": {
            "body": {"status": "valid", "contact": [f"mailto:{email}"]},
            "uri": uri,
        },
        "PrivateKey": b64(traditional(key_pem, serialization.Encoding.DER)),
        "KeyType": "4096",
    }


def traefik_certificate(
    main: str, chain_pem: str, key_pem: str, sans: list[str] | None = None
) -> dict[str, Any]:
    """A ``Certificates`` entry: base64 of lego's PEM chain and of its traditional PEM key."""
    return {
        "Domain": {"Main": main, "SANs": sans},
        "Certificate": b64(chain_pem),
        "Key": b64(traditional(key_pem, serialization.Encoding.PEM)),
    }


def traefik_json(account: dict[str, Any] | None, certificates: list[dict[str, Any]]) -> bytes:
    """A whole Traefik 1.6/1.7 ``acme.json``."""
    document = {
        "Account": account,
        "Certificates": certificates,
        "HTTPChallenges": {},
        "TLSChallenges": {},
    }
    return json.dumps(document, indent=2).encode()


def certificate(*names: str, key_pem: str = CERT_KEY, days: int = 60, age: int = 30) -> str:
    """A self-signed certificate for ``names`` issued ``age`` days ago, ``days`` left."""
    return keys.self_signed(names, key_pem, NOW - timedelta(days=age), timedelta(days=age + days))


def public(key_pem: str) -> bytes:
    """A key's public half, to compare keys whatever their PEM format."""
    return (
        keys.load_key(key_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def stored_record(name: str, days: int) -> Certificate:
    """A store record for ``name`` whose certificate has ``days`` left."""
    chain = certificate(name, key_pem=OTHER_KEY, days=days)
    not_before, expiry = keys.validity(chain)
    return Certificate(
        LE, (name,), chain_pem=chain, key_pem=OTHER_KEY, not_before=not_before, not_after=expiry
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Where the Traefik file is written."""
    return tmp_path / "traefik" / "acme.json"


@pytest.fixture
def store(tmp_path: Path) -> JsonStore:
    """dockyard's store (not locked)."""
    return JsonStore(tmp_path / "state" / "acme.json")


def write(path: Path, content: bytes) -> Path:
    """Write ``content`` to ``path`` (making its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def save(store: JsonStore, data: StoreData) -> bytes:
    """Put ``data`` in the store as the daemon would; the file's bytes."""
    with store:
        store.save(data)
    return store.path.read_bytes()


def write_traefik(source: Path, account_uri: str | None, *names: str) -> Path:
    """A Traefik file: the account registered at ``account_uri``, a certificate per name."""
    account = traefik_account(ACCOUNT_KEY, account_uri) if account_uri else None
    entries = [traefik_certificate(name, certificate(name), CERT_KEY) for name in names]
    return write(source, traefik_json(account, entries))


def refused(source: Path, store: JsonStore, directory: str = LE) -> str:
    """Import expecting a refusal; its reason, once the store is seen untouched."""
    before = store.path.read_bytes() if store.path.exists() else None
    with pytest.raises(ImportRefusedError) as caught:
        import_traefik(source, store, directory, NOW)
    assert (store.path.read_bytes() if store.path.exists() else None) == before
    return caught.value.reason


@pytest.fixture
def run_cli(
    tmp_path: Path, store: JsonStore, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, Logs]]:
    """Run ``dockyard ... import-traefik ARGS`` in-process; its exit code and log events."""
    for variable in [v for v in os.environ if v.startswith("DOCKYARD_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setattr(cli, "configure_logging", lambda *args, **kwargs: None)

    def run(*args: str) -> tuple[int, Logs]:
        with capture_logs() as logs:
            code = cli.main(
                ["--state-dir", str(tmp_path / "state"), "--acme-store", str(store.path), *args]
            )
        return code, logs

    return run


def events(logs: Logs, name: str) -> Logs:
    """The log entries of one event."""
    return [entry for entry in logs if entry["event"] == name]


def test_account_and_certificates_become_store_records(source: Path, store: JsonStore) -> None:
    """The account (PKCS#1 DER) and a two-name certificate land in the store, names from it."""
    chain = certificate("a.example.org", "www.a.example.org")
    write(
        source,
        traefik_json(
            traefik_account(ACCOUNT_KEY, LE_ACCOUNT),
            # the Domain field is not trusted: the names come from the certificate
            [traefik_certificate("stale.example.org", chain, CERT_KEY)],
        ),
    )
    report = import_traefik(source, store, LE, NOW)

    assert (report.account, report.changed, report.skipped, report.kept) == (
        "imported",
        True,
        (),
        (),
    )
    data = store.load()
    assert data == report.data
    account = data.account_for(LE)
    assert account is not None
    assert (account.uri, account.email) == (LE_ACCOUNT, EMAIL)
    assert account.key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert public(account.key_pem) == public(ACCOUNT_KEY)
    assert [c.names for c in data.certificates] == [
        ("a.example.org", "www.a.example.org"),
        ("www.a.example.org", "a.example.org"),
    ]
    for record in data.certificates:
        assert record.issued and record.directory == LE and record.key_type == "ec256"
        assert record.chain_pem == chain
        assert public(record.key_pem or "") == public(CERT_KEY)
        assert (record.not_before, record.not_after) == keys.validity(chain)
        assert (record.failures, record.renew_at, record.profile) == (0, None, None)


def test_rsa_certificate_keeps_its_key_type(source: Path, store: JsonStore) -> None:
    """Traefik's default RSA keys are kept as such (``rsa2048``), key and chain intact."""
    chain = certificate("rsa.example.org", key_pem=ACCOUNT_KEY)
    write(source, traefik_json(None, [traefik_certificate("rsa.example.org", chain, ACCOUNT_KEY)]))
    report = import_traefik(source, store, LE, NOW)
    assert report.account == "absent"
    assert [(c.main, c.key_type) for c in report.imported] == [("rsa.example.org", "rsa2048")]


def test_unusable_entries_are_skipped_with_their_reason(source: Path, store: JsonStore) -> None:
    """Expired, mismatched, unparsable, empty and wildcard-only entries are skipped, named."""
    good = certificate("good.example.org")
    p521 = (
        ec.generate_private_key(ec.SECP521R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    entries = [
        traefik_certificate("good.example.org", good, CERT_KEY),
        traefik_certificate("old.example.org", certificate("old.example.org", days=-1), CERT_KEY),
        traefik_certificate("other.example.org", certificate("other.example.org"), OTHER_KEY),
        {"Domain": {"Main": "junk.example.org"}, "Certificate": "!!", "Key": b64(CERT_KEY)},
        {"Domain": {"Main": "nokey.example.org"}, "Certificate": b64(good), "Key": b64("x")},
        {"Domain": {"Main": "empty.example.org"}, "Certificate": "", "Key": ""},
        traefik_certificate("*.example.org", certificate("*.example.org"), CERT_KEY),
        traefik_certificate(
            "p521.example.org", certificate("p521.example.org", key_pem=p521), p521
        ),
    ]
    write(source, traefik_json(None, entries))
    report = import_traefik(source, store, LE, NOW)

    assert [c.main for c in report.imported] == ["good.example.org"]
    reasons = {s.domain: s.reason for s in report.skipped}
    assert reasons == {
        "old.example.org": reasons["old.example.org"],
        "other.example.org": "the key does not belong to the certificate",
        "junk.example.org": "the certificate is not a base64 PEM certificate chain",
        "nokey.example.org": "the key is unusable: not an unencrypted PEM private key",
        "empty.example.org": "no certificate or no key stored (Traefik drops these too)",
        "*.example.org": "no host name dockyard serves among *.example.org "
        "(wildcards get the fallback certificate)",
        "p521.example.org": "key type secp521r1 is not one of ec256, ec384, rsa2048, rsa4096",
    }
    assert reasons["old.example.org"].startswith("expired at ")
    assert [c.main for c in store.load().certificates] == ["good.example.org"]


def test_wildcard_names_stay_on_the_record_of_the_host_name(source: Path, store: JsonStore) -> None:
    """A wildcard plus its apex: one record for the apex, the wildcard listed after it."""
    chain = certificate("*.example.org", "example.org")
    write(source, traefik_json(None, [traefik_certificate("*.example.org", chain, CERT_KEY)]))
    report = import_traefik(source, store, LE, NOW)
    assert [c.names for c in report.imported] == [("example.org", "*.example.org")]


@pytest.mark.parametrize("newer_first", [True, False])
def test_newest_certificate_of_a_name_wins_within_the_file(newer_first: bool) -> None:
    """Two entries for one name: the later expiry is imported, the other reported skipped."""
    older = certificate("a.example.org", days=20)
    newer = certificate("a.example.org", days=70)
    chains = [newer, older] if newer_first else [older, newer]
    entries = [traefik_certificate("a.example.org", chain, CERT_KEY) for chain in chains]
    conversion = convert(parse_traefik(traefik_json(None, entries)), LE, NOW)
    assert [c.chain_pem for c in conversion.certificates] == [newer]
    assert [s.domain for s in conversion.skipped] == ["a.example.org"]


def test_newer_stored_certificate_is_kept_and_older_one_replaced(
    source: Path, store: JsonStore
) -> None:
    """A name with a newer certificate in the store keeps it; an older one is replaced."""
    newer = stored_record("kept.example.org", days=80)
    older = stored_record("replaced.example.org", days=10)
    failed = Certificate(LE, ("failed.example.org",), failures=3, last_error="dns")
    save(
        store, StoreData().with_certificate(newer).with_certificate(older).with_certificate(failed)
    )
    imported = {
        name: certificate(name, days=60)
        for name in ("kept.example.org", "replaced.example.org", "failed.example.org")
    }
    write(
        source,
        traefik_json(None, [traefik_certificate(n, c, CERT_KEY) for n, c in imported.items()]),
    )
    report = import_traefik(source, store, LE, NOW)

    assert [(k.host, k.stored_not_after) for k in report.kept] == [
        ("kept.example.org", newer.not_after)
    ]
    assert sorted(c.main for c in report.imported) == ["failed.example.org", "replaced.example.org"]
    data = store.load()
    assert data.certificate_for(LE, "kept.example.org") == newer
    for name in ("replaced.example.org", "failed.example.org"):
        record = data.certificate_for(LE, name)
        assert record is not None and record.chain_pem == imported[name]
        assert (record.failures, record.last_error) == (0, None)


def test_importing_twice_writes_nothing_the_second_time(source: Path, store: JsonStore) -> None:
    """The same file again: account unchanged, certificates kept, the store not rewritten."""
    write_traefik(source, LE_ACCOUNT, "a.example.org")
    import_traefik(source, store, LE, NOW)
    before = store.path.stat()
    again = import_traefik(source, store, LE, NOW)
    assert (again.account, again.changed, again.imported) == ("unchanged", False, ())
    assert [k.host for k in again.kept] == ["a.example.org"]
    assert store.path.stat().st_ino == before.st_ino  # not replaced by a new file


@pytest.mark.parametrize(
    "stored_uri", ["https://acme-v02.api.letsencrypt.org/acme/acct/1", LE_ACCOUNT]
)
def test_different_stored_account_refuses_the_import(
    stored_uri: str, source: Path, store: JsonStore
) -> None:
    """Another account stored for the CA (another URL, or the same URL with another key)
    refuses the import (one account per CA); no write."""
    save(store, StoreData().with_account(Account(LE, OTHER_KEY, stored_uri, EMAIL)))
    write_traefik(source, LE_ACCOUNT, "a.example.org")
    assert f"another account at {LE} ({stored_uri})" in refused(source, store)


@pytest.mark.parametrize(
    ("uri", "directory"),
    [
        ("https://acme-staging-v02.api.letsencrypt.org/acme/acct/9", LE),
        (LE_ACCOUNT, STAGING),
        ("https://ca.example.net/acme/acct/1", LE),
        ("https://127.0.0.1:14000/my-account/1", "https://127.0.0.1:15000/dir"),
    ],
)
def test_account_of_another_ca_refuses_the_import(
    uri: str, directory: str, source: Path, store: JsonStore
) -> None:
    """An account URL of another CA than the directory is refused; the store is untouched."""
    save(store, StoreData().with_certificate(stored_record("a.example.org", days=5)))
    write_traefik(source, uri, "a.example.org")
    reason = refused(source, store, directory)
    assert uri in reason and "--directory" in reason


def test_account_of_a_ca_is_matched_by_its_origin() -> None:
    """For a CA dockyard does not know, the account URL's origin must be the directory's."""
    data = parse_traefik(
        traefik_json(traefik_account(ACCOUNT_KEY, "https://127.0.0.1:14000/my-account/1"), [])
    )
    conversion = convert(data, "https://127.0.0.1:14000/dir", NOW)
    assert conversion.account is not None
    assert conversion.account.directory == "https://127.0.0.1:14000/dir"


def test_acme_v1_account_is_dropped_and_certificates_imported(
    source: Path, store: JsonStore
) -> None:
    """An ACME v1 account (``/acme/reg/<n>``) is not imported, as Traefik 1.6+ drops it."""
    write_traefik(source, "https://acme-v01.api.letsencrypt.org/acme/reg/42", "a.example.org")
    report = import_traefik(source, store, LE, NOW)
    assert report.account == "skipped"
    assert "ACME v1" in (report.account_reason or "")
    assert store.load().accounts == ()
    assert [c.main for c in report.imported] == ["a.example.org"]


def test_traefik_1_5_layout_is_read() -> None:
    """The ACME v1 layout (``DomainsCertificate``) gives its certificates; its account drops."""
    chain = certificate("old.example.org")
    document = {
        "Email": EMAIL,
        "Registration": {"body": {}, "uri": "https://acme-v01.api.letsencrypt.org/acme/reg/7"},
        "PrivateKey": b64(traditional(ACCOUNT_KEY, serialization.Encoding.DER)),
        "DomainsCertificate": {
            "Certs": [
                {
                    "Domains": {"Main": "old.example.org", "SANs": None},
                    "Certificate": {
                        "Domain": "old.example.org",
                        "CertURL": "https://acme-v01.api.letsencrypt.org/acme/cert/1",
                        "CertStableURL": "",
                        "PrivateKey": b64(traditional(CERT_KEY, serialization.Encoding.PEM)),
                        "Certificate": b64(chain),
                    },
                }
            ]
        },
    }
    data = parse_traefik(json.dumps(document).encode())
    assert data.layout == "traefik-1.5"
    conversion = convert(data, LE, NOW)
    assert [c.chain_pem for c in conversion.certificates] == [chain]
    assert conversion.account is None and "ACME v1" in (conversion.account_skipped or "")


def test_keys_are_matched_without_regard_to_case() -> None:
    """Go's encoding/json ignores key case when reading; so does the import."""
    chain = certificate("a.example.org")
    entry = traefik_certificate("a.example.org", chain, CERT_KEY)
    lower = {
        "certificates": [
            {"domain": {"main": "a"}, "certificate": entry["Certificate"], "key": entry["Key"]}
        ]
    }
    conversion = convert(parse_traefik(json.dumps(lower).encode()), LE, NOW)
    assert [c.main for c in conversion.certificates] == ["a.example.org"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"Account": {', "not JSON: "),
        (b"[]", "acme.json: expected an object"),
        (b"{}", "not a Traefik v1 acme.json: no Account and no Certificates"),
        (b'{"Certificates": {}}', "acme.json.Certificates: expected a list"),
        (b'{"Certificates": [{"Key": 5}]}', "Certificates[0].Key: expected a string"),
        (b'{"Account": {"Email": "a@b.c", "Registration": []}}', "Account.Registration: "),
        (
            b'{"le": {"Account": null, "Certificates": []}}',
            "a Traefik v2 or later acme.json (certificate resolvers: le)",
        ),
    ],
)
def test_malformed_file_is_refused_and_nothing_written(
    content: bytes,
    reason: str,
    source: Path,
    store: JsonStore,
    run_cli: Callable[..., tuple[int, Logs]],
) -> None:
    """A file that is not a Traefik v1 document exits 1, names the problem, writes nothing."""
    write(source, content)
    code, logs = run_cli("import-traefik", str(source))
    assert code == 1
    [refused] = events(logs, "traefik_import_refused")
    assert refused["reason"].startswith(reason)
    assert refused["log_level"] == "error"
    assert not store.path.parent.exists()


def test_existing_store_is_untouched_when_the_write_fails(
    source: Path,
    store: JsonStore,
    run_cli: Callable[..., tuple[int, Logs]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failing write (disk full) leaves the old store byte for byte and no temp file."""
    before = save(store, StoreData().with_certificate(stored_record("a.example.org", days=5)))
    write_traefik(source, None, "b.example.org")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("acme_store.store.os.fsync", disk_full)
    code, logs = run_cli("import-traefik", str(source))
    assert code == 1
    assert "No space left on device" in events(logs, "traefik_import_refused")[0]["reason"]
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["acme.json", "acme.json.lock"]


def test_command_writes_a_0600_store_and_logs_a_summary(
    source: Path, store: JsonStore, run_cli: Callable[..., tuple[int, Logs]]
) -> None:
    """Exit 0; the store is owner-only, written whole; events name every outcome."""
    save(store, StoreData().with_certificate(stored_record("kept.example.org", days=80)))
    store.path.chmod(0o600)
    write(
        source,
        traefik_json(
            traefik_account(ACCOUNT_KEY, LE_ACCOUNT),
            [
                traefik_certificate("new.example.org", certificate("new.example.org"), CERT_KEY),
                traefik_certificate("kept.example.org", certificate("kept.example.org"), CERT_KEY),
                traefik_certificate(
                    "old.example.org", certificate("old.example.org", days=-2), CERT_KEY
                ),
            ],
        ),
    )
    code, logs = run_cli("import-traefik", str(source))
    assert code == 0
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["acme.json", "acme.json.lock"]
    [account] = events(logs, "traefik_account_imported")
    assert (account["directory"], account["uri"]) == (LE, LE_ACCOUNT)
    [imported] = events(logs, "traefik_certificate_imported")
    assert imported["host"] == "new.example.org" and imported["names"] == ["new.example.org"]
    [kept] = events(logs, "traefik_certificate_kept")
    assert kept["host"] == "kept.example.org"
    [skipped] = events(logs, "traefik_certificate_skipped")
    assert skipped["domain"] == "old.example.org" and skipped["log_level"] == "warning"
    assert skipped["reason"].startswith("expired at ")
    [finished] = events(logs, "traefik_import_finished")
    assert (finished["imported"], finished["kept"], finished["skipped"]) == (1, 1, 1)
    assert finished["written"] is True and finished["store"] == str(store.path)
    assert "PRIVATE KEY" not in json.dumps(logs, default=str)


def test_directory_flag_files_the_import_under_that_ca(
    source: Path, store: JsonStore, run_cli: Callable[..., tuple[int, Logs]]
) -> None:
    """``--directory`` names the CA: a staging account is accepted and filed there."""
    staging_account = "https://acme-staging-v02.api.letsencrypt.org/acme/acct/9"
    write_traefik(source, staging_account, "a.example.org")
    assert run_cli("import-traefik", str(source))[0] == 1
    code, _ = run_cli("import-traefik", str(source), "--directory", STAGING)
    assert code == 0
    data = store.load()
    assert [a.directory for a in data.accounts] == [STAGING]
    assert [c.directory for c in data.certificates] == [STAGING]


def test_store_locked_by_a_running_daemon_is_refused(
    source: Path, store: JsonStore, run_cli: Callable[..., tuple[int, Logs]]
) -> None:
    """While the daemon holds the store lock the command exits 1 and writes nothing."""
    before = save(store, StoreData())
    write_traefik(source, None, "a.example.org")
    with JsonStore(store.path):
        code, logs = run_cli("import-traefik", str(source))
    assert code == 1
    assert "locked by a running dockyard" in events(logs, "traefik_import_refused")[0]["reason"]
    assert store.path.read_bytes() == before


def test_store_readable_by_others_is_refused(
    source: Path, store: JsonStore, run_cli: Callable[..., tuple[int, Logs]]
) -> None:
    """A 0644 store is refused as the daemon refuses it: exit 1, the file left alone."""
    before = save(store, StoreData())
    store.path.chmod(0o644)
    write_traefik(source, None)
    code, logs = run_cli("import-traefik", str(source))
    assert code == 1
    assert "chmod 600" in events(logs, "traefik_import_refused")[0]["reason"]
    assert store.path.read_bytes() == before


def test_missing_file_and_bad_directory_exit_1_and_2(
    tmp_path: Path, run_cli: Callable[..., tuple[int, Logs]]
) -> None:
    """An unreadable file is refused (1); a bad --directory is a bad setting (2)."""
    code, logs = run_cli("import-traefik", str(tmp_path / "missing.json"))
    assert code == 1
    assert events(logs, "traefik_import_refused")[0]["reason"].startswith("cannot read ")
    code, logs = run_cli("import-traefik", str(tmp_path / "x.json"), "--directory", "ftp://ca")
    assert code == 2
    assert events(logs, "settings_invalid")[0]["variable"] == "DOCKYARD_ACME_DIRECTORY"


def test_certificate_names_come_from_the_certificate() -> None:
    """SAN names are read from the certificate, lower-cased, not from ``Domain.SANs``."""
    chain = certificate("A.Example.org", "b.example.org")
    entry = traefik_certificate("zzz", chain, CERT_KEY, sans=["c.example.org"])
    conversion = convert(parse_traefik(traefik_json(None, [entry])), LE, NOW)
    assert [c.names for c in conversion.certificates] == [
        ("a.example.org", "b.example.org"),
        ("b.example.org", "a.example.org"),
    ]
