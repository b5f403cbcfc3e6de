"""Camera placement: where the V views of an object sit and the 4x4 poses that look at it.

Conventions (those of glTF, pyrender and most OBJ furniture): +Y is up, a camera looks down its
own -Z axis. Azimuth turns about +Y starting from +Z (azimuth 0 sees the object's front, which
faces +Z); elevation is the angle above the XZ plane. The object is expected to fit inside the
unit sphere at the origin (the renderer scales it so).
"""

from __future__ import annotations

import math

import numpy as np

LAYOUTS = ("ring", "sphere")

# Golden angle in degrees: consecutive Fibonacci-sphere points turn by it, which spreads them
# evenly without clustering at the poles.
_GOLDEN_ANGLE_DEG = 180.0 * (3.0 - math.sqrt(5.0))


def view_angles(views: int, layout: str = "ring", elevation: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """Return (azimuths, elevations) in degrees for ``views`` cameras.

    ``ring``: every camera at ``elevation``, azimuths evenly spaced from 0.
    ``sphere``: a Fibonacci lattice, so the cameras cover all directions about evenly
    (``elevation`` is ignored).
    """
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 1:
        raise ValueError(f"views must be a positive integer, got {views!r}")
    if layout == "ring":
        if not -90.0 <= elevation <= 90.0:
            raise ValueError(f"elevation must lie in [-90, 90] degrees, got {elevation!r}")
        azimuths = np.arange(views, dtype=np.float64) * (360.0 / views)
        elevations = np.full(views, float(elevation))
    elif layout == "sphere":
        heights = 1.0 - (2.0 * np.arange(views) + 1.0) / views
        elevations = np.degrees(np.arcsin(heights))
        azimuths = np.mod(np.arange(views) * _GOLDEN_ANGLE_DEG, 360.0)
    else:
        raise ValueError(f"unknown camera layout {layout!r}; expected one of {LAYOUTS}")
    return azimuths, elevations


def framing_distance(yfov: float, radius: float = 1.0) -> float:
    """Distance at which a sphere of ``radius`` exactly fills a square view of ``yfov`` degrees."""
    if not 0.0 < yfov < 180.0:
        raise ValueError(f"yfov must lie strictly between 0 and 180 degrees, got {yfov!r}")
    return radius / math.sin(math.radians(yfov) / 2.0)


def look_at_origin(azimuth: float, elevation: float, distance: float) -> np.ndarray:
    """4x4 camera-to-world pose of a camera at the given angles (degrees), looking at the origin."""
    az, el = math.radians(azimuth), math.radians(elevation)
    eye = distance * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    backward = eye / np.linalg.norm(eye)
    up_hint = np.array([0.0, 1.0, 0.0])
    if abs(backward @ up_hint) > 1.0 - 1e-9:
        # Straight above or below: world up is degenerate, so keep the azimuth's heading as "up".
        up_hint = np.array([-math.sin(az), 0.0, -math.cos(az)]) * math.copysign(1.0, elevation)
    right = np.cross(up_hint, backward)
    right /= np.linalg.norm(right)
    up = np.cross(backward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, backward, eye
    return pose


def camera_poses(
    views: int = 12, layout: str = "ring", elevation: float = 25.0, yfov: float = 40.0
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Return (azimuths, elevations, poses) for cameras that frame the unit sphere."""
    azimuths, elevations = view_angles(views, layout, elevation)
    distance = framing_distance(yfov)
    poses = [look_at_origin(a, e, distance) for a, e in zip(azimuths, elevations)]
    return azimuths, elevations, poses
