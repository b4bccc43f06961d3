"""The ACME store: its JSON format, atomic 0600 writes, refusals and the writer lock."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acme_store.errors import (
    StoreCorruptError,
    StoreLockedError,
    StorePermissionError,
)
from acme_store.records import Account, Certificate, StoreData, store_from_json, store_to_json
from acme_store.store import JsonStore

LE = "https://acme-v02.api.letsencrypt.org/directory"
STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def issued(name: str, directory: str = LE) -> Certificate:
    """A record holding a (fake) 90-day certificate for ``name``."""
    return Certificate(
        directory=directory,
        names=(name,),
        chain_pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        key_pem="-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n",
        not_before=T0,
        not_after=datetime(2027, 1, 30, 12, 0, tzinfo=UTC),
    )


SAMPLE = (
    StoreData()
    .with_account(Account(LE, "-----BEGIN EC PRIVATE KEY-----\nk\n", "https://ca/acct/1", "a@b.c"))
    .with_account(Account(STAGING, "-----BEGIN EC PRIVATE KEY-----\nz\n"))
    .with_certificate(issued("b.example.org"))
    .with_certificate(issued("a.example.org"))
    .with_certificate(
        Certificate(
            LE,
            ("broken.example.org",),
            failures=2,
            last_error="urn:ietf:params:acme:error:dns",
            next_retry=T0,
        )
    )
)


def test_document_round_trips_through_json() -> None:
    """Every field survives a write and a read, times in UTC, records sorted by name."""
    text = json.dumps(store_to_json(SAMPLE))
    again = store_from_json(json.loads(text))
    assert again == SAMPLE
    assert [c.main for c in again.certificates] == [
        "a.example.org",
        "b.example.org",
        "broken.example.org",
    ]
    document = json.loads(text)
    assert document["version"] == 1
    assert document["certificates"][0]["not_after"] == "2027-01-30T12:00:00Z"


def test_another_directory_keeps_its_own_account_and_certificates() -> None:
    """A new CA gets its own account; the old CA's account and certificates stay."""
    data = SAMPLE.with_account(Account(STAGING, "new")).with_certificate(
        issued("a.example.org", STAGING)
    )
    assert data.account_for(LE) == SAMPLE.account_for(LE)
    assert data.account_for(STAGING) == Account(STAGING, "new")
    assert data.certificate_for(LE, "a.example.org") == issued("a.example.org")
    assert data.certificate_for(STAGING, "a.example.org") == issued("a.example.org", STAGING)


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ([], "store"),
        ({"version": 2}, "store.version"),
        ({"version": True}, "store.version"),
        ({"version": 1, "accounts": [{"directory": LE}]}, "accounts[0].key"),
        (
            {
                "version": 1,
                "certificates": [
                    {"directory": LE, "names": [], "key_type": "ec256", "failures": 0}
                ],
            },
            "certificates[0].names",
        ),
        (
            {
                "version": 1,
                "certificates": [
                    {"directory": LE, "names": ["a"], "key_type": "dsa", "failures": 0}
                ],
            },
            "certificates[0].key_type",
        ),
        (
            {
                "version": 1,
                "certificates": [
                    {
                        "directory": LE,
                        "names": ["a"],
                        "key_type": "ec256",
                        "failures": 0,
                        "not_after": "2027-01-30 12:00",
                    }
                ],
            },
            "certificates[0].not_after",
        ),
    ],
)
def test_bad_documents_name_the_bad_field(document: object, where: str, tmp_path: Path) -> None:
    """A document of the wrong shape is refused, naming the field, and left untouched."""
    path = tmp_path / "acme.json"
    text = json.dumps(document)
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(StoreCorruptError) as caught:
        JsonStore(path).load()
    assert caught.value.reason.startswith(where)
    assert path.read_text() == text


def test_save_writes_0600_atomically_and_load_reads_it_back(tmp_path: Path) -> None:
    """The file is owner-only, in an owner-only directory, and no temp file is left."""
    with JsonStore(tmp_path / "state" / "acme.json") as store:
        store.save(SAMPLE)
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.path.parent.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["acme.json", "acme.json.lock"]
    assert JsonStore(store.path).load() == SAMPLE


def test_missing_store_is_empty(tmp_path: Path) -> None:
    """No file yet means an empty store, not an error."""
    assert JsonStore(tmp_path / "acme.json").load() == StoreData()


def test_readable_by_others_is_refused_and_not_touched(tmp_path: Path) -> None:
    """A 0644 store is refused with the mode and the fix in the reason; the file stays."""
    with JsonStore(tmp_path / "acme.json") as store:
        store.save(SAMPLE)
    store.path.chmod(0o644)
    before = store.path.read_bytes()
    with pytest.raises(StorePermissionError) as caught:
        store.load()
    assert "0644" in caught.value.reason
    assert "chmod 600" in caught.value.reason
    assert store.path.read_bytes() == before


def test_corrupt_store_is_refused_then_set_aside_intact(tmp_path: Path) -> None:
    """A truncated file is never overwritten: it is renamed aside with its bytes intact."""
    store = JsonStore(tmp_path / "acme.json")
    store.path.write_bytes(b'{"version": 1, "accou')
    store.path.chmod(0o600)
    with pytest.raises(StoreCorruptError):
        store.load()
    aside = store.set_aside()
    assert aside.read_bytes() == b'{"version": 1, "accou'
    assert aside.name.startswith("acme.json.unreadable-")
    assert store.load() == StoreData()


def test_save_requires_the_lock(tmp_path: Path) -> None:
    """Writing without holding the lock is a bug, not a silent race."""
    with pytest.raises(RuntimeError):
        JsonStore(tmp_path / "acme.json").save(SAMPLE)


def test_second_process_cannot_take_the_lock(tmp_path: Path) -> None:
    """While one process holds the store, another is told so; after release it may write."""
    path = tmp_path / "acme.json"
    holder = JsonStore(path).__enter__()
    probe = (
        "import sys; from pathlib import Path\n"
        "from acme_store.store import JsonStore\n"
        "from acme_store.errors import StoreLockedError\n"
        "try:\n"
        "    JsonStore(Path(sys.argv[1])).lock()\n"
        "except StoreLockedError:\n"
        "    sys.exit(3)\n"
    )
    locked = subprocess.run([sys.executable, "-c", probe, str(path)], check=False)
    assert locked.returncode == 3
    with pytest.raises(StoreLockedError), JsonStore(path):
        pass
    holder.unlock()
    free = subprocess.run([sys.executable, "-c", probe, str(path)], check=False)
    assert free.returncode == 0
