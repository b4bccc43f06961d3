"""Machine facts: files nginx's workers or socket paths cannot reach move to a private temp dir."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.running import detect_facts, private_temp_dir
from daemon.settings import Settings


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory in the system temp dir that others may enter (0755)."""
    path = Path(tempfile.mkdtemp(prefix="dyt-open-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def closed_dir(open_dir: Path) -> Iterator[Path]:
    """A 0700 directory; the private temp dir made for a state dir below it is removed after."""
    path = open_dir / "private"
    path.mkdir(mode=0o700)
    yield path
    shutil.rmtree(private_temp_dir(path / "state"), ignore_errors=True)


def test_an_enterable_state_dir_keeps_everything(open_dir: Path) -> None:
    """A state dir others can enter holds the challenge dir and the control socket."""
    paths = detect_facts(Settings(state_dir=open_dir / "state")).paths
    assert paths.acme_challenge == open_dir / "state" / "acme-challenge"
    assert paths.control_socket == open_dir / "state" / "nginx" / "control.sock"


def test_a_closed_state_dir_moves_the_challenge_dir(closed_dir: Path) -> None:
    """Below a 0700 directory the challenge files go to a private 0755 temp dir of ours."""
    paths = detect_facts(Settings(state_dir=closed_dir / "state")).paths
    own = paths.acme_challenge.parent
    assert paths.acme_challenge.name == "acme-challenge"
    assert own.parent == Path(tempfile.gettempdir()) and own.name.startswith("dockyard-")
    assert own.stat().st_mode & 0o777 == 0o755
    assert paths.control_socket == closed_dir / "state" / "nginx" / "control.sock"


def test_a_long_state_dir_moves_the_control_socket(open_dir: Path) -> None:
    """A socket path over the Unix limit moves to the private temp dir; challenges stay."""
    deep = open_dir / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    for part in (deep, deep.parent):
        part.chmod(0o755)
    paths = detect_facts(Settings(state_dir=deep)).paths
    shutil.rmtree(private_temp_dir(deep))
    assert paths.control_socket == private_temp_dir(deep) / "control.sock"
    assert len(str(paths.control_socket)) < 100
    assert paths.acme_challenge == deep / "acme-challenge"


def test_a_planted_temp_dir_is_refused(closed_dir: Path) -> None:
    """A group-writable directory where ours should be is not used."""
    settings = Settings(state_dir=closed_dir / "state")
    own = detect_facts(settings).paths.acme_challenge.parent
    own.chmod(0o777)
    with pytest.raises(OSError, match="not a directory of ours"):
        detect_facts(settings)
