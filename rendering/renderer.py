"""Multi-view offscreen renderer that keeps one OpenGL context for a whole shard of objects.

Creating a GL context and compiling pyrender's shaders costs far more than drawing a view, so a
Renderer builds them once and only swaps the object's mesh node in and out of a persistent
scene (camera and lights stay). The lights ride with the camera: a key light above and to the
left of the view and a weaker fill from the right, plus ambient light, so every view shows
shape by shading whatever the azimuth. Output is deterministic: the same object gives the same
pixels, whatever was rendered before it.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np

from rendering.cameras import LAYOUTS, camera_poses, framing_distance, look_at_origin
from rendering.gl import context_error, release_offscreen, select_platform, set_multisampling

_WHITE = np.array([1.0, 1.0, 1.0, 1.0])
_AMBIENT = np.array([0.35, 0.35, 0.35])
# Camera-attached directional lights: (azimuth, elevation) in degrees of where each shines from,
# seen from the camera (negative azimuth = from the left), and its intensity.
_LIGHT_RIG = (((-35.0, 35.0), 3.0), ((45.0, 0.0), 1.0))


@dataclass(frozen=True)
class RenderResult:
    """The views of one object: images, optional depth maps, and the camera angles in degrees."""

    colors: list[np.ndarray]
    depths: list[np.ndarray] | None
    azimuths: list[float]
    elevations: list[float]


class Renderer:
    """Renders objects from ``views`` cameras around them into ``image_size`` square images."""

    def __init__(
        self,
        image_size: int = 224,
        views: int = 12,
        layout: str = "ring",
        elevation: float = 25.0,
        yfov: float = 40.0,
        depth: bool = False,
        platform: str = "egl",
        antialias: bool = False,
        point_size: float | None = None,
    ) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"image_size must be an integer of at least 8 pixels, got {image_size!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"unknown camera layout {layout!r}; expected one of {LAYOUTS}")
        self.image_size = image_size
        self.layout = layout
        self.elevation = float(elevation)
        self.yfov = float(yfov)
        self.depth = bool(depth)
        self.antialias = bool(antialias)
        # Points of about 1/112 of the image width read as a surface at 224 px without blobbing.
        self.point_size = float(point_size) if point_size is not None else max(1.0, image_size / 112.0)
        azimuths, elevations, self._poses = camera_poses(views, layout, self.elevation, self.yfov)
        self.azimuths = [float(a) for a in azimuths]
        self.elevations = [float(e) for e in elevations]
        self.platform = select_platform(platform)

        # pyrender imports OpenGL, so it may only be imported once the platform is settled.
        try:
            import pyrender
        except ImportError as exc:  # the platform's GL library (e.g. libOSMesa) is not installed
            raise context_error(self.platform, exc) from exc

        self._offscreen = self._open_context(pyrender)
        # Free the context even if close() is never called, before pyrender's own __del__ could
        # terminate the EGL display other renderers share.
        self._release = weakref.finalize(self, release_offscreen, self._offscreen)
        set_multisampling(self._offscreen, 4 if self.antialias else 0)
        # Many furniture meshes are open or one-sided: cull nothing, or parts vanish from behind.
        self._flags = pyrender.RenderFlags.SKIP_CULL_FACES
        self._scene = pyrender.Scene(bg_color=_WHITE, ambient_light=_AMBIENT)
        distance = framing_distance(self.yfov)
        camera = pyrender.PerspectiveCamera(
            yfov=math.radians(self.yfov), aspectRatio=1.0, znear=max(distance - 1.5, 0.05), zfar=distance + 1.5
        )
        self._camera_node = self._scene.add(camera, pose=self._poses[0])
        for (azimuth, elevation), intensity in _LIGHT_RIG:
            light = pyrender.DirectionalLight(color=np.ones(3), intensity=intensity)
            # In the camera's frame the camera sits on +Z looking at the origin, as at azimuth 0.
            offset = look_at_origin(azimuth, elevation, 1.0)
            self._scene.add(light, pose=offset, parent_node=self._camera_node)

    def _open_context(self, pyrender):
        try:
            renderer = pyrender.OffscreenRenderer(self.image_size, self.image_size, point_size=self.point_size)
        except Exception as exc:  # any failure here means the platform cannot give us a context
            raise context_error(self.platform, exc) from exc
        from OpenGL.GL import GL_RENDERER, glGetString

        self._gl_renderer = glGetString(GL_RENDERER).decode("ascii", "replace")
        return renderer

    def render(self, geometry) -> RenderResult:
        """Render a trimesh Scene, Trimesh or PointCloud, centred and scaled to the unit sphere."""
        if self._offscreen is None:
            raise RuntimeError("this Renderer is closed")
        from rendering.geometry import instances, to_pyrender_mesh, unit_sphere_pose

        parts = instances(geometry)
        node = self._scene.add(to_pyrender_mesh(parts), pose=unit_sphere_pose(parts))
        try:
            colors, depths = [], []
            for pose in self._poses:
                self._scene.set_pose(self._camera_node, pose)
                color, depth = self._offscreen.render(self._scene, flags=self._flags)
                colors.append(np.ascontiguousarray(color))
                depths.append(np.asarray(depth, dtype=np.float32))
        finally:
            self._scene.remove_node(node)
        return RenderResult(
            colors=colors,
            depths=depths if self.depth else None,
            azimuths=list(self.azimuths),
            elevations=list(self.elevations),
        )

    def settings(self) -> dict:
        """JSON-able description of how views are made, for shard metadata."""
        return {
            "renderer": "pyrender",
            "image_size": self.image_size,
            "views": len(self._poses),
            "layout": self.layout,
            "elevation": self.elevation,
            "yfov": self.yfov,
            "depth": self.depth,
            "antialias": self.antialias,
            "msaa_samples": 4 if self.antialias else 0,
            "platform": self.platform,
            "gl_renderer": self._gl_renderer,
            "point_size": self.point_size,
            "background": "white",
            "lights": "camera-attached key + fill directional, ambient 0.35",
            "normalisation": "bounding-box centre at origin, scaled into the unit sphere",
        }

    def close(self) -> None:
        """Release the OpenGL context; safe to call twice."""
        self._release()
        self._offscreen = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
