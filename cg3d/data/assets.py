"""The files a mesh refers to (MTL libraries, textures, glTF buffers), read only from inside its dataset.

A mesh file is data from elsewhere, and the names in it are too: an MTL that names
``/home/me/secret.png`` or ``../../../etc/shadow`` would put a file from outside the dataset into
the rendered views (and from there into MLflow artifacts); a FIFO would hang the loader, and
``/dev/zero`` would fill memory. So an asset is read only when it resolves (symlinks included)
to a regular file inside the dataset root and is no bigger than the size cap. Anything else is
refused; the mesh loads without it (trimesh treats a refused asset like a missing one), and the
refusal is listed so the loader can record it as a warning against the object.

ShapeNetCore v2 MTLs name ``../images/texture0.jpg``: above the mesh's folder, inside the root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from trimesh.resolvers import FilePathResolver


class RefusedAsset(PermissionError):
    """An asset that resolves outside the dataset root, is not a regular file, or is too big."""


class ConfinedResolver(FilePathResolver):
    """Resolves asset names against the mesh's folder, serving only files the root confines.

    ``missing`` and ``refused`` list, in order, the names that were not found and the names that
    were refused (with why), for the caller to report.
    """

    def __init__(self, mesh_folder: Path, root: Path, max_bytes: int):
        super().__init__(mesh_folder)
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes
        self.missing: list[str] = []
        self.refused: list[str] = []

    def get(self, name: str) -> bytes:
        """The asset's bytes. Like trimesh, also tries the name without a leading "/" and the bare
        file name in the mesh's folder; the first candidate that exists decides."""
        stripped = name.strip()
        for candidate in (stripped, stripped.lstrip("/"), os.path.basename(stripped)):
            path = Path(self.parent, candidate)
            if not os.path.lexists(path):
                continue
            try:
                return self._read(path)
            except RefusedAsset as refusal:
                self.refused.append(f"'{name}' ({refusal})")
                raise
        self.missing.append(name)
        raise FileNotFoundError(f"asset '{name}' not found beside {self.parent}")

    def _read(self, path: Path) -> bytes:
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError) as error:  # dangling link, loop, unreadable folder
            raise RefusedAsset(f"cannot be resolved: {error}") from error
        if not resolved.is_relative_to(self.root):
            raise RefusedAsset(f"resolves to {resolved}, outside the dataset root {self.root}")
        info = resolved.stat()
        if not stat.S_ISREG(info.st_mode):
            raise RefusedAsset(f"{resolved} is not a regular file")
        if info.st_size > self.max_bytes:
            raise RefusedAsset(f"{info.st_size} bytes, over the {self.max_bytes}-byte cap")
        with resolved.open("rb") as handle:
            data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:  # grew since the stat
            raise RefusedAsset(f"over the {self.max_bytes}-byte cap")
        return data
