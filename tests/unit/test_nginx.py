"""The nginx edge's pure helpers: the master's environment."""

from __future__ import annotations

from daemon.nginx import master_environment


def test_master_gets_the_mmap_threshold_and_keeps_other_tunables() -> None:
    """The malloc tunable is added to the environment without dropping what was there."""
    env = master_environment({"PATH": "/usr/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["PATH"] == "/usr/bin"
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=4096"


def test_an_operators_own_mmap_threshold_wins() -> None:
    """A threshold the operator set is left as it is."""
    env = master_environment({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.mmap_threshold=65536"
