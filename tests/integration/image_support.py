"""Building the image of the repository's Dockerfile on machines without a registry.

No registry is reachable on test machines, and build containers cannot verify TLS to PyPI:
the base image is made locally with debootstrap and `docker import`, and the Python wheels
are prepared on the host inside the build context. Only build arguments differ from what
users run (`docker build .`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import docker  # type: ignore[import-untyped, unused-ignore]
from docker.models.images import Image  # type: ignore[import-untyped, unused-ignore]

from tests.integration.support import REPO_ROOT

# A stand-in for python:3.11-slim-bookworm with everything the Dockerfile would otherwise
# apt-get (so building needs no network). Cached between runs and never deleted: building it
# takes about a minute. Bump the tag whenever BASE_PACKAGES or the trimming below change.
BASE_IMAGE = "dockyard-test-bookworm:1"
BASE_PACKAGES = ("python3", "python3-venv", "nginx", "ca-certificates", "tini")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Inside the build context; .dockerignore lets it in, .gitignore (build/) keeps it out of git.
WHEELS_DIR = REPO_ROOT / "build" / "wheels"
# Where the Dockerfile's install stage sees WHEELS_DIR (it copies the context to /src).
WHEELS_IN_BUILD = "/src/build/wheels"
# What slim images leave out too; debootstrap keeps the downloaded .debs and apt lists.
_TRIMMED = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
# The classic builder prints " ---> 0123456789ab" with the image id after each step.
_STEP_ID_RE = re.compile(r"^ ---> ([0-9a-f]{12})$", re.M)
# debootstrap and friends live in sbin, which a non-login root shell may lack on PATH.
_SBIN_PATH = f"{os.environ.get('PATH', '')}:/usr/local/sbin:/usr/sbin:/sbin"


class ImageBuildError(AssertionError):
    """The base image or the dockyard image could not be made; the message has the log."""


def ensure_base_image(client: Any) -> str:
    """The local bookworm base, made with debootstrap when missing (cached, never deleted)."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(BASE_IMAGE)
        return BASE_IMAGE
    debootstrap = shutil.which("debootstrap", path=_SBIN_PATH)
    if debootstrap is None:
        raise ImageBuildError("debootstrap is not installed (tests/run.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="dockyard-base-") as scratch:
        root = Path(scratch) / "root"
        result = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                "bookworm",
                str(root),
                DEBIAN_MIRROR,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PATH": _SBIN_PATH},
        )
        if result.returncode != 0:
            raise ImageBuildError(
                f"debootstrap failed ({result.returncode}):\n{result.stdout[-3000:]}"
                f"\n{result.stderr[-3000:]}"
            )
        for relative in _TRIMMED:
            trimmed = root / relative
            if trimmed.is_dir():
                shutil.rmtree(trimmed)
                trimmed.mkdir()
        tarball = Path(scratch) / "root.tar"
        # Numeric owners: the image's files belong to its own users, not the host's names.
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), "."], check=True
        )
        repository, tag = BASE_IMAGE.rsplit(":", 1)
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag)
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        raise ImageBuildError(f"docker import of {BASE_IMAGE} produced no image") from None
    return BASE_IMAGE


def prepare_wheels() -> Path:
    """Wheels of the project's dependencies and build backend, in WHEELS_DIR (from the host's PyPI).

    Built with the tests' own interpreter, whose Python version matches the base's (3.11);
    pip's cache makes later runs quick. Older files left in the directory do no harm: pip
    picks the newest version that fits.
    """
    WHEELS_DIR.mkdir(parents=True, exist_ok=True)
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    build_requires = ["setuptools>=68", "wheel"]
    assert all(f'"{req}"' in pyproject for req in build_requires), "update build_requires"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(WHEELS_DIR),
            str(REPO_ROOT),
            *build_requires,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ImageBuildError(
            f"pip wheel failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return WHEELS_DIR


class BuiltImage(NamedTuple):
    """A built image and the ids of every step's image the build printed (for removal)."""

    image: Image
    step_ids: tuple[str, ...]


def build_image(client: Any, tag: str, labels: dict[str, str]) -> BuiltImage:
    """Build the repository's Dockerfile on the local base with the prepared wheels, offline.

    Remove it with ``remove_build``; intermediate containers are removed here, also when a
    step fails.
    """
    base = ensure_base_image(client)
    prepare_wheels()
    try:
        image, log = client.images.build(
            path=str(REPO_ROOT),
            tag=tag,
            labels=labels,
            rm=True,
            forcerm=True,
            pull=False,
            buildargs={
                "BASE": base,
                "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": WHEELS_IN_BUILD,
            },
        )
    except docker.errors.BuildError as err:
        text = _log_text(err.build_log)
        raise ImageBuildError(f"docker build failed: {err.msg}\n{text[-6000:]}") from None
    step_ids = tuple(dict.fromkeys(_STEP_ID_RE.findall(_log_text(log))))
    return BuiltImage(image, step_ids)


def remove_build(client: Any, built: BuiltImage) -> None:
    """Remove the image, then the install stage's images, which no tag keeps alive.

    The classic builder keeps every step's image as cache; those of the final stage go with
    the image (untagged parents are pruned), but the install stage ends in an image of its
    own. Tagged images (the base) and images with children are left alone.
    """
    with contextlib.suppress(docker.errors.NotFound):
        client.images.remove(built.image.id)
    for step_id in reversed(built.step_ids):
        try:
            step = client.images.get(step_id)
        except docker.errors.NotFound:
            continue
        if step.tags:
            continue
        # 409 Conflict: another image (or a concurrent build) still builds on it.
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.images.remove(step.id)


def _log_text(chunks: Iterable[dict[str, Any]]) -> str:
    """The text of a docker build's JSON log chunks."""
    return "".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in chunks)
