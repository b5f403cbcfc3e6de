"""Fetch the Sweet Home 3D furniture catalogs from Debian's ``sweethome3d-furniture`` package.

``apt-get download`` needs no root once apt's package lists exist; each ``.sh3f`` catalog inside
the package is a zip that is unpacked to ``<dest>/<catalog>/``. Every catalog appears whole or
not at all (unpacked beside it, then renamed), catalogs already there are left alone, and a
completed fetch is recorded in ``<dest>/.fetched`` so running it again downloads nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from cg3d.io import atomic_path

PACKAGE = "sweethome3d-furniture"
CATALOG_DIR = Path("usr/share/sweethome3d/furniture")
DONE_MARKER = ".fetched"


class FetchFailed(RuntimeError):
    """The Debian package could not be downloaded or unpacked; the message says what to do."""


def fetch_sh3d(dest: Path) -> list[Path]:
    """Unpack every furniture catalog of the Debian package under ``dest``; return their folders."""
    dest = Path(dest)
    done = _already_fetched(dest)
    if done:
        return done
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sh3d-fetch-") as scratch:
        scratch = Path(scratch)
        deb = _download_deb(scratch)
        _run(["dpkg", "-x", str(deb), str(scratch / "root")], f"dpkg -x {deb.name} failed")
        archives = sorted((scratch / "root" / CATALOG_DIR).glob("*.sh3f"))
        if not archives:
            raise FetchFailed(f"{deb.name} holds no .sh3f catalogs under /{CATALOG_DIR}")
        folders = [_unpack_catalog(archive, dest / archive.stem) for archive in archives]
    with atomic_path(dest / DONE_MARKER) as tmp:
        tmp.write_text("".join(f"{folder.name}\n" for folder in folders))
    return folders


def _already_fetched(dest: Path) -> list[Path]:
    marker = dest / DONE_MARKER
    if not marker.is_file():
        return []
    folders = [dest / name for name in marker.read_text().splitlines() if name]
    return folders if all(folder.is_dir() for folder in folders) else []


def _download_deb(scratch: Path) -> Path:
    result = subprocess.run(
        ["apt-get", "download", PACKAGE], cwd=scratch, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        hint = (
            " apt has no package lists yet: run `apt-get update` (as root) once, then retry."
            if "Unable to locate package" in result.stderr
            or "no installation candidate" in result.stderr
            else ""
        )
        raise FetchFailed(f"`apt-get download {PACKAGE}` failed: {result.stderr.strip()}.{hint}")
    debs = sorted(scratch.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise FetchFailed(f"`apt-get download {PACKAGE}` left no .deb in {scratch}")
    return debs[-1]


def _unpack_catalog(archive: Path, target: Path) -> Path:
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as catalog:
            catalog.extractall(staging)
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():  # another process renamed its copy first: theirs is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _run(command: list[str], failure: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchFailed(f"{failure}: {result.stderr.strip()}")

