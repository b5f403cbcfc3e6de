"""Headless multi-view rendering of meshes and point clouds with pyrender.

Importing this package does not import pyrender or OpenGL: the OpenGL platform (EGL or OSMesa)
is chosen when the first ``Renderer`` is made (see ``rendering.gl``).
"""

from rendering.cameras import camera_poses, framing_distance, look_at_origin, view_angles
from rendering.gl import GLPlatformUnavailable
from rendering.png import decode_depth_png, decode_png, encode_depth_png, encode_png
from rendering.renderer import Renderer, RenderResult

__all__ = [
    "GLPlatformUnavailable",
    "RenderResult",
    "Renderer",
    "camera_poses",
    "decode_depth_png",
    "decode_png",
    "encode_depth_png",
    "encode_png",
    "framing_distance",
    "look_at_origin",
    "view_angles",
]
