"""Thumbnails of a user's shapes: one view of its points, rendered as the pipeline renders.

The renderer (a GL context) opens on the first thumbnail and is reused, as opening it costs far
more than a view.
"""

from __future__ import annotations

import trimesh

from cg3d.data.shape_files import ShapeCloud
from cg3d.inference.index_format import THUMBNAIL_SIZE
from rendering.png import encode_png
from rendering.renderer import Renderer


class Thumbnails:
    """``thumbnails(shape)``: PNG bytes of ``shape`` seen from the front, a little above."""

    def __init__(self, size: int = THUMBNAIL_SIZE, platform: str = "egl"):
        self.size = size
        self.platform = platform
        self._renderer: Renderer | None = None

    def __call__(self, shape: ShapeCloud) -> bytes:
        if self._renderer is None:
            self._renderer = Renderer(image_size=self.size, views=1, platform=self.platform)
        cloud = trimesh.PointCloud(shape.xyz, colors=shape.rgb)
        return encode_png(self._renderer.render(cloud).colors[0])

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> "Thumbnails":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
